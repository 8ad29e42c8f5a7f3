"""Shared fixtures: the real brokers of this machine, never mocks.

The fixtures use the explicit and local links only. A missing broker fails the
test with the chain's own error, it is not skipped: a green run must mean the
patterns ran against real servers.
"""

import uuid
from collections.abc import AsyncIterator

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
def unique() -> str:
    """A name no other test uses, for queues and keys."""
    return f"test.{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def redis_client(redis_broker: Broker) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis_broker.redis()
    yield client
    await client.aclose()
