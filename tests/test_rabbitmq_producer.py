"""The confirmed producer: windows, refusals reported, resends after a restart.

Given a confirmed publish, the broker has the message; given a publish the
broker will not take, the producer says so; given a connection that drops
with publishes in flight, the producer sends them again and the ledger shows
each send.
"""

import asyncio
from dataclasses import dataclass

import pytest
from aio_pika.abc import AbstractChannel, AbstractExchange

from queuelab import envelope as codec
from queuelab.brokers import start_private_rabbitmq
from queuelab.errors import ConfigError, PublishError
from queuelab.experiments import workload
from queuelab.experiments.common import wait_until
from queuelab.ledger import Event, Ledger, check
from queuelab.rabbitmq import Consumer, Fanout, Producer, WorkQueue, queue_depth
from queuelab.rabbitmq.connection import admin_channel


@pytest.mark.parametrize("window", [1, 10, 100])
async def test_every_message_of_a_confirm_window_is_confirmed_and_queued(
    amqp_url: str, unique: str, window: int
) -> None:
    ledger = Ledger()
    async with Producer(amqp_url, unique, ledger=ledger, window=window) as producer:
        sent = await producer.publish_many(workload(300))

    verdict = check(ledger.frame())
    assert sent == verdict.confirmed == verdict.published == 300
    async with admin_channel(amqp_url) as channel:
        assert await queue_depth(channel, unique) == 300
        await channel.queue_delete(unique)


def test_a_confirm_window_below_one_is_refused(amqp_url: str) -> None:
    with pytest.raises(ConfigError, match="window must be >= 1"):
        Producer(amqp_url, "q", window=0)


async def test_returned_publishes_are_each_recorded_and_named_in_one_error(
    amqp_url: str, unique: str
) -> None:
    ledger = Ledger()
    fanout = Fanout(unique)  # no queue bound: every publish comes back
    async with Producer(amqp_url, fanout, ledger=ledger, window=5) as producer:
        with pytest.raises(PublishError, match="5 of 5 messages"):
            await producer.publish_many(workload(5))

    frame = ledger.frame()
    refused = frame[frame.event == Event.NACKED]
    assert len(refused) == 5
    assert set(refused.detail) == {"returned unroutable"}
    assert check(frame).confirmed == 0
    async with admin_channel(amqp_url) as channel:
        await fanout.delete(channel)


@dataclass(frozen=True)
class FullQueue:
    """A queue that holds one message and refuses more: the broker nacks."""

    name: str

    @property
    def label(self) -> str:
        return self.name

    @property
    def routing_key(self) -> str:
        return self.name

    async def declare_exchange(self, channel: AbstractChannel) -> AbstractExchange:
        arguments = {"x-max-length": 1, "x-overflow": "reject-publish"}
        await channel.declare_queue(self.name, durable=True, arguments=arguments)
        return channel.default_exchange


async def test_a_publish_the_broker_nacks_raises_and_is_recorded(
    amqp_url: str, unique: str
) -> None:
    ledger = Ledger()
    first, second = workload(2)
    async with Producer(amqp_url, FullQueue(unique), ledger=ledger) as producer:
        await producer.publish(first)
        with pytest.raises(PublishError, match="broker nacked"):
            await producer.publish(second)

    frame = ledger.frame()
    assert frame[frame.event == Event.NACKED].message_id.tolist() == [second.id]
    assert check(frame).confirmed == 1
    async with admin_channel(amqp_url) as channel:
        await channel.queue_delete(unique)


async def test_producer_and_consumer_agree_on_queue_arguments(
    amqp_url: str, unique: str
) -> None:
    """Both ends declare the same WorkQueue, so neither trips the other's
    declaration (RabbitMQ refuses a redeclare with other arguments)."""
    spec = WorkQueue(unique, max_priority=5, dead_letters=True)
    seen: list[int] = []

    async def task(envelope: codec.Envelope) -> None:
        seen.append(envelope.seq)

    consumer = Consumer(amqp_url, spec, task)
    await consumer.start()
    async with Producer(amqp_url, spec, window=10) as producer:
        await producer.publish_many(workload(20))
    await wait_until(lambda: len(seen) == 20, timeout_s=10, what="20 tasks")
    await consumer.stop()
    async with admin_channel(amqp_url) as channel:
        await spec.delete(channel)


@pytest.mark.slow
async def test_after_a_broker_restart_every_confirmed_message_is_processed() -> None:
    """A private node is restarted while a producer publishes and two
    consumers consume. Publishes in flight are sent again, consumers come
    back, and every confirmed message is processed; any message processed
    twice was either sent twice or delivered twice."""
    n = 1500
    broker = await asyncio.to_thread(start_private_rabbitmq)
    try:
        url = broker.url
        ledger = Ledger()
        processed: list[str] = []

        async def task(envelope: codec.Envelope) -> None:
            await asyncio.sleep(0.002)
            processed.append(envelope.id)

        consumers = [
            Consumer(url, "work", task, prefetch=10, ledger=ledger, worker=f"c{i}")
            for i in range(2)
        ]
        for consumer in consumers:
            await consumer.start()
        async with Producer(url, "work", ledger=ledger, window=20) as producer:
            publishing = asyncio.create_task(producer.publish_many(workload(n)))
            await wait_until(lambda: len(processed) >= 200, timeout_s=30, what="200")
            assert not publishing.done()
            server = broker.server
            assert server is not None
            await asyncio.to_thread(server.restart)
            assert await asyncio.wait_for(publishing, 90) == n

        def all_confirmed_processed() -> bool:
            return not check(ledger.frame()).lost

        await wait_until(all_confirmed_processed, timeout_s=60, what="every message")
        for consumer in consumers:
            await consumer.stop()
    finally:
        await asyncio.to_thread(broker.close)

    frame = ledger.frame()
    verdict = check(frame)
    assert verdict.confirmed == n
    assert not verdict.lost
    assert not verdict.unexpected
    sent_again = set(
        frame[(frame.event == Event.PUBLISHED) & (frame.attempt > 1)].message_id
    )
    assert sent_again, "the restart caught no publish in flight"
    redelivered = set(
        frame[(frame.event == Event.DELIVERED) & (frame.attempt > 1)].message_id
    )
    assert verdict.duplicated <= sent_again | redelivered
