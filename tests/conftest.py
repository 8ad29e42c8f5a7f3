"""Shared fixtures: the real brokers of this machine, never mocks.

The fixtures use the explicit and local links only. A missing broker fails the
test with the chain's own error, it is not skipped: a green run must mean the
patterns ran against real servers.
"""

import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
import redis.asyncio

from queuelab.brokers import Broker, Link, find_rabbitmq, find_redis

REAL_LINKS = (Link.EXPLICIT, Link.LOCAL)


@pytest.fixture(scope="session")
def rabbitmq() -> Broker:
    return find_rabbitmq(links=REAL_LINKS)


@pytest.fixture(scope="session")
def redis_broker() -> Broker:
    return find_redis(links=REAL_LINKS)


@pytest.fixture
def amqp_url(rabbitmq: Broker) -> str:
    return rabbitmq.url


@pytest.fixture
async def unique(rabbitmq: Broker, redis_broker: Broker) -> AsyncIterator[str]:
    """A name no other test uses, for queues and keys.

    Whatever a test made under this name is deleted afterwards, even when the
    test failed half-way: the brokers are shared with every other run.
    """
    name = f"test.{uuid.uuid4().hex[:10]}"
    yield name
    await _forget(name, rabbitmq.url, redis_broker)


async def _forget(name: str, amqp_url: str, redis_broker: Broker) -> None:
    queues = [name, f"{name}.dlq", *(f"{name}.retry.{n}" for n in range(1, 11))]
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)  # deleting a missing queue is fine
        await channel.exchange_delete(f"{name}.dlx")
    client = redis_broker.redis()
    keys = [key async for key in client.scan_iter(f"{name}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def redis_client(redis_broker: Broker) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis_broker.redis()
    yield client
    await client.aclose()
