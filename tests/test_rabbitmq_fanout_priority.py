"""Fanout pub/sub and priority queues on RabbitMQ.

Given a fanout exchange, every subscriber queue gets every message, and a
durable subscriber queue keeps what is published while its subscriber is
away. Given a priority queue, waiting messages come out highest priority
first, but a prefetch above one hands out low-priority messages before a
later urgent one can overtake them.
"""

import pytest

from queuelab import envelope as codec
from queuelab.experiments import workload
from queuelab.experiments.common import wait_until
from queuelab.experiments.priority import priority_run
from queuelab.experiments.pubsub import PHASES, fanout_run
from queuelab.ledger import Ledger
from queuelab.rabbitmq import Consumer, Fanout, Producer, WorkQueue
from queuelab.rabbitmq.connection import admin_channel
from queuelab.rabbitmq.consumer import Task


async def test_every_subscriber_receives_every_message(
    amqp_url: str, unique: str
) -> None:
    fanout = Fanout(unique)
    seen: dict[str, list[int]] = {"a": [], "b": [], "c": []}

    def task_for(name: str) -> Task:
        async def task(envelope: codec.Envelope) -> None:
            seen[name].append(envelope.seq)

        return task

    consumers = [
        Consumer(
            amqp_url, fanout.subscription(name, durable=name == "a"), task_for(name)
        )
        for name in seen
    ]
    for consumer in consumers:
        await consumer.start()
    async with Producer(amqp_url, fanout, window=10) as producer:
        await producer.publish_many(workload(25))
    await wait_until(
        lambda: all(len(s) == 25 for s in seen.values()), timeout_s=10, what="25 each"
    )
    for consumer in consumers:
        await consumer.stop()

    assert all(sorted(s) == list(range(25)) for s in seen.values())
    async with admin_channel(amqp_url) as channel:
        await fanout.subscription("a", durable=True).delete(channel)
        await fanout.delete(channel)


async def test_a_durable_subscriber_keeps_what_was_published_while_it_was_away(
    amqp_url: str,
) -> None:
    run = await fanout_run(amqp_url, per_phase=10)

    assert run.received["durable"].tolist() == [10, 10, 10]
    assert run.received["exclusive"].tolist() == [10, 0, 10]
    assert list(run.received.index) == list(PHASES)


async def test_waiting_messages_come_out_highest_priority_first(
    amqp_url: str, unique: str
) -> None:
    spec = WorkQueue(unique, max_priority=10)
    ledger = Ledger()
    async with Producer(amqp_url, spec, ledger=ledger, window=10) as producer:
        await producer.publish_many(workload(20), priority=lambda e: e.seq % 4)
    order: list[int] = []

    async def task(envelope: codec.Envelope) -> None:
        order.append(envelope.seq % 4)

    consumer = Consumer(amqp_url, spec, task, prefetch=1)
    await consumer.start()
    await wait_until(lambda: len(order) == 20, timeout_s=10, what="20 tasks")
    await consumer.stop()

    assert order == sorted(order, reverse=True)
    async with admin_channel(amqp_url) as channel:
        await spec.delete(channel)


@pytest.mark.parametrize("prefetch", [1, 10])
async def test_a_prefetch_above_one_lets_delivered_low_priority_work_run_first(
    amqp_url: str, prefetch: int
) -> None:
    run = await priority_run(amqp_url, prefetch=prefetch, low=20, urgent=2)
    overtaken = run.overtaken()

    if prefetch == 1:
        assert overtaken.max() <= 1  # at most the delivery already under way
    else:
        assert overtaken.min() >= prefetch // 2  # the buffer ran first
    assert set(run.order.kind) == {"low", "urgent"}
    assert len(run.order) == 22
