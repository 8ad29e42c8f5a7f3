"""Priority queues on a Redis sorted set: the seed's, and a corrected one.

The convention, for both: a priority is an integer, and the LOWER number is
served FIRST (0 is the most urgent), because ZPOPMIN takes the lowest score.
The corrected queue accepts the integers ``0 .. levels - 1`` and refuses
anything else (a bool, a float, a string, a number out of range) before it
sends anything.

The seed's queue stores the payload itself as the member and
``priority * 1e10 + time.time()`` as the score. Two faults follow:

- A sorted set holds each member once. Two identical tasks (the same user
  asking for the same report twice) are one member: the second ZADD only moves
  the first, and one task is silently lost.
- Members with equal scores are ordered by their bytes, not by arrival. Equal
  scores happen more than one would think: a double has 53 bits, so at a score
  near ``p * 1e10`` two pushes closer together than a few microseconds (more
  at higher ``p``) get the same score, and a batch pushed in one pipeline is
  then served in alphabetical order. Clocks of different producers also
  disagree, so "time" is not arrival anyway.

It is also at-most-once: ZPOPMIN removes the task as it hands it over.

The corrected queue makes the member the message id (so it is unique), keeps
the body in a hash beside it, and packs the score as the integer
``priority * 2**44 + n``, where ``n`` comes from INCR on a counter: exact in a
double (below 2**53), strictly increasing in arrival order at Redis, so within
a priority tasks come out first in, first out. Taking a task is one Lua script
that pops the lowest score and records the id in a processing set with a
deadline, so a consumer that dies holding it loses nothing: :meth:`reap`
returns tasks whose deadline passed, at their old place in line.

Taking a task does not block (a script cannot): an idle consumer polls.
"""

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import redis.asyncio

from queuelab import envelope as codec
from queuelab.envelope import Envelope
from queuelab.errors import ConfigError, EnvelopeError
from queuelab.redisq.blocking import check_timeout
from queuelab.redisq.consumer import Outcome, dead_record, read_dead

log = logging.getLogger(__name__)

DEFAULT_LEVELS = 10
COUNTER_BITS = 44  # arrival counter: 17.6 trillion tasks per queue
MAX_LEVELS = 2 ** (53 - COUNTER_BITS)  # 512: every score stays below 2**53
SEED_PRIORITY_STEP = 1e10  # the seed's multiplier


def check_priority(priority: object, levels: int = DEFAULT_LEVELS) -> int:
    """``priority`` if it is an int from 0 (served first) to ``levels - 1``.

    Anything else raises ``ConfigError`` before a byte is sent.
    """
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ConfigError(
            f"priority must be an integer from 0 (served first) to {levels - 1}, "
            f"got {priority!r}"
        )
    if not 0 <= priority < levels:
        raise ConfigError(
            f"priority must be from 0 (served first) to {levels - 1}, got {priority}"
        )
    return priority


def arrival_score(priority: int, n: int) -> int:
    """The corrected queue's score: priority in the high bits, arrival below."""
    return (priority << COUNTER_BITS) + n


class SeedPriorityQueue:
    """The seed's sorted-set queue: member = payload JSON, score = p * 1e10 + time."""

    def __init__(self, client: "redis.asyncio.Redis", name: str) -> None:
        self.client = client
        self.name = name
        self.dead_name = f"{name}:dead"

    async def push(self, body: dict[str, Any], priority: float = 0) -> None:
        """As the seed: lower ``priority`` first; any number accepted."""
        score = priority * SEED_PRIORITY_STEP + time.time()
        await self.client.zadd(self.name, {json.dumps(body): score})

    async def push_many(self, items: Iterable[tuple[dict[str, Any], float]]) -> None:
        """The seed's push for each (body, priority), sent in one pipeline."""
        async with self.client.pipeline(transaction=False) as pipe:
            for body, priority in items:
                score = priority * SEED_PRIORITY_STEP + time.time()
                pipe.zadd(self.name, {json.dumps(body): score})
            await pipe.execute()

    async def pop(self) -> dict[str, Any] | None:
        """The lowest-scored payload, removed from Redis; None when empty."""
        result = await self.client.zpopmin(self.name)
        if not result:
            return None
        raw = result[0][0]
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        try:
            body = json.loads(data)
            if not isinstance(body, dict):
                raise EnvelopeError(
                    f"expected a JSON object, got {type(body).__name__}"
                )
        except (UnicodeDecodeError, json.JSONDecodeError, EnvelopeError) as exc:
            await self.client.lpush(self.dead_name, dead_record(data, str(exc)))
            log.warning("dead-lettered malformed item from %s: %s", self.name, exc)
            raise EnvelopeError(str(exc)) from None
        return body

    async def length(self) -> int:
        return int(await self.client.zcard(self.name))

    async def dead_letters(self) -> list[dict[str, str]]:
        """What was dead-lettered, oldest first, as {reason, data} dicts."""
        return await read_dead(self.client, self.dead_name)

    async def delete(self) -> None:
        await self.client.delete(self.name, self.dead_name)


# Add a message unless its id is already queued or held. Returns the score.
_PUSH = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return false end
local n = redis.call('INCR', KEYS[3])
if n >= tonumber(ARGV[4]) then return redis.error_reply('arrival counter full') end
local score = string.format('%.0f', tonumber(ARGV[3]) * tonumber(ARGV[4]) + n)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[4], ARGV[1], score)
redis.call('ZADD', KEYS[1], score, ARGV[1])
return score
"""

# Pop the lowest score into the processing set with a deadline (server clock).
_TAKE = """
local top = redis.call('ZPOPMIN', KEYS[1])
if #top == 0 then return false end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[1]), top[1])
local attempt = redis.call('HINCRBY', KEYS[4], top[1], 1)
return {top[1], redis.call('HGET', KEYS[3], top[1]), attempt}
"""

# Finish a held task: forget it, unless a reaper already returned it.
_DONE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
"""

# Put held tasks back at their old score: the ids given, or all overdue ones.
_RETURN = """
local ids = ARGV
if #ARGV == 0 then
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, 1000)
end
local back = {}
for _, id in ipairs(ids) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('ZADD', KEYS[2], redis.call('HGET', KEYS[3], id), id)
    table.insert(back, id)
  end
end
return back
"""


class PriorityQueue:
    """Priorities ``0 .. levels - 1`` (0 first), FIFO within one, at-least-once."""

    def __init__(
        self,
        client: "redis.asyncio.Redis",
        name: str,
        *,
        levels: int = DEFAULT_LEVELS,
        visibility_timeout_s: float = 30.0,
        max_attempts: int = 5,
        poll_s: float = 0.02,
    ) -> None:
        if isinstance(levels, bool) or not isinstance(levels, int):
            raise ConfigError(f"levels must be an integer, got {levels!r}")
        if not 1 <= levels <= MAX_LEVELS:
            raise ConfigError(f"levels must be from 1 to {MAX_LEVELS}, got {levels}")
        if visibility_timeout_s <= 0 or max_attempts < 1 or poll_s <= 0:
            raise ConfigError(
                "visibility_timeout_s and poll_s must be > 0 and max_attempts >= 1"
            )
        self.client = client
        self.name = name
        self.levels = levels
        self.visibility_timeout_s = visibility_timeout_s
        self.max_attempts = max_attempts
        self.poll_s = poll_s
        self.bodies_name = f"{name}:bodies"
        self.scores_name = f"{name}:scores"
        self.attempts_name = f"{name}:attempts"
        self.processing_name = f"{name}:processing"
        self.counter_name = f"{name}:arrivals"
        self.dead_name = f"{name}:dead"
        self._push = client.register_script(_PUSH)
        self._take = client.register_script(_TAKE)
        self._done = client.register_script(_DONE)
        self._return = client.register_script(_RETURN)

    def _push_call(
        self, envelope: Envelope, priority: int
    ) -> tuple[list[str], list[Any]]:
        check_priority(priority, self.levels)
        keys = [self.name, self.bodies_name, self.counter_name, self.scores_name]
        args = [envelope.id, codec.encode(envelope), priority, 2**COUNTER_BITS]
        return keys, args

    async def push(self, envelope: Envelope, priority: int) -> bool:
        """Queue ``envelope``; False if a message with its id is already in."""
        keys, args = self._push_call(envelope, priority)
        return await self._push(keys=keys, args=args) is not None

    async def push_many(self, items: Iterable[tuple[Envelope, int]]) -> int:
        """Queue each (envelope, priority) in one pipeline; how many were new."""
        calls = [self._push_call(envelope, priority) for envelope, priority in items]
        async with self.client.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                await self._push(keys=keys, args=args, client=pipe)
            results = await pipe.execute()
        return sum(result is not None for result in results)

    async def pop(self, timeout_s: float | None = 1.0) -> Envelope | None:
        """The most urgent task, now held; polls until ``timeout_s`` (None: forever)."""
        check_timeout(timeout_s)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            envelope = await self._take_one()
            if envelope is not None:
                return envelope
            if deadline is not None and time.monotonic() >= deadline:
                return None
            # TODO: an idle consumer polls every poll_s. A wake-up list (push
            # also LPUSHes a token, an idle consumer BLPOPs it) would let it block.
            await asyncio.sleep(self.poll_s)

    async def _take_one(self) -> Envelope | None:
        keys = [self.name, self.processing_name, self.bodies_name, self.attempts_name]
        while True:
            taken = await self._take(
                keys=keys, args=[int(self.visibility_timeout_s * 1000)]
            )
            if taken is None:
                return None
            message_id, raw, attempt = bytes(taken[0]).decode(), taken[1], int(taken[2])
            try:
                envelope = codec.decode(bytes(raw or b""))
            except EnvelopeError as exc:
                await self._dead(message_id, bytes(raw or b""), str(exc))
                continue
            if attempt > self.max_attempts:
                reason = f"given up after {attempt - 1} deliveries"
                await self._dead(message_id, bytes(raw), reason)
                continue
            return replace(envelope, attempt=attempt)

    async def done(self, envelope: Envelope) -> bool:
        """Forget a finished task; False if it had been returned (it runs again)."""
        keys = [self.processing_name, self.bodies_name, self.scores_name]
        keys.append(self.attempts_name)
        removed = int(await self._done(keys=keys, args=[envelope.id]))
        if not removed:
            log.warning(
                "message %s on %s finished after its visibility timeout; it was "
                "returned to the queue and will run again",
                envelope.id,
                self.name,
            )
        return removed == 1

    async def failed(self, envelope: Envelope, reason: str) -> Outcome:
        """Put the task back at its place in line, or dead-letter it."""
        if envelope.attempt >= self.max_attempts:
            await self._dead(envelope.id, codec.encode(envelope), reason)
            return Outcome.DEAD_LETTERED
        keys = [self.processing_name, self.name, self.scores_name]
        back = await self._return(keys=keys, args=[envelope.id])
        return Outcome.RETRIED if back else Outcome.DROPPED

    async def reap(self) -> int:
        """Return every held task whose deadline has passed; how many."""
        keys = [self.processing_name, self.name, self.scores_name]
        back = await self._return(keys=keys, args=[])
        for message_id in back:
            log.warning("returned overdue message %s to %s", message_id, self.name)
        return len(back)

    async def _dead(self, message_id: str, raw: bytes, reason: str) -> None:
        keys = [self.processing_name, self.bodies_name, self.scores_name]
        keys.append(self.attempts_name)
        async with self.client.pipeline(transaction=True) as pipe:
            await self._done(keys=keys, args=[message_id], client=pipe)
            pipe.lpush(self.dead_name, dead_record(raw, reason))
            await pipe.execute()
        log.warning(
            "dead-lettered message %s from %s: %s", message_id, self.name, reason
        )

    async def length(self) -> int:
        """Tasks waiting (not held)."""
        return int(await self.client.zcard(self.name))

    async def in_flight(self) -> int:
        """Tasks held by consumers."""
        return int(await self.client.zcard(self.processing_name))

    async def dead_letters(self) -> list[dict[str, str]]:
        """What was dead-lettered, oldest first, as {reason, data} dicts."""
        return await read_dead(self.client, self.dead_name)

    async def delete(self) -> None:
        await self.client.delete(
            self.name,
            self.bodies_name,
            self.scores_name,
            self.attempts_name,
            self.processing_name,
            self.counter_name,
            self.dead_name,
        )

    async def close(self) -> None:
        """Nothing of its own to close; here so every queue closes alike."""
