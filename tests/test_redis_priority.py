"""Given a sorted set as a priority queue: the seed's version merges identical
tasks and serves ties by bytes; the corrected one keeps every task, serves
priority then arrival, and loses nothing held by a consumer that dies."""

import asyncio
import random

import pytest
import redis.asyncio

from queuelab import envelope as codec
from queuelab.errors import ConfigError, EnvelopeError
from queuelab.experiments.redis_priority import arrival_order, out_of_order
from queuelab.redisq import Outcome, PriorityQueue, SeedPriorityQueue, check_priority
from queuelab.redisq.priority import COUNTER_BITS, MAX_LEVELS, arrival_score


async def test_identical_payloads_pushed_twice_are_one_entry_in_the_seed_queue(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    seed_queue = SeedPriorityQueue(redis_client, unique)
    body = {"user": 7, "report": "daily"}
    await seed_queue.push(body, priority=1)
    await seed_queue.push(body, priority=1)
    assert await seed_queue.length() == 1
    await seed_queue.delete()


async def test_identical_payloads_pushed_twice_are_two_entries_in_the_corrected_queue(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    queue = PriorityQueue(redis_client, unique)
    body = {"user": 7, "report": "daily"}
    assert await queue.push(codec.new(body, 0), priority=1)
    assert await queue.push(codec.new(body, 1), priority=1)
    assert await queue.length() == 2
    await queue.delete()


async def test_the_same_message_id_pushed_twice_is_queued_once(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    queue = PriorityQueue(redis_client, unique)
    envelope = codec.new({"n": 1}, 0)
    assert await queue.push(envelope, 0) is True
    assert await queue.push(envelope, 0) is False  # a producer's retry
    assert await queue.length() == 1
    await queue.delete()


@pytest.mark.slow
async def test_10000_tasks_at_3_priorities_come_out_by_priority_then_arrival(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    rng = random.Random(4)
    sent = [(codec.new({"n": i}, i), rng.randrange(3)) for i in range(10_000)]
    queue = PriorityQueue(redis_client, unique, levels=3)
    for start in range(0, len(sent), 1000):
        assert await queue.push_many(sent[start : start + 1000]) == 1000

    got = []
    while (envelope := await queue.pop(timeout_s=0.05)) is not None:
        got.append(envelope.seq)
    expected = [e.seq for e, _ in sorted(sent, key=lambda pair: (pair[1], pair[0].seq))]
    assert got == expected
    assert await queue.in_flight() == 10_000  # each one held until done
    await queue.delete()


async def test_the_seed_queue_serves_tied_scores_in_byte_order_not_arrival(
    redis_client: redis.asyncio.Redis,
) -> None:
    """At priority 500 the score is near 5e12, where a double steps by about
    1 ms: a batch pushed in one pipeline shares a handful of scores."""
    seed_run, corrected_run = await arrival_order(redis_client, n=200, priority=500)
    assert seed_run.tied > 100
    assert seed_run.ties_in_byte_order
    assert seed_run.out_of_order > 50
    assert (corrected_run.tied, corrected_run.out_of_order) == (0, 0)


def test_out_of_order_counts_tasks_overtaken_by_a_later_one() -> None:
    assert out_of_order([0, 1, 2, 3]) == 0
    assert out_of_order([1, 0, 2, 3]) == 1
    assert out_of_order([3, 0, 1, 2]) == 3


def test_the_score_packs_priority_above_arrival_exactly_in_a_double() -> None:
    top = arrival_score(MAX_LEVELS - 1, 2**COUNTER_BITS - 1)
    assert top == 2**53 - 1
    assert float(top) == top
    assert arrival_score(1, 0) > arrival_score(0, 2**COUNTER_BITS - 1)


@pytest.mark.parametrize(
    ("priority", "message"),
    [
        (True, "integer"),
        (1.5, "integer"),
        ("1", "integer"),
        (None, "integer"),
        (-1, "from 0"),
        (10, "from 0"),
    ],
)
def test_a_priority_outside_the_convention_is_refused(
    priority: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        check_priority(priority, levels=10)


async def test_a_refused_priority_sends_nothing(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    queue = PriorityQueue(redis_client, unique, levels=3)
    with pytest.raises(ConfigError, match="0 \\(served first\\) to 2"):
        await queue.push(codec.new({}, 0), priority=3)
    with pytest.raises(ConfigError):
        await queue.push_many([(codec.new({}, 0), 0), (codec.new({}, 1), 7)])
    assert await redis_client.exists(unique, queue.counter_name) == 0


async def test_a_task_held_by_a_consumer_that_died_is_returned_in_its_place(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    dying = PriorityQueue(redis_client, unique, visibility_timeout_s=0.2)
    first, second = codec.new({"n": 0}, 0), codec.new({"n": 1}, 1)
    await dying.push(first, 0)
    await dying.push(second, 0)
    held = await dying.pop(1)
    assert held is not None
    assert held.id == first.id
    assert (await dying.length(), await dying.in_flight()) == (1, 1)

    await asyncio.sleep(0.3)  # the consumer is gone; its deadline passes
    other = PriorityQueue(redis_client, unique)
    assert await other.reap() == 1
    again = await other.pop(1)
    assert again is not None
    assert (again.id, again.attempt) == (first.id, 2)  # first in line again
    assert await other.done(again) is True
    assert await dying.done(held) is False
    await other.delete()


async def test_a_failed_task_goes_back_then_to_the_dead_letters(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    queue = PriorityQueue(redis_client, unique, max_attempts=2)
    await queue.push(codec.new({"poison": True}, 0), 2)
    outcomes = []
    while (envelope := await queue.pop(0.1)) is not None:
        outcomes.append(await queue.failed(envelope, "bad input"))
    assert outcomes == [Outcome.RETRIED, Outcome.DEAD_LETTERED]
    [record] = await queue.dead_letters()
    assert record["reason"] == "bad input"
    assert (await queue.length(), await queue.in_flight()) == (0, 0)
    assert await redis_client.hlen(queue.bodies_name) == 0
    await queue.delete()


async def test_a_malformed_body_is_dead_lettered_not_returned(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    queue = PriorityQueue(redis_client, unique)
    good = codec.new({"ok": True}, 1)
    await redis_client.hset(queue.bodies_name, "bad", b"\xff\xfe")
    await redis_client.zadd(unique, {"bad": 0})
    await queue.push(good, 0)
    got = await queue.pop(1)
    assert got is not None
    assert got.id == good.id
    [record] = await queue.dead_letters()
    assert "not UTF-8" in record["reason"]
    await queue.delete()


async def test_the_seed_pop_dead_letters_a_member_that_is_not_json(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    seed_queue = SeedPriorityQueue(redis_client, unique)
    await redis_client.zadd(unique, {"not json": 0})
    with pytest.raises(EnvelopeError, match="Expecting value"):
        await seed_queue.pop()
    [record] = await seed_queue.dead_letters()
    assert "Expecting value" in record["reason"]
    assert record["data"] == "not json"
    await seed_queue.delete()
