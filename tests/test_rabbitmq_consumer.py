"""The consumer: ack policy, failure policy, dead letters, threads, stopping.

Each test is a small specification run against the real RabbitMQ: given a
queue and a task that behaves some way, this is where every message ends.
"""

import asyncio
import threading
import time
from collections import Counter

import aio_pika
import pytest

from queuelab import envelope as codec
from queuelab.errors import ConfigError
from queuelab.experiments import workload
from queuelab.experiments.common import wait_until
from queuelab.experiments.deadletter import process_default_run
from queuelab.ledger import Event, Ledger, check
from queuelab.rabbitmq import (
    AckMode,
    Backoff,
    Consumer,
    OnFailure,
    Producer,
    WorkQueue,
    in_thread,
    queue_depth,
    read_dead_letters,
)
from queuelab.rabbitmq.connection import admin_channel
from queuelab.rabbitmq.consumer import Task
from queuelab.rabbitmq.deadletter import ATTEMPTS_HEADER, REASON_HEADER

FAST = Backoff(attempts=3, first_delay_s=0.1, factor=2.0)


class Boom(Exception):
    pass


async def publish(url: str, spec: "str | WorkQueue", n: int) -> list[str]:
    async with Producer(url, spec, window=20) as producer:
        envelopes = list(workload(n))
        await producer.publish_many(envelopes)
    return [e.id for e in envelopes]


def events(ledger: Ledger, event: Event) -> int:
    frame = ledger.frame()
    return int((frame.event == event).sum())


async def depths(url: str, spec: WorkQueue) -> dict[str, int]:
    async with admin_channel(url) as channel:
        return {name: await queue_depth(channel, name) for name in spec.all_queues()}


async def cleanup(url: str, spec: WorkQueue) -> None:
    async with admin_channel(url) as channel:
        await spec.delete(channel)


# --- what message.process() does by default ---------------------------------


async def test_a_raising_task_under_the_default_process_is_gone(amqp_url: str) -> None:
    run = await process_default_run(amqp_url, 5)

    assert set(run.outcomes.outcome) == {"gone"}
    assert list(run.outcomes.attempts) == [1] * 5  # delivered once, never again
    assert sum(run.left.values()) == 0  # not in the queue either
    assert len(check(run.ledger).lost) == 5


async def test_under_process_a_queue_with_a_dlx_dead_letters_instead(
    amqp_url: str,
) -> None:
    run = await process_default_run(amqp_url, 3, dead_letters=True)

    assert len(run.dead) == 3
    assert all(run.dead.reason.str.startswith("rejected by the broker"))
    assert list(run.outcomes.attempts) == [1] * 3


# --- retry with backoff, then the dead-letter queue --------------------------


async def test_under_retry_a_flaky_task_is_processed_on_its_third_attempt(
    amqp_url: str, unique: str
) -> None:
    spec = WorkQueue(unique, backoff=FAST)
    calls: Counter[str] = Counter()

    async def flaky(envelope: codec.Envelope) -> None:
        calls[envelope.id] += 1
        if calls[envelope.id] < 3:
            raise Boom("not yet")

    ledger = Ledger()
    consumer = Consumer(
        amqp_url, spec, flaky, on_failure=OnFailure.RETRY, ledger=ledger
    )
    await consumer.start()
    [message_id] = await publish(amqp_url, spec, 1)
    await wait_until(
        lambda: events(ledger, Event.PROCESSED) == 1, timeout_s=10, what=""
    )
    await consumer.stop()

    frame = ledger.frame()
    delivered = frame[frame.event == Event.DELIVERED]
    assert list(delivered.attempt) == [1, 2, 3]
    gaps = delivered.t.diff().dropna().tolist()
    assert gaps[0] >= 0.1
    assert gaps[1] >= 0.2  # the delay doubled
    assert calls[message_id] == 3
    assert sum((await depths(amqp_url, spec)).values()) == 0
    await cleanup(amqp_url, spec)


async def test_under_retry_a_task_that_always_fails_is_parked_after_the_last(
    amqp_url: str, unique: str
) -> None:
    spec = WorkQueue(unique, backoff=FAST)
    calls: Counter[str] = Counter()

    async def doomed(envelope: codec.Envelope) -> None:
        calls[envelope.id] += 1
        raise Boom("disk full")

    ledger = Ledger()
    consumer = Consumer(
        amqp_url, spec, doomed, on_failure=OnFailure.RETRY, ledger=ledger
    )
    await consumer.start()
    [message_id] = await publish(amqp_url, spec, 1)
    await wait_until(
        lambda: events(ledger, Event.DEAD_LETTERED) == 1, timeout_s=10, what=""
    )
    await asyncio.sleep(0.5)  # longer than any delay: nothing comes back
    await consumer.stop()

    assert calls[message_id] == FAST.attempts
    async with admin_channel(amqp_url) as channel:
        [letter] = await read_dead_letters(channel, spec)
    assert letter.message_id == message_id
    assert letter.attempts == FAST.attempts
    assert "failed 3 attempts" in letter.reason
    assert "disk full" in letter.reason
    assert await depths(amqp_url, spec) == {
        spec.name: 0,
        spec.dlq: 1,
        spec.delay_queue(1): 0,
        spec.delay_queue(2): 0,
    }
    await cleanup(amqp_url, spec)


async def test_a_malformed_body_lands_in_the_dlq_once_with_its_reason(
    amqp_url: str, unique: str
) -> None:
    spec = WorkQueue(unique, backoff=FAST)
    calls: list[str] = []

    async def task(envelope: codec.Envelope) -> None:
        calls.append(envelope.id)

    ledger = Ledger()
    consumer = Consumer(amqp_url, spec, task, on_failure=OnFailure.RETRY, ledger=ledger)
    await consumer.start()
    async with admin_channel(amqp_url) as channel:
        await channel.default_exchange.publish(
            aio_pika.Message(b"{not json", message_id="bad-1"), routing_key=spec.name
        )
    await wait_until(
        lambda: events(ledger, Event.DEAD_LETTERED) == 1, timeout_s=10, what=""
    )
    await asyncio.sleep(0.5)  # longer than every retry delay
    await consumer.stop()

    assert calls == []
    assert events(ledger, Event.DEAD_LETTERED) == 1
    async with admin_channel(amqp_url) as channel:
        [letter] = await read_dead_letters(channel, spec)
        assert await queue_depth(channel, spec.dlq) == 1  # read, then put back
    assert letter.message_id == "bad-1"
    assert letter.reason.startswith("malformed: not JSON")
    assert letter.attempts == 1
    assert letter.body == b"{not json"
    await cleanup(amqp_url, spec)


async def test_dead_letter_policy_parks_at_the_first_failure_with_headers(
    amqp_url: str, unique: str
) -> None:
    spec = WorkQueue(unique, dead_letters=True)

    async def task(envelope: codec.Envelope) -> None:
        raise Boom("bad input")

    consumer = Consumer(amqp_url, spec, task, on_failure=OnFailure.DEAD_LETTER)
    await consumer.start()
    await publish(amqp_url, spec, 2)
    async with admin_channel(amqp_url) as channel:
        await wait_until_depth(channel, spec.dlq, 2)
        dlq = await channel.declare_queue(spec.dlq, passive=True)
        message = await dlq.get(timeout=5)
        assert message.headers[ATTEMPTS_HEADER] == 1
        assert "bad input" in str(message.headers[REASON_HEADER])
        await message.nack(requeue=True)
    await consumer.stop()
    await cleanup(amqp_url, spec)


async def wait_until_depth(
    channel: aio_pika.abc.AbstractChannel, name: str, depth: int
) -> None:
    for _ in range(250):
        if await queue_depth(channel, name) == depth:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{name} never reached depth {depth}")


def test_retry_needs_a_backoff_and_dead_letter_needs_a_dlq(amqp_url: str) -> None:
    async def task(envelope: codec.Envelope) -> None:
        return None

    with pytest.raises(ConfigError, match="needs a WorkQueue with a backoff"):
        Consumer(amqp_url, "q", task, on_failure=OnFailure.RETRY)
    with pytest.raises(ConfigError, match="dead_letters=True"):
        Consumer(amqp_url, "q", task, on_failure=OnFailure.DEAD_LETTER)


async def test_requeue_policy_delivers_the_message_again_at_once(
    amqp_url: str, unique: str
) -> None:
    failed = False

    async def fails_once(envelope: codec.Envelope) -> None:
        nonlocal failed
        if not failed:
            failed = True
            raise Boom("transient")

    ledger = Ledger()
    consumer = Consumer(
        amqp_url, unique, fails_once, on_failure=OnFailure.REQUEUE, ledger=ledger
    )
    await consumer.start()
    await publish(amqp_url, unique, 1)
    await wait_until(
        lambda: events(ledger, Event.PROCESSED) == 1, timeout_s=10, what=""
    )
    await consumer.stop()

    frame = ledger.frame()
    assert list(frame[frame.event == Event.DELIVERED].attempt) == [1, 2]
    async with admin_channel(amqp_url) as channel:
        await channel.queue_delete(unique)


# --- the ack policy ---------------------------------------------------------


@pytest.mark.parametrize(
    ("ack", "lost"), [(AckMode.BEFORE, 1), (AckMode.AFTER, 0)], ids=["before", "after"]
)
async def test_a_consumer_that_dies_mid_task_loses_the_message_only_if_it_acked_first(
    amqp_url: str, unique: str, ack: AckMode, lost: int
) -> None:
    ledger = Ledger()
    started = asyncio.Event()

    async def hangs(envelope: codec.Envelope) -> None:
        started.set()
        await asyncio.Event().wait()

    consumer = Consumer(amqp_url, unique, hangs, ack=ack, ledger=ledger)
    await consumer.start()
    await publish(amqp_url, unique, 1)
    await asyncio.wait_for(started.wait(), 10)
    assert consumer._connection is not None
    await consumer._connection.close()  # the process dies: no graceful stop

    async with admin_channel(amqp_url) as channel:
        await wait_until_depth(channel, unique, 1 - lost)
        await asyncio.sleep(0.3)  # and it stays there
        assert await queue_depth(channel, unique) == 1 - lost
        await channel.queue_delete(unique)
    for task in list(consumer._inflight):
        task.cancel()


# --- blocking tasks, heartbeats, stopping -----------------------------------


@pytest.mark.slow
async def test_a_blocking_task_in_a_thread_keeps_heartbeats_going(
    amqp_url: str, unique: str
) -> None:
    """With a 1 s heartbeat, a task that blocks for 4 s on the event loop
    gets the connection closed as dead and its message delivered again; the
    same task in a thread does not. (It blocks on its first call only, so the
    second delivery can finish.)"""
    url = f"{amqp_url}?heartbeat=1"
    calls: Counter[str] = Counter()

    def blocking(envelope: codec.Envelope) -> None:
        calls[envelope.id] += 1
        if calls[envelope.id] == 1:
            time.sleep(4)

    async def blocks_the_loop(envelope: codec.Envelope) -> None:
        blocking(envelope)

    async def deliveries(task: Task, queue: str) -> list[int]:
        ledger = Ledger()
        consumer = Consumer(url, queue, task, ledger=ledger)
        await consumer.start()
        await publish(amqp_url, queue, 1)
        await wait_until(
            lambda: events(ledger, Event.ACKED) >= 1, timeout_s=30, what="an ack"
        )
        await consumer.stop()
        async with admin_channel(amqp_url) as channel:
            await channel.queue_delete(queue)
        frame = ledger.frame()
        return list(frame[frame.event == Event.DELIVERED].attempt)

    assert await deliveries(in_thread(blocking), unique) == [1]
    assert await deliveries(blocks_the_loop, unique + ".loop") == [1, 2]


async def test_in_thread_runs_the_task_off_the_event_loop(
    amqp_url: str, unique: str
) -> None:
    threads: list[str] = []

    def task(envelope: codec.Envelope) -> None:
        threads.append(threading.current_thread().name)

    consumer = Consumer(amqp_url, unique, in_thread(task))
    await consumer.start()
    await publish(amqp_url, unique, 1)
    await wait_until(lambda: len(threads) == 1, timeout_s=10, what="the task")
    await consumer.stop()
    assert threads != [threading.main_thread().name]
    async with admin_channel(amqp_url) as channel:
        await channel.queue_delete(unique)


async def test_stop_lets_tasks_in_flight_finish(amqp_url: str, unique: str) -> None:
    ledger = Ledger()
    started: list[str] = []

    async def slow(envelope: codec.Envelope) -> None:
        started.append(envelope.id)
        await asyncio.sleep(0.3)

    consumer = Consumer(amqp_url, unique, slow, prefetch=3, ledger=ledger)
    await consumer.start()
    await publish(amqp_url, unique, 3)
    await wait_until(lambda: len(started) == 3, timeout_s=10, what="3 tasks")
    await consumer.stop(timeout_s=5)

    assert events(ledger, Event.ACKED) == 3
    async with admin_channel(amqp_url) as channel:
        assert await queue_depth(channel, unique) == 0
        await channel.queue_delete(unique)


async def test_stop_returns_the_messages_of_tasks_that_do_not_finish(
    amqp_url: str, unique: str
) -> None:
    ledger = Ledger()
    started: list[str] = []

    async def hangs(envelope: codec.Envelope) -> None:
        started.append(envelope.id)
        await asyncio.Event().wait()

    consumer = Consumer(amqp_url, unique, hangs, prefetch=3, ledger=ledger)
    await consumer.start()
    await publish(amqp_url, unique, 5)
    await wait_until(lambda: len(started) == 3, timeout_s=10, what="3 tasks")
    await consumer.stop(timeout_s=0.2)

    frame = ledger.frame()
    returned = frame[frame.detail == "returned to the queue at stop"]
    assert len(returned) == 3
    assert events(ledger, Event.ACKED) == 0
    async with admin_channel(amqp_url) as channel:
        assert await queue_depth(channel, unique) == 5
        await channel.queue_delete(unique)


async def test_concurrency_caps_the_tasks_running_at_once(
    amqp_url: str, unique: str
) -> None:
    running = peak = done = 0

    async def task(envelope: codec.Envelope) -> None:
        nonlocal running, peak, done
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        done += 1

    consumer = Consumer(amqp_url, unique, task, prefetch=10, concurrency=2)
    await consumer.start()
    await publish(amqp_url, unique, 30)
    await wait_until(lambda: done == 30, timeout_s=10, what="30 tasks")
    await consumer.stop()
    assert peak == 2
    async with admin_channel(amqp_url) as channel:
        await channel.queue_delete(unique)
