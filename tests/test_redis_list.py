"""The Redis list queues on the real server: blocking, cancelling, and a worker
process killed while it holds a task (lost with BRPOP, returned by the reaper
with the reliable queue)."""

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio

from queuelab import envelope as codec
from queuelab.brokers import REDIS_ENV, Broker
from queuelab.errors import ConfigError, EnvelopeError
from queuelab.experiments import workload
from queuelab.ledger import Event, Ledger, read_events
from queuelab.redisq import ListQueue, Outcome, ReliableListQueue, consume

QueueFactory = Callable[[redis.asyncio.Redis, str], ListQueue | ReliableListQueue]

QUEUES: dict[str, QueueFactory] = {
    "brpop": lambda client, name: ListQueue(client, name),
    "reliable": lambda client, name: ReliableListQueue(client, name, worker="w1"),
}


@pytest.fixture(params=sorted(QUEUES))
async def queue(
    request: pytest.FixtureRequest, redis_client: redis.asyncio.Redis, unique: str
) -> AsyncIterator[ListQueue | ReliableListQueue]:
    made = QUEUES[request.param](redis_client, unique)
    yield made
    await made.delete()
    await made.close()


@pytest.mark.slow
async def test_a_block_longer_than_the_socket_timeout_returns_empty(
    redis_broker: Broker, unique: str
) -> None:
    client = redis_broker.redis(socket_timeout=4)
    queue = ReliableListQueue(client, unique, worker="w1")
    started = time.monotonic()

    assert await queue.pop(timeout_s=8) is None

    assert time.monotonic() - started >= 7.9  # it waited the whole 8 s
    assert await client.ping()
    await queue.close()
    await queue.delete()
    await client.aclose()


async def test_the_seed_queue_also_outlasts_its_socket_timeout(
    redis_broker: Broker, unique: str
) -> None:
    client = redis_broker.redis(socket_timeout=0.5)
    queue = ListQueue(client, unique)
    assert await queue.pop(timeout_s=1.2) is None
    await queue.close()
    await client.aclose()


@pytest.mark.parametrize("timeout_s", [0, -1, True])
async def test_a_block_timeout_redis_would_misread_is_refused(
    queue: ListQueue | ReliableListQueue, timeout_s: float
) -> None:
    with pytest.raises(ConfigError, match="timeout_s"):
        await queue.pop(timeout_s)


async def test_a_cancelled_pop_leaves_the_client_usable_at_once(
    queue: ListQueue | ReliableListQueue,
) -> None:
    """The cancelled BRPOP/BLMOVE must not take the next push with it."""
    blocked = asyncio.create_task(queue.pop(timeout_s=10))
    await asyncio.sleep(0.3)
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked

    sent = codec.new({"after": "cancel"}, 0)
    await queue.push(sent)
    got = await asyncio.wait_for(queue.pop(timeout_s=3), 5)

    assert got is not None
    assert got.id == sent.id
    assert await queue.length() == 0


async def test_both_queues_are_fifo(queue: ListQueue | ReliableListQueue) -> None:
    for envelope in workload(30):
        await queue.push(envelope)
    seqs = []
    while (envelope := await queue.pop(0.1)) is not None:
        seqs.append(envelope.seq)
        await queue.done(envelope)
    assert seqs == list(range(30))


async def test_a_malformed_item_is_dead_lettered_by_either_queue(
    queue: ListQueue | ReliableListQueue, redis_client: redis.asyncio.Redis
) -> None:
    await redis_client.lpush(queue.name, b'{"v": 1}')
    with pytest.raises(EnvelopeError, match="missing field"):
        await queue.pop(1)
    [record] = await queue.dead_letters()
    assert "missing field" in record["reason"]
    assert record["data"] == '{"v": 1}'
    assert await queue.length() == 0
    if isinstance(queue, ReliableListQueue):
        assert await queue.in_flight() == 0


async def test_a_task_that_raises_is_dropped_by_brpop_and_retried_by_reliable(
    queue: ListQueue | ReliableListQueue,
) -> None:
    sent = codec.new({"fails": "once"}, 0)
    await queue.push(sent)
    ledger, stop = Ledger(), asyncio.Event()
    calls: list[int] = []

    async def task(envelope: codec.Envelope) -> None:
        calls.append(envelope.attempt)
        if len(calls) == 1:
            raise RuntimeError("flaky")

    consumer = asyncio.create_task(consume(queue, task, stop=stop, ledger=ledger))
    await asyncio.sleep(1.0)
    stop.set()
    await consumer

    if isinstance(queue, ListQueue):
        assert calls == [1]  # dropped after the first failure
    else:
        assert calls == [1, 2]  # retried with its attempt raised
        assert await queue.in_flight() == 0
    nacked = ledger.frame().query("event == 'nacked'")
    assert len(nacked) == 1


async def test_a_task_failing_every_time_is_dead_lettered_after_max_attempts(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    queue = ReliableListQueue(redis_client, unique, worker="w1", max_attempts=3)
    await queue.push(codec.new({"poison": True}, 0))
    outcomes = []
    while (envelope := await queue.pop(0.2)) is not None:
        outcomes.append(await queue.failed(envelope, "always fails"))
    assert outcomes == [Outcome.RETRIED, Outcome.RETRIED, Outcome.DEAD_LETTERED]
    [record] = await queue.dead_letters()
    assert record["reason"] == "always fails"
    await queue.delete()
    await queue.close()


async def test_a_slow_worker_finishing_after_the_timeout_is_told_its_task_ran_again(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    slow = ReliableListQueue(
        redis_client, unique, worker="slow", visibility_timeout_s=0.2
    )
    other = ReliableListQueue(redis_client, unique, worker="other")
    await slow.push(codec.new({}, 0))
    held = await slow.pop(1)
    assert held is not None
    await asyncio.sleep(0.3)

    assert await other.reap() == 1
    again = await other.pop(1)
    assert again is not None
    assert (again.id, again.attempt) == (held.id, 2)
    assert await slow.done(held) is False
    assert await other.done(again) is True
    assert await other.in_flight() == 0
    for queue in (slow, other):
        await queue.close()
    await other.delete()


async def test_a_restarted_worker_returns_what_its_former_self_held(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    first = ReliableListQueue(redis_client, unique, worker="w1")
    await first.push(codec.new({"n": 1}, 1))
    taken = await first.pop(1)
    assert taken is not None
    await first.close(release=False)  # dies holding it

    second = ReliableListQueue(redis_client, unique, worker="w1")
    again = await second.pop(1)
    assert again is not None
    assert (again.id, again.attempt) == (taken.id, 2)
    await second.close()
    await second.delete()


# A worker process killed with SIGKILL ----------------------------------------


async def _start_worker(
    url: str, backend: str, queue: str, name: str, folder: Path
) -> tuple[asyncio.subprocess.Process, Path]:
    ledger = folder / f"{name}.jsonl"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "queuelab.redisq.worker",
        "--backend", backend, "--queue", queue, "--worker", name,
        "--ledger", str(ledger), "--task-s", "60", "--visibility-s", "0.5",
        stdin=asyncio.subprocess.DEVNULL,
        env={**os.environ, REDIS_ENV: url},
    )  # fmt: skip
    return process, ledger


async def _wait_until_delivered(ledger: Path, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        frame = read_events(ledger)
        delivered = frame[frame.event == Event.DELIVERED]
        if len(delivered):
            return str(delivered.message_id.iloc[0])
        await asyncio.sleep(0.05)
    raise AssertionError(f"the worker delivered nothing within {timeout_s} s")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["brpop", "reliable"])
async def test_a_worker_process_killed_holding_a_task(
    backend: str,
    redis_broker: Broker,
    redis_client: redis.asyncio.Redis,
    unique: str,
    tmp_path: Path,
) -> None:
    """BRPOP loses the task the dead worker held; the reliable queue returns it."""
    queue = ReliableListQueue(redis_client, unique, worker="survivor")
    sent = list(workload(3))
    for envelope in sent:
        await queue.push(envelope)

    process, ledger = await _start_worker(
        redis_broker.url, backend, unique, "doomed", tmp_path
    )
    held_id = await _wait_until_delivered(ledger)
    os.kill(process.pid, signal.SIGKILL)
    assert await process.wait() == -signal.SIGKILL

    deadline = time.monotonic() + 10
    returned = 0
    while backend == "reliable" and not returned and time.monotonic() < deadline:
        returned = await queue.reap()
        await asyncio.sleep(0.1)

    remaining = []
    while (envelope := await queue.pop(0.2)) is not None:
        remaining.append(envelope)
        await queue.done(envelope)
    remaining_ids = {envelope.id for envelope in remaining}
    assert remaining_ids <= {envelope.id for envelope in sent}

    if backend == "brpop":
        assert held_id not in remaining_ids  # lost for good
        assert len(remaining) == 2
    else:
        assert returned == 1
        assert held_id in remaining_ids
        [again] = [e for e in remaining if e.id == held_id]
        assert again.attempt == 2
        assert len(remaining) == 3
    assert await queue.in_flight() == 0
    await queue.close()
    await queue.delete()
