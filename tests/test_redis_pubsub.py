"""Given Redis pub/sub: a subscriber hears what is published while it listens,
misses what is published while it is away, and comes back by itself when its
connection is cut."""

import contextlib
import time

import pytest
import redis.asyncio

from queuelab import envelope as codec
from queuelab.brokers import Broker, start_private_redis
from queuelab.envelope import Kind
from queuelab.experiments import pubsub_away, stream_away
from queuelab.redisq import Subscriber, publish


def _event(n: int) -> codec.Envelope:
    return codec.new({"n": n}, n, kind=Kind.EVENT)


async def test_a_subscriber_hears_what_is_published_while_it_listens(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    async with Subscriber(redis_client, unique) as subscriber:
        sent = _event(1)
        assert await publish(redis_client, unique, sent) == 1
        got = await subscriber.get(2)
    assert got is not None
    assert got.id == sent.id


async def test_nobody_listening_is_not_an_error_and_the_message_is_gone(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    assert await publish(redis_client, unique, _event(1)) == 0
    async with Subscriber(redis_client, unique) as subscriber:
        assert await subscriber.get(0.3) is None


async def _reconnect_and_hear(
    publisher: redis.asyncio.Redis, subscriber: Subscriber, channel: str
) -> codec.Envelope:
    """Publish every 50 ms until the subscriber hears one (a gap is expected)."""
    deadline = time.monotonic() + 15
    n = 0
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.ConnectionError):  # still coming back
            await publish(publisher, channel, _event(n))
        n += 1
        got = await subscriber.get(0.05)
        if got is not None:
            return got
    raise AssertionError("the subscriber never came back")


async def test_a_subscriber_whose_connection_is_killed_resubscribes(
    redis_broker: Broker, redis_client: redis.asyncio.Redis, unique: str
) -> None:
    client = redis_broker.redis(client_name=unique)
    async with Subscriber(client, unique) as subscriber:
        clients = await redis_client.client_list()
        [mine] = [c for c in clients if c["name"] == unique and c["cmd"] == "subscribe"]
        await redis_client.client_kill_filter(_id=mine["id"])

        await _reconnect_and_hear(redis_client, subscriber, unique)
        assert subscriber.reconnects >= 1
    await client.aclose()


@pytest.mark.slow
async def test_a_subscriber_comes_back_after_its_redis_restarts() -> None:
    broker = start_private_redis()
    try:
        publisher, client = broker.redis(), broker.redis()
        async with Subscriber(client, "news", reconnect_for_s=20) as subscriber:
            assert broker.server is not None
            broker.server.restart()
            await _reconnect_and_hear(publisher, subscriber, "news")
            assert subscriber.reconnects >= 1
        await publisher.aclose()
        await client.aclose()
    finally:
        broker.close()


async def test_a_malformed_message_is_dead_lettered_and_skipped(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    async with Subscriber(redis_client, unique) as subscriber:
        await redis_client.publish(unique, b"not an envelope")
        sent = _event(2)
        await publish(redis_client, unique, sent)
        got = await subscriber.get(2)
    assert got is not None
    assert got.id == sent.id
    [record] = await redis_client.lrange(subscriber.dead_name, 0, -1)
    assert b"not JSON" in record
    await redis_client.delete(subscriber.dead_name)


async def test_while_away_pubsub_drops_what_the_stream_keeps(
    redis_broker: Broker,
) -> None:
    pubsub = (
        await pubsub_away(redis_broker.redis, before=10, away=15, after=5)
    ).phases()
    stream = (
        await stream_away(redis_broker.redis, before=10, away=15, after=5)
    ).phases()
    received = {
        "pubsub": dict(zip(pubsub.phase, pubsub.received, strict=True)),
        "stream": dict(zip(stream.phase, stream.received, strict=True)),
    }
    assert received["pubsub"] == {"before": 10, "away": 0, "after": 5}
    assert received["stream"] == {"before": 10, "away": 15, "after": 5}


async def test_publish_reports_zero_receivers_while_the_subscriber_is_away(
    redis_broker: Broker,
) -> None:
    run = await pubsub_away(redis_broker.redis, before=3, away=7, after=3)
    assert run.receivers_while_away == 0
