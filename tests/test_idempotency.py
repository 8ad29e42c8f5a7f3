"""Idempotency stores: one effect per key, written atomically with its mark."""

import asyncio
import random

import pytest
import redis.asyncio

from queuelab.errors import ConfigError
from queuelab.idempotency import MemoryIdempotency, RedisIdempotency


async def test_redis_applies_an_effect_once_per_key(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    store = RedisIdempotency(redis_client, prefix=f"{unique}:done", ttl_s=60)
    target = f"{unique}:effects"
    results = [await store.apply_once("m1", target, "m1") for _ in range(3)]
    assert results == [True, False, False]
    assert await redis_client.lrange(target, 0, -1) == [b"m1"]
    assert 0 < await redis_client.ttl(f"{unique}:done:m1") <= 60
    await redis_client.delete(target, f"{unique}:done:m1")


async def test_concurrent_duplicates_apply_the_effect_exactly_once(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    store = RedisIdempotency(redis_client, prefix=f"{unique}:done")
    target = f"{unique}:effects"

    async def worker(seed: int) -> int:
        keys = [f"m{i}" for i in range(50)]
        random.Random(seed).shuffle(keys)
        return sum([await store.apply_once(k, target, k) for k in keys])

    applied = await asyncio.gather(*(worker(seed) for seed in range(8)))
    assert sum(applied) == 50
    effects = await redis_client.lrange(target, 0, -1)
    assert sorted(effects) == sorted(f"m{i}".encode() for i in range(50))
    await redis_client.delete(target, *(f"{unique}:done:m{i}" for i in range(50)))


async def test_an_expired_mark_lets_a_late_duplicate_through() -> None:
    store = MemoryIdempotency(ttl_s=0.05)
    assert await store.apply_once("m", "t", "m")
    assert not await store.apply_once("m", "t", "m")
    await asyncio.sleep(0.06)
    assert await store.apply_once("m", "t", "m")
    assert store.effects["t"] == ["m", "m"]


def test_a_ttl_under_one_second_is_refused(redis_client: redis.asyncio.Redis) -> None:
    with pytest.raises(ConfigError):
        RedisIdempotency(redis_client, prefix="p", ttl_s=0)
