"""The interval limiter: sleep ``period / N`` after each task.

This is the rate limit most queue snippets show, a sleep after each task,
and it is the baseline the other limiters are measured against. Within one
consumer that runs one task at a time it never exceeds the rate: starts are
at least ``period / N`` apart, so a window of one period holds at most N
starts (burst 0).

What goes wrong: the limit belongs to the consumer, not to the system. Run N
consumers and the broker is hit at N times the rate. Share one instance
between tasks that run concurrently (prefetch above 1) and every task sleeps
in parallel, which limits nothing. And the sleep comes *after* the task, so a
task that takes as long as the interval halves the rate.
"""

import asyncio

from queuelab.ratelimit.base import Limiter, Rate


class IntervalLimiter(Limiter):
    """Sleeps one interval after each task; burst 0, per consumer only."""

    def __init__(self, rate: Rate) -> None:
        super().__init__(rate, burst=0)

    async def acquire(self) -> None:
        return None

    async def release(self) -> None:
        await asyncio.sleep(self.rate.interval_s)
