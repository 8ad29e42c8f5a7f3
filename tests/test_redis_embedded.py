"""Every Redis pattern also runs on the embedded fakeredis, so the course works
where no Redis server can be had. A smoke test per pattern; the behaviour
itself is tested against the real server in the other test_redis_* files."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio

from queuelab import envelope as codec
from queuelab.brokers import Broker, Link, find_redis
from queuelab.experiments import (
    arrival_order,
    kill_workers,
    priority_latency,
    pubsub_away,
    stream_away,
)
from queuelab.redisq import (
    ListQueue,
    PriorityQueue,
    ReliableListQueue,
    SeedPriorityQueue,
    StreamQueue,
    Subscriber,
    publish,
)

Smoke = Callable[[redis.asyncio.Redis], Awaitable[None]]


@pytest.fixture(scope="module")
def embedded() -> Broker:
    broker = find_redis(links=[Link.EMBEDDED])
    assert not broker.is_real
    return broker


@pytest.fixture
async def fake(embedded: Broker) -> AsyncIterator[redis.asyncio.Redis]:
    client = embedded.redis()
    yield client
    await client.aclose()


async def list_queues(client: redis.asyncio.Redis) -> None:
    for queue in (ListQueue(client, "l1"), ReliableListQueue(client, "l2", worker="w")):
        # a cancelled pop must not swallow the next push (fakeredis keeps an
        # abandoned blocking pop alive unless it is unblocked)
        blocked = asyncio.create_task(queue.pop(timeout_s=5))
        await asyncio.sleep(0.1)
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
        sent = codec.new({"n": 1}, 1)
        await queue.push(sent)
        got = await queue.pop(1)
        assert got is not None
        assert got.id == sent.id
        assert await queue.done(got) is isinstance(queue, ReliableListQueue)
        await queue.close()
        await queue.delete()


async def reliable_reaper(client: redis.asyncio.Redis) -> None:
    dying = ReliableListQueue(client, "r", worker="dying", visibility_timeout_s=0.1)
    await dying.push(codec.new({}, 0))
    assert await dying.pop(1) is not None
    await dying.close(release=False)
    await asyncio.sleep(0.2)
    reaper = ReliableListQueue(client, "r", worker="reaper")
    assert await reaper.reap() == 1
    await reaper.delete()


async def priority_queues(client: redis.asyncio.Redis) -> None:
    seed_queue = SeedPriorityQueue(client, "p1")
    await seed_queue.push({"same": 1}, 0)
    await seed_queue.push({"same": 1}, 0)
    assert await seed_queue.length() == 1
    queue = PriorityQueue(client, "p2")
    await queue.push_many([(codec.new({}, 0), 2), (codec.new({}, 1), 0)])
    first = await queue.pop(1)
    assert first is not None
    assert first.seq == 1
    assert await queue.done(first)
    await queue.delete()
    await seed_queue.delete()


async def streams(client: redis.asyncio.Redis) -> None:
    first = StreamQueue(client, "s", "g", consumer="first")
    await first.ensure_group()
    for n in range(3):
        await first.push(codec.new({}, n))
    read = await first.read(count=3, timeout_s=1)
    await client.xdel("s", read[0].entry_id)
    claimed = await StreamQueue(client, "s", "g", consumer="second").claim(0)
    assert claimed.deleted == [read[0].entry_id]
    assert len(claimed.entries) == 2
    await first.close()
    await first.delete()


async def pubsub(client: redis.asyncio.Redis) -> None:
    async with Subscriber(client, "news") as subscriber:
        sent = codec.new({}, 0)
        assert await publish(client, "news", sent) == 1
        got = await subscriber.get(1)
        assert got is not None
        assert got.id == sent.id


@pytest.mark.parametrize(
    "smoke", [list_queues, reliable_reaper, priority_queues, streams, pubsub]
)
async def test_the_pattern_runs_on_fakeredis(
    smoke: Smoke, fake: redis.asyncio.Redis
) -> None:
    await smoke(fake)


async def test_the_notebook_experiments_run_on_fakeredis(embedded: Broker) -> None:
    brpop = await kill_workers(embedded, "brpop", tasks=40, kills=2, task_s=0.01)
    reliable = await kill_workers(
        embedded, "reliable", tasks=40, kills=2, task_s=0.01, visibility_timeout_s=0.2
    )
    assert brpop.how == reliable.how == "cancelled worker tasks"
    assert 1 <= brpop.held_at_kill <= len(brpop.verdict.lost) <= 2
    assert not reliable.verdict.lost
    assert not (await pubsub_away(embedded.redis)).phases().received[1]
    assert (await stream_away(embedded.redis)).phases().received[1] == 20
    client = embedded.redis()
    seed_run, corrected_run = await arrival_order(client, n=50, priority=500)
    assert seed_run.tied
    assert not corrected_run.tied
    await client.aclose()
    run = await priority_latency(embedded.redis, True, tasks=60, task_s=0)
    assert run.verdict.ok
