"""A token bucket, local to one process.

The bucket holds up to ``burst + 1`` tokens and refills continuously at the
rate (N per period). Each start takes one token; with none left, ``acquire``
waits exactly until the next one is due. A full bucket lets ``burst + 1``
tasks start at once; after that, starts follow the rate. In any window of one
period at most ``N + burst`` start: the tokens held at the window's start
plus fewer than N refilled during it.

Waiters are served in arrival order (an ``asyncio.Lock`` is first come,
first served), so one unlucky consumer is not starved.

What it cannot do: count across processes. Consumers in one process that
share one bucket hold the rate together; N worker processes have N buckets
and run at N times the rate. That is what :mod:`queuelab.ratelimit.gcra` is
for.
"""

import asyncio
import time

from queuelab.ratelimit.base import Limiter, Rate


class TokenBucket(Limiter):
    """``burst + 1`` tokens, refilled at the rate; starts full."""

    def __init__(self, rate: Rate, *, burst: int = 0) -> None:
        super().__init__(rate, burst=burst)
        self.capacity = float(burst + 1)
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                self._refill()
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self._tokens) * self.rate.interval_s)

    def _refill(self) -> None:
        now = time.monotonic()
        earned = (now - self._stamp) / self.rate.interval_s
        self._tokens = min(self.capacity, self._tokens + earned)
        self._stamp = now
