"""'Have I already done this?': the stores that make an effect idempotent.

At-least-once delivery means a message can arrive twice. Effectively-once
processing makes the second arrival harmless: the consumer remembers which
message ids it has applied and skips the effect for one it has seen.

The trap is the gap between remembering and doing. Mark first, then apply,
and a crash in between loses the effect; apply first, then mark, and a crash
in between applies it twice. The way out is to make the two one step. When the
effect lives in Redis, a Lua script does both atomically: ``SET key NX EX ttl``
and, only if that set succeeded, the effect itself. When the effect is outside
(an e-mail, a payment API), no store can close the gap; the receiving side
must deduplicate by the id.

The mark expires after ``ttl_s``: a duplicate arriving later than that is
applied again, so the TTL must outlast any redelivery (visibility timeouts,
retries with backoff, a broker restart).
"""

import time
from typing import Protocol

import redis.asyncio

from queuelab.errors import ConfigError

# KEYS[1] = the mark, KEYS[2] = the list the effect appends to
# ARGV[1] = ttl in seconds, ARGV[2] = the effect's record
_APPLY_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
    redis.call('RPUSH', KEYS[2], ARGV[2])
    return 1
end
return 0
"""


class IdempotencyStore(Protocol):
    """Applies an effect (appending ``record`` to ``target``) once per key."""

    async def apply_once(self, key: str, target: str, record: str) -> bool:
        """True if the effect was applied now, False if it had been before."""
        ...


class RedisIdempotency:
    """Marks and effects in Redis, written together by one Lua script."""

    def __init__(
        self, client: "redis.asyncio.Redis", *, prefix: str, ttl_s: int = 3600
    ) -> None:
        if ttl_s < 1:
            raise ConfigError(f"ttl_s must be >= 1 second, got {ttl_s}")
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._script = client.register_script(_APPLY_ONCE)

    async def apply_once(self, key: str, target: str, record: str) -> bool:
        mark = f"{self.prefix}:{key}"
        applied = await self._script(keys=[mark, target], args=[self.ttl_s, record])
        return bool(applied)


class MemoryIdempotency:
    """The same contract in one process's memory (for simulations and tests)."""

    def __init__(self, *, ttl_s: float = 3600) -> None:
        self.ttl_s = ttl_s
        self.marks: dict[str, float] = {}
        self.effects: dict[str, list[str]] = {}

    async def apply_once(self, key: str, target: str, record: str) -> bool:
        now = time.monotonic()
        if self.marks.get(key, float("-inf")) > now:
            return False
        self.marks[key] = now + self.ttl_s
        self.effects.setdefault(target, []).append(record)
        return True
