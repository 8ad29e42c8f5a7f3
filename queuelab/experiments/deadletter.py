"""Failing tasks on RabbitMQ: dropped by ``process()``, or retried, then parked.

Two runs on the same kinds of message:

- :func:`process_default_run` gives every message to the commonly written
  consumer (``async with message.process()``) with a task that raises. Each
  message is delivered once and rejected without requeue: gone, or in the
  dead-letter queue if the queue has one. None is retried.
- :func:`retry_run` mixes messages whose task fails a few times then
  succeeds, messages whose task always fails, and bodies that are not valid
  envelopes, and gives them to :class:`~queuelab.rabbitmq.Consumer` with
  ``OnFailure.RETRY``. Flaky ones are processed after their retries, doomed
  ones are parked after the last attempt, malformed ones are parked at once.

Each run returns its ledger, what ended in the dead-letter queue (read from
the broker, with the reasons from the headers) and one outcome per message.
"""

import asyncio
from collections import Counter
from dataclasses import dataclass

import aio_pika
import pandas as pd

from queuelab import envelope as codec
from queuelab.envelope import Envelope
from queuelab.experiments.common import unique_name, wait_until
from queuelab.ledger import Event, Ledger
from queuelab.rabbitmq import Consumer, OnFailure, Producer, read_dead_letters
from queuelab.rabbitmq.connection import admin_channel
from queuelab.rabbitmq.seed import SeedConsumer
from queuelab.rabbitmq.topology import Backoff, WorkQueue, queue_depth

MALFORMED_BODIES = (b"\x80\x81 not UTF-8", b'{"v": 1, "id": "x"', b"[1, 2, 3]")
FINAL = (Event.PROCESSED, Event.DEAD_LETTERED)


class TaskFailed(Exception):
    """The failure the experiment's tasks raise on purpose."""


@dataclass
class DeadLetterRun:
    """What happened to each message of a run."""

    ledger: pd.DataFrame
    dead: pd.DataFrame  # message_id, reason, attempts, body_bytes, broker_deaths
    outcomes: pd.DataFrame  # message_id, kind, attempts (task runs), outcome
    left: dict[str, int]  # messages still in each queue, from the broker


async def process_default_run(
    url: str, n: int = 10, *, dead_letters: bool = False, timeout_s: float = 20.0
) -> DeadLetterRun:
    """``n`` messages to the commonly written consumer; every task raises."""
    spec = WorkQueue(unique_name("process"), dead_letters=dead_letters)
    ledger = Ledger()
    kinds: dict[str, str] = {}

    async def task(envelope: Envelope) -> None:
        raise TaskFailed(f"task for message {envelope.seq} failed")

    async with Producer(url, spec, ledger=ledger, window=50) as producer:
        for seq in range(n):
            envelope = codec.new({"kind": "fails"}, seq)
            kinds[envelope.id] = "fails"
            await producer.publish(envelope)

    consumer = SeedConsumer(url, spec, task, ledger=ledger)
    await consumer.start()
    await wait_until(
        lambda: _count(ledger, Event.NACKED) >= n,
        timeout_s=timeout_s,
        what=f"{n} rejections",
    )
    await asyncio.sleep(0.3)  # time for any redelivery to show up (none does)
    await consumer.stop()
    return await _finish(url, spec, ledger, kinds)


async def retry_run(
    url: str,
    *,
    flaky: int = 4,
    fail_times: int = 2,
    doomed: int = 2,
    malformed: int = 2,
    backoff: Backoff | None = None,
    timeout_s: float = 30.0,
) -> DeadLetterRun:
    """Flaky, doomed and malformed messages through ``OnFailure.RETRY``."""
    backoff = backoff or Backoff(attempts=4, first_delay_s=0.2, factor=2.0)
    spec = WorkQueue(unique_name("retry"), backoff=backoff)
    ledger = Ledger()
    kinds: dict[str, str] = {}
    failures: Counter[str] = Counter()

    async def task(envelope: Envelope) -> None:
        kind = envelope.body["kind"]
        failures[envelope.id] += 1
        still_flaky = kind == "flaky" and failures[envelope.id] <= fail_times
        if kind == "doomed" or still_flaky:
            raise TaskFailed(f"{kind} task {envelope.seq} failed")

    consumer = Consumer(
        url, spec, task, prefetch=10, on_failure=OnFailure.RETRY, ledger=ledger
    )
    await consumer.start()
    async with Producer(url, spec, ledger=ledger, window=50) as producer:
        plan = ["flaky"] * flaky + ["doomed"] * doomed
        for seq, kind in enumerate(plan):
            envelope = codec.new({"kind": kind}, seq)
            kinds[envelope.id] = kind
            await producer.publish(envelope)
        await _publish_malformed(producer, spec, ledger, kinds, malformed)

    total = len(kinds)
    await wait_until(
        lambda: sum(_count(ledger, event) for event in FINAL) >= total,
        timeout_s=timeout_s,
        what=f"all {total} messages processed or dead-lettered",
    )
    await consumer.stop()
    return await _finish(url, spec, ledger, kinds)


async def _publish_malformed(
    producer: Producer,
    spec: WorkQueue,
    ledger: Ledger,
    kinds: dict[str, str],
    count: int,
) -> None:
    """Bodies a careless producer might send; the consumer must not loop."""
    async with admin_channel(producer.url) as channel:
        for i in range(count):
            message_id = f"malformed-{i}"
            kinds[message_id] = "malformed"
            ledger.record(Event.PUBLISHED, message_id, worker="producer")
            body = MALFORMED_BODIES[i % len(MALFORMED_BODIES)]
            await channel.default_exchange.publish(
                aio_pika.Message(body, message_id=message_id), routing_key=spec.name
            )


async def _finish(
    url: str, spec: WorkQueue, ledger: Ledger, kinds: dict[str, str]
) -> DeadLetterRun:
    async with admin_channel(url) as channel:
        left = {name: await queue_depth(channel, name) for name in spec.all_queues()}
        dead = (
            await read_dead_letters(channel, spec, remove=True)
            if spec.has_dead_letters
            else []
        )
        await spec.delete(channel)
    frame = ledger.frame()
    dead_frame = pd.DataFrame(
        [letter.as_row() for letter in dead],
        columns=["message_id", "reason", "attempts", "body_bytes", "broker_deaths"],
    )
    return DeadLetterRun(frame, dead_frame, _outcomes(frame, kinds), left)


def _outcomes(frame: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    rows = []
    for message_id, kind in kinds.items():
        events = frame[frame.message_id == message_id]
        final = events[events.event.isin([e.value for e in FINAL])]
        rows.append(
            {
                "message_id": message_id,
                "kind": kind,
                "attempts": int((events.event == Event.DELIVERED).sum()),
                "outcome": final.event.iloc[-1] if len(final) else "gone",
            }
        )
    return pd.DataFrame(rows)


def _count(ledger: Ledger, event: Event) -> int:
    frame = ledger.frame()
    return int((frame.event == event).sum())
