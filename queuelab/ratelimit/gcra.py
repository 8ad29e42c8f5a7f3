"""A distributed rate limit in Redis: GCRA in one Lua script.

The generic cell rate algorithm keeps a single number per limit, the
theoretical arrival time (TAT): when the next start would be due if starts
came exactly at the rate. With ``T = period / N`` and a tolerance
``tau = burst * T``, a start at time ``now`` is allowed when ``now >= TAT -
tau``, and moves TAT to ``max(TAT, now) + T``. An idle limit therefore lets
``burst + 1`` tasks start at once, then one every T; no window of one period
holds more than ``N + burst`` starts.

The check and the update run as one Lua script, atomically, with the clock
read inside Redis (``TIME``), so every worker and every process that names
the same key shares one limit, and their clocks do not need to agree. A
refused caller is told how long to wait and sleeps that long before asking
again. The key expires once the limit is idle, so limits leave nothing behind.

What goes wrong in the usual hand-written versions: a GET, a compare and a
SET sent as separate commands let two workers read the same TAT and both
start (a race that grows with the number of workers); and a fixed-window
counter (INCR with EXPIRE) allows twice the rate across a window boundary.
"""

import asyncio
from typing import cast

import redis.asyncio

from queuelab.ratelimit.base import Limiter, Rate

# KEYS[1]: the limit's key. ARGV[1]: T in microseconds. ARGV[2]: tau in
# microseconds. Returns {1, 0} when allowed, {0, wait_us} when not.
# Numbers are written with %.0f: Lua's default formatting would store a
# microsecond timestamp as 1.7e+15 and lose its precision.
GCRA_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local allow_at = tat - tolerance
if now < allow_at then
  return {0, math.ceil(allow_at - now)}
end
local new_tat = tat + interval
local ttl_ms = math.ceil((new_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
return {1, 0}
"""

MIN_WAIT_S = 0.001


class GcraLimiter(Limiter):
    """One limit named ``key``, kept in Redis and shared by all its users."""

    def __init__(
        self,
        client: "redis.asyncio.Redis",
        key: str,
        rate: Rate,
        *,
        burst: int = 0,
    ) -> None:
        super().__init__(rate, burst=burst)
        self.client = client
        self.key = key
        self._interval_us = round(rate.interval_s * 1_000_000)
        self._tolerance_us = burst * self._interval_us
        self._script = client.register_script(GCRA_SCRIPT)

    async def try_acquire(self) -> float:
        """Take a start if allowed now (returns 0), else the seconds to wait."""
        allowed, wait_us = cast(
            list[int],
            await self._script(
                keys=[self.key], args=[self._interval_us, self._tolerance_us]
            ),
        )
        return 0.0 if allowed else max(int(wait_us) / 1_000_000, MIN_WAIT_S)

    async def acquire(self) -> None:
        # TODO: waiters poll, so one worker can lose every race for a while (in
        # one run, one of eight consumers got no start in 2.5 s); a fair queue
        # of waiters, e.g. tickets in a sorted set, would serve them in turn.
        # Polling is the point here: the wait is computed by Redis, and no
        # event could wake a worker in another process.
        while (wait_s := await self.try_acquire()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait_s)
