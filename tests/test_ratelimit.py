"""Rate limiters: "N per period" never lets more than N + burst start in any
window of one period, for those who share the limiter.

The local limiters run without a broker; the GCRA limiter runs on the real
Redis, and the end-to-end runs put limited consumers on the real RabbitMQ.

A start is timed when the task sees it, a little after the limiter allowed
it; windows are one period less the experiments' observation slack (see
:mod:`queuelab.experiments.ratelimit`), so a first start seen 2 ms late is not
read as a breach, while a real excess start is still counted.
"""

import asyncio
import time
import uuid

import pytest
import redis.asyncio

from queuelab.brokers import Broker
from queuelab.errors import ConfigError
from queuelab.experiments.ratelimit import OBSERVATION_SLACK_S, rate_limited_run
from queuelab.ratelimit import (
    GcraLimiter,
    IntervalLimiter,
    Limiter,
    Rate,
    TokenBucket,
    max_starts_in_window,
)


def busiest(starts: list[float], period_s: float) -> int:
    """Most starts in any window of one period, less the observation slack."""
    return max_starts_in_window(starts, period_s - OBSERVATION_SLACK_S)


async def starts_of(limiters: list[Limiter], duration_s: float) -> list[float]:
    """One user per limiter starts empty tasks over and over; when each began."""
    starts: list[float] = []
    deadline = time.monotonic() + duration_s

    async def user(limiter: Limiter) -> None:
        while time.monotonic() < deadline:
            async with limiter.slot():
                starts.append(time.monotonic())

    await asyncio.gather(*(user(limiter) for limiter in limiters))
    return [t for t in starts if t < deadline]


def test_the_window_count_is_the_busiest_half_open_window() -> None:
    assert max_starts_in_window([0.0, 0.5, 1.0, 1.2, 1.9], 1.0) == 3
    assert max_starts_in_window([0.0, 1.0, 2.0], 1.0) == 1
    assert max_starts_in_window([], 1.0) == 0


def test_a_rate_needs_a_positive_count_and_period() -> None:
    with pytest.raises(ConfigError):
        Rate(0, 1.0)
    with pytest.raises(ConfigError):
        Rate(5, 0.0)
    with pytest.raises(ConfigError):
        TokenBucket(Rate(5, 1.0), burst=-1)
    assert Rate(60, 60.0).interval_s == 1.0


async def test_an_interval_limiter_holds_the_rate_for_its_one_consumer() -> None:
    limiter = IntervalLimiter(Rate(10, 0.5))
    starts = await starts_of([limiter], 1.6)

    assert limiter.burst == 0
    assert busiest(starts, 0.5) <= 10
    assert len(starts) >= 10


async def test_a_token_bucket_shared_by_three_users_holds_rate_plus_burst() -> None:
    limiter = TokenBucket(Rate(10, 0.5), burst=3)
    starts = await starts_of([limiter] * 3, 1.6)

    assert busiest(starts, 0.5) <= limiter.bound == 13
    assert len(starts) >= 13


async def test_gcra_in_redis_shared_by_three_clients_holds_rate_plus_burst(
    redis_broker: Broker,
) -> None:
    key = f"test:gcra:{uuid.uuid4().hex[:8]}"
    clients = [redis_broker.redis() for _ in range(3)]
    limiters = [GcraLimiter(c, key, Rate(10, 0.5), burst=2) for c in clients]
    try:
        starts = await starts_of(list(limiters), 1.6)
    finally:
        for client in clients:
            await client.aclose()

    assert busiest(starts, 0.5) <= 12
    assert len(starts) >= 12


async def test_gcra_lets_burst_plus_one_through_at_once_then_refuses(
    redis_client: redis.asyncio.Redis,
) -> None:
    key = f"test:gcra:{uuid.uuid4().hex[:8]}"
    limiter = GcraLimiter(redis_client, key, Rate(1, 60.0), burst=2)

    waits = [await limiter.try_acquire() for _ in range(4)]

    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 55 < waits[3] <= 60  # the next start is due a period later
    assert await redis_client.pttl(key) > 0  # the key expires by itself
    await redis_client.delete(key)


@pytest.mark.slow
async def test_two_consumers_sharing_a_gcra_limit_start_no_more_than_r_per_second(
    amqp_url: str, redis_broker: Broker
) -> None:
    """Given two RabbitMQ consumers, each with its own Redis client, sharing
    one GCRA limit of R per second, no second of a 5 s run holds more than
    R + burst starts, and both consumers did work."""
    rate, burst = Rate(10, 1.0), 2
    key = f"test:gcra:{uuid.uuid4().hex[:8]}"
    clients = [redis_broker.redis() for _ in range(2)]
    try:
        limiters = [GcraLimiter(c, key, rate, burst=burst) for c in clients]
        run = await rate_limited_run(amqp_url, limiters, duration_s=5.0)
    finally:
        for client in clients:
            await client.aclose()

    assert run.busiest_window <= rate.count + burst
    assert set(run.starts.worker) == {"c0", "c1"}
    assert len(run.starts) >= rate.count  # the limit lets work through


async def test_interval_limiters_on_two_consumers_exceed_the_target_together(
    amqp_url: str,
) -> None:
    """The seed's fault: each consumer honours the rate, so two together
    start up to twice as many tasks in a period."""
    rate = Rate(10, 1.0)
    run = await rate_limited_run(
        amqp_url, [IntervalLimiter(rate), IntervalLimiter(rate)], duration_s=2.0
    )

    assert run.busiest_window > rate.count
    for _, starts in run.starts.groupby("worker"):
        assert busiest(starts.t_s.tolist(), rate.period_s) <= rate.count
