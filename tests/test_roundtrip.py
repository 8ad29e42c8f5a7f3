"""1,000 messages through each broker: every one processed once, and the
ledger agrees with the broker's own count of what is left."""

import asyncio

import aio_pika
import pytest
import redis.asyncio

from queuelab import envelope as codec
from queuelab.brokers import Broker
from queuelab.errors import ConfigError, PublishError
from queuelab.experiments import rabbitmq_roundtrip, redis_list_roundtrip, workload
from queuelab.ledger import Event, Ledger, check
from queuelab.rabbitmq import Consumer, Producer, queue_depth
from queuelab.redisq import ListQueue, consume

N = 1_000


async def test_rabbitmq_processes_each_of_1000_messages_exactly_once(
    amqp_url: str,
) -> None:
    run = await rabbitmq_roundtrip(amqp_url, N, consumers=2, prefetch=10, window=50)
    processed = run.ledger[run.ledger.event == Event.PROCESSED]

    assert len(processed) == N
    assert run.verdict.ok
    assert (run.verdict.confirmed, run.verdict.processed) == (N, N)
    assert run.depth_after == 0
    assert set(processed.worker) == {"c0", "c1"}


async def test_redis_list_processes_each_of_1000_messages_exactly_once(
    redis_broker: Broker,
) -> None:
    run = await redis_list_roundtrip(redis_broker.redis, N, consumers=2)
    assert run.verdict.ok
    assert (run.verdict.published, run.verdict.processed) == (N, N)
    assert run.depth_after == 0


async def test_the_ledger_and_rabbitmq_agree_on_what_is_still_queued(
    amqp_url: str, unique: str
) -> None:
    ledger = Ledger()
    async with Producer(amqp_url, unique, ledger=ledger, window=20) as producer:
        await producer.publish_many(workload(200))
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        assert len(check(ledger.frame()).lost) == 200  # confirmed, none processed
        assert await queue_depth(channel, unique) == 200

        done = asyncio.Event()
        seen: list[str] = []

        async def task(envelope: codec.Envelope) -> None:
            seen.append(envelope.id)
            if len(seen) == 150:
                done.set()
                await asyncio.Event().wait()  # hold the rest: stop mid-run

        consumer = Consumer(amqp_url, unique, task, prefetch=1, ledger=ledger)
        await consumer.start()
        await asyncio.wait_for(done.wait(), 10)
        await consumer.stop(timeout_s=0.1)  # the held task will not finish

        verdict = check(ledger.frame())
        assert await queue_depth(channel, unique) == len(verdict.lost) == 51
        await channel.queue_delete(unique)


async def test_the_ledger_and_redis_agree_on_what_is_still_queued(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    queue, ledger = ListQueue(redis_client, unique), Ledger()
    for envelope in workload(100):
        ledger.record(Event.PUBLISHED, envelope.id)
        await queue.push(envelope)
    for _ in range(30):
        envelope = await queue.pop(1)
        assert envelope is not None
        ledger.record(Event.PROCESSED, envelope.id)
    assert await queue.length() == len(check(ledger.frame()).lost) == 70
    await queue.delete()
    await queue.close()


async def test_the_list_queue_is_fifo(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    queue = ListQueue(redis_client, unique)
    sent = list(workload(20))
    for envelope in sent:
        await queue.push(envelope)
    got = [await queue.pop(1) for _ in sent]
    assert [e.seq for e in got if e] == list(range(20))
    assert await queue.pop(0.1) is None
    await queue.delete()
    await queue.close()


async def test_a_malformed_list_item_is_dead_lettered_with_its_reason(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    queue, ledger = ListQueue(redis_client, unique), Ledger()
    await redis_client.lpush(unique, b"\x80not an envelope")
    good = codec.new({"ok": True}, 0)
    await queue.push(good)

    stop = asyncio.Event()
    processed: list[str] = []

    async def task(envelope: codec.Envelope) -> None:
        processed.append(envelope.id)
        stop.set()

    await asyncio.wait_for(
        consume(queue, task, stop=stop, ledger=ledger, block_s=0.2), 5
    )
    assert processed == [good.id]
    dead = await queue.dead_letters()
    assert len(dead) == 1
    assert "not UTF-8" in dead[0]["reason"]
    assert await queue.length() == 0
    await queue.delete()
    await queue.close()


def test_prefetch_zero_is_refused_with_an_explanation(amqp_url: str) -> None:
    async def task(envelope: codec.Envelope) -> None:
        return None

    with pytest.raises(ConfigError, match="'unlimited'"):
        Consumer(amqp_url, "q", task, prefetch=0)


async def test_an_unroutable_publish_raises_instead_of_vanishing(
    amqp_url: str, unique: str
) -> None:
    async with Producer(amqp_url, unique) as producer:
        channel = producer._require_channel()
        await channel.queue_delete(unique)
        with pytest.raises(PublishError, match="returned unroutable"):
            await producer.publish(codec.new({}, 0))


async def test_a_malformed_amqp_message_is_rejected_once_with_its_reason(
    amqp_url: str, unique: str
) -> None:
    ledger = Ledger()
    calls: list[str] = []

    async def task(envelope: codec.Envelope) -> None:
        calls.append(envelope.id)

    consumer = Consumer(amqp_url, unique, task, ledger=ledger)
    await consumer.start()
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(b"[1,2,3]", message_id="bad-1"), routing_key=unique
        )
        await asyncio.sleep(0.5)
        await consumer.stop()
        nacked = ledger.frame().query("event == 'nacked'")
        assert nacked.message_id.tolist() == ["bad-1"]
        assert "expected a JSON object" in nacked.detail.iloc[0]
        assert calls == []
        assert await queue_depth(channel, unique) == 0  # not requeued, no loop
        await channel.queue_delete(unique)
