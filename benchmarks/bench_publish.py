"""Publishing and consuming on RabbitMQ: queuelab next to plain aio-pika.

Publishing: persistent messages with publisher confirms to a durable queue,
awaited one at a time and with a window of confirms in flight, through
queuelab's ``Producer`` and through bare ``exchange.publish`` calls.

Consuming: a preloaded queue drained by queuelab's ``Consumer`` (strict
decode, ledger, ack after the task) and by ``queue.consume`` with
``message.process()`` and ``json.loads``, both with prefetch 100 and an empty
task.

Run: ``python -m benchmarks [--quick] bench_publish``.
"""

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable

import aio_pika
import pandas as pd

from queuelab import envelope as codec
from queuelab.brokers import find_rabbitmq
from queuelab.experiments import workload
from queuelab.rabbitmq import Consumer, Producer
from queuelab.rabbitmq.connection import admin_channel

WINDOW = 100
PREFETCH = 100


def main(quick: bool = False) -> pd.DataFrame:
    broker = find_rabbitmq()
    try:
        return asyncio.run(_all(broker.url, 300 if quick else 5000))
    finally:
        broker.close()


Run = Callable[[str], Awaitable[None]]


async def _all(url: str, n: int) -> pd.DataFrame:
    bodies = [codec.encode(e) for e in workload(n)]
    publishers: list[tuple[str, str, Run]] = [
        ("queuelab", "one at a time", lambda q: _queuelab_publish(url, q, n, 1)),
        ("aio-pika", "one at a time", lambda q: _plain_publish(url, q, bodies, 1)),
        (
            "queuelab",
            f"window {WINDOW}",
            lambda q: _queuelab_publish(url, q, n, WINDOW),
        ),
        (
            "aio-pika",
            f"window {WINDOW}",
            lambda q: _plain_publish(url, q, bodies, WINDOW),
        ),
    ]
    consumers: list[tuple[str, str, Run]] = [
        ("queuelab", "Consumer", lambda q: _queuelab_consume(url, q, n)),
        ("aio-pika", "consume + process()", lambda q: _plain_consume(url, q, n)),
    ]

    async def preload(queue: str) -> None:
        await _plain_publish(url, queue, bodies, WINDOW)

    rows = []
    for implementation, mode, run in publishers:
        seconds = await _timed(url, run)
        rows.append(_row("publish", implementation, mode, n, seconds))
    for implementation, mode, run in consumers:
        seconds = await _timed(url, run, prepare=preload)
        rows.append(_row("consume", implementation, mode, n, seconds))
    return pd.DataFrame(rows)


def _row(
    benchmark: str, implementation: str, mode: str, n: int, seconds: float
) -> dict[str, object]:
    return {
        "benchmark": benchmark,
        "implementation": implementation,
        "mode": mode,
        "messages": n,
        "seconds": round(seconds, 3),
        "per_s": round(n / seconds, 1),
    }


async def _timed(url: str, run: Run, *, prepare: Run | None = None) -> float:
    """Seconds ``run`` takes on a fresh queue (``prepare`` runs untimed first)."""
    queue = f"queuelab.bench.{uuid.uuid4().hex[:8]}"
    if prepare is not None:
        await prepare(queue)
    start = time.perf_counter()
    await run(queue)
    seconds = time.perf_counter() - start
    async with admin_channel(url) as channel:
        await channel.queue_delete(queue)
    return seconds


async def _queuelab_publish(url: str, queue: str, n: int, window: int) -> None:
    async with Producer(url, queue, window=window) as producer:
        messages = list(workload(n))
        if window == 1:
            for envelope in messages:
                await producer.publish(envelope)
        else:
            await producer.publish_many(messages)


async def _plain_publish(
    url: str, queue: str, bodies: list[bytes], window: int
) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True)
        slots = asyncio.Semaphore(window)

        async def one(body: bytes) -> None:
            try:
                await channel.default_exchange.publish(
                    aio_pika.Message(
                        body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                    ),
                    routing_key=queue,
                )
            finally:
                slots.release()

        async with asyncio.TaskGroup() as group:
            for body in bodies:
                await slots.acquire()
                group.create_task(one(body))


async def _queuelab_consume(url: str, queue: str, n: int) -> None:
    done = asyncio.Event()
    count = 0

    async def task(envelope: codec.Envelope) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set()

    consumer = Consumer(url, queue, task, prefetch=PREFETCH)
    await consumer.start()
    await done.wait()
    await consumer.stop()


async def _plain_consume(url: str, queue: str, n: int) -> None:
    done = asyncio.Event()
    count = 0

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal count
        async with message.process():
            json.loads(message.body)
            count += 1
            if count == n:
                done.set()

    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        declared = await channel.declare_queue(queue, durable=True)
        await declared.consume(on_message)
        await done.wait()


if __name__ == "__main__":
    print(main(quick=True).to_string(index=False))
