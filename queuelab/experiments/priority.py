"""Priorities on RabbitMQ, and how a large prefetch defeats them.

A queue declared with ``x-max-priority`` hands out its highest-priority
waiting message first. The word that matters is *waiting*: messages already
delivered to a consumer (up to its prefetch) have left the queue, and an
urgent message published later cannot overtake them.

The run fills a priority queue with low-priority work, starts one consumer
that runs one task at a time with the given prefetch, then publishes a few
urgent messages. For each urgent message it counts the low-priority tasks
that started after the urgent one was published and before it started: about
``prefetch - 1`` of them, the ones already in the consumer's hands.
"""

import asyncio
import time
from dataclasses import dataclass

import pandas as pd

from queuelab import envelope as codec
from queuelab.envelope import Envelope
from queuelab.experiments.common import unique_name, wait_until
from queuelab.ledger import Ledger
from queuelab.rabbitmq import Consumer, Producer
from queuelab.rabbitmq.connection import admin_channel
from queuelab.rabbitmq.topology import WorkQueue

LOW, URGENT = 1, 9


@dataclass
class PriorityRun:
    """The order one consumer ran a priority queue's messages in."""

    prefetch: int
    order: pd.DataFrame  # position, seq, kind, priority, published_t, started_t
    ledger: pd.DataFrame

    def overtaken(self) -> pd.Series:
        """Per urgent message: low-priority tasks started after it was published."""
        order = self.order
        low = order[order.kind == "low"]
        urgent = order.loc[order.kind == "urgent", ["seq", "published_t", "started_t"]]
        counts = {}
        for seq, published_t, started_t in urgent.itertuples(index=False, name=None):
            after_publish = low.started_t > published_t
            before_start = low.started_t < started_t
            counts[int(seq)] = int((after_publish & before_start).sum())
        return pd.Series(counts, name="low_tasks_run_first")

    def as_row(self) -> dict[str, object]:
        overtaken = self.overtaken()
        return {
            "prefetch": self.prefetch,
            "urgent": len(overtaken),
            "mean_low_tasks_run_first": round(float(overtaken.mean()), 1),
            "max_low_tasks_run_first": int(overtaken.max()),
        }


async def priority_run(
    url: str,
    *,
    prefetch: int,
    low: int = 30,
    urgent: int = 3,
    task_s: float = 0.02,
    timeout_s: float = 30.0,
) -> PriorityRun:
    """Low-priority backlog, then ``urgent`` messages, through one consumer."""
    spec = WorkQueue(unique_name("priority"), max_priority=10)
    ledger = Ledger()
    published: dict[int, float] = {}
    started: list[tuple[int, str, int, float]] = []

    async def task(envelope: Envelope) -> None:
        body = envelope.body
        started.append((envelope.seq, body["kind"], body["priority"], time.monotonic()))
        await asyncio.sleep(task_s)

    async with Producer(url, spec, ledger=ledger, window=50) as producer:
        for seq in range(low):
            await producer.publish(
                codec.new({"kind": "low", "priority": LOW}, seq), priority=LOW
            )
            published[seq] = time.monotonic()

        consumer = Consumer(
            url, spec, task, prefetch=prefetch, concurrency=1, ledger=ledger
        )
        await consumer.start()
        await wait_until(lambda: len(started) >= 2, timeout_s=5, what="first tasks")
        for seq in range(low, low + urgent):
            published[seq] = time.monotonic()
            await producer.publish(
                codec.new({"kind": "urgent", "priority": URGENT}, seq), priority=URGENT
            )

    total = low + urgent
    await wait_until(
        lambda: len(started) >= total, timeout_s=timeout_s, what=f"{total} tasks"
    )
    await consumer.stop()
    async with admin_channel(url) as channel:
        await spec.delete(channel)

    order = pd.DataFrame(started, columns=["seq", "kind", "priority", "started_t"])
    order["published_t"] = order.seq.map(published)
    order.insert(0, "position", range(len(order)))
    return PriorityRun(prefetch, order, ledger.frame())
