"""The basic experiment: N messages from one producer through N consumers.

The same workload goes through a broker and back; the ledger records every
step, and the result carries the checker's verdict, the summary and the
broker's own count of messages left in the queue, read at the end. That last
number is the cross-check: a ledger that says "all processed" while the broker
still holds messages would be lying.
"""

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import pandas as pd
import redis.asyncio
from tqdm.auto import tqdm

from queuelab import envelope as codec
from queuelab.envelope import Envelope
from queuelab.ledger import CheckResult, Event, Ledger, Summary, check, summarize
from queuelab.rabbitmq import Consumer, Producer, queue_depth
from queuelab.rabbitmq.connection import connect
from queuelab.redisq import ListQueue, consume


@dataclass
class RoundTrip:
    """What one run produced."""

    backend: str
    ledger: pd.DataFrame
    verdict: CheckResult
    summary: Summary
    depth_after: int  # messages left in the queue, as the broker reports it

    def as_row(self) -> dict[str, object]:
        return {
            "backend": self.backend,
            **self.summary.as_row(),
            "left": self.depth_after,
        }


def workload(n: int, *, body_bytes: int = 64, seed: int = 0) -> Iterator[Envelope]:
    """``n`` task envelopes with seeded payloads of ``body_bytes`` characters."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    for seq in range(n):
        payload = "".join(rng.choices(alphabet, k=body_bytes))
        yield codec.new({"n": seq, "payload": payload}, seq)


async def rabbitmq_roundtrip(
    url: str,
    n: int,
    *,
    consumers: int = 1,
    prefetch: int = 10,
    window: int = 100,
    task_s: float = 0.0,
    rate_per_s: float | None = None,
    seed: int = 0,
    progress: bool = False,
) -> RoundTrip:
    """Publish ``n`` messages with confirms and consume them all.

    Without ``rate_per_s`` the producer publishes as fast as it can, so the
    latency includes the time messages wait behind each other in the queue;
    with it, messages are offered at that rate and latency is the broker's own.
    """
    queue = f"queuelab.roundtrip.{uuid.uuid4().hex[:8]}"
    ledger = Ledger()
    done, task = _counting_task(n, task_s, progress, "rabbitmq")

    workers = [
        Consumer(url, queue, task, prefetch=prefetch, ledger=ledger, worker=f"c{i}")
        for i in range(consumers)
    ]
    for worker in workers:
        await worker.start()
    try:
        async with Producer(url, queue, ledger=ledger, window=window) as producer:
            if rate_per_s is None:
                await producer.publish_many(workload(n, seed=seed))
            else:
                await _publish_paced(producer, n, seed, rate_per_s, window)
        await done.wait()
    finally:
        for worker in workers:
            await worker.stop()
        connection = await connect(url)
        async with connection:
            channel = await connection.channel()
            depth = await queue_depth(channel, queue)
            await channel.queue_delete(queue)
    return _result("rabbitmq", ledger, depth)


async def _publish_paced(
    producer: Producer, n: int, seed: int, rate_per_s: float, window: int
) -> None:
    """One publish every ``1 / rate_per_s`` seconds, ``window`` confirms open."""
    slots = asyncio.Semaphore(window)
    start = time.monotonic()

    async def one(envelope: Envelope) -> None:
        try:
            await producer.publish(envelope)
        finally:
            slots.release()

    async with asyncio.TaskGroup() as group:
        for i, envelope in enumerate(workload(n, seed=seed)):
            await asyncio.sleep(max(0.0, start + i / rate_per_s - time.monotonic()))
            await slots.acquire()
            group.create_task(one(envelope))


async def redis_list_roundtrip(
    client_factory: Callable[[], "redis.asyncio.Redis"],
    n: int,
    *,
    consumers: int = 1,
    task_s: float = 0.0,
    rate_per_s: float | None = None,
    seed: int = 0,
    progress: bool = False,
) -> RoundTrip:
    """LPUSH ``n`` messages and BRPOP them all; one client per consumer.

    ``rate_per_s`` paces the pushes as in :func:`rabbitmq_roundtrip`.
    """
    name = f"queuelab:roundtrip:{uuid.uuid4().hex[:8]}"
    ledger = Ledger()
    done, task = _counting_task(n, task_s, progress, "redis-list")
    stop = asyncio.Event()
    clients = [client_factory() for _ in range(consumers + 1)]
    producer_queue = ListQueue(clients[0], name)

    queues = [ListQueue(client, name) for client in clients[1:]]
    start = time.monotonic()
    try:
        async with asyncio.TaskGroup() as group:
            for i, queue in enumerate(queues):
                group.create_task(
                    consume(queue, task, stop=stop, ledger=ledger, worker=f"c{i}")
                )
            for i, envelope in enumerate(workload(n, seed=seed)):
                if rate_per_s is not None:
                    await asyncio.sleep(
                        max(0.0, start + i / rate_per_s - time.monotonic())
                    )
                ledger.record(Event.PUBLISHED, envelope.id, worker="producer")
                await producer_queue.push(envelope)
            await done.wait()
            stop.set()
    finally:
        depth = await producer_queue.length()
        await producer_queue.delete()
        for queue in queues:
            await queue.close()
        for client in clients:
            await client.aclose()
    return _result("redis-list", ledger, depth)


def _counting_task(
    n: int, task_s: float, progress: bool, label: str
) -> tuple[asyncio.Event, Callable[[Envelope], Awaitable[None]]]:
    """A task that takes ``task_s`` and sets the event after ``n`` calls."""
    done = asyncio.Event()
    bar = tqdm(total=n, desc=label, unit="msg", disable=not progress, leave=False)
    calls = 0

    async def task(envelope: Envelope) -> None:
        nonlocal calls
        if task_s:
            await asyncio.sleep(task_s)
        calls += 1
        bar.update()
        if calls >= n:
            bar.close()
            done.set()

    return done, task


def _result(backend: str, ledger: Ledger, depth: int) -> RoundTrip:
    frame = ledger.frame()
    return RoundTrip(backend, frame, check(frame), summarize(frame), depth)
