"""The one interface every rate limiter has, and the rate it is given.

A limiter decides when a task may *start*. ``acquire`` waits until one start
is allowed; ``release`` is called when the task is over (most limiters do
nothing then; the interval limiter does its sleeping there). ``slot`` wraps
both around a task, so a consumer needs no knowledge of which limiter it has.

``burst`` is part of each limiter's contract: given ``Rate(N, period_s)``, no
window of ``period_s`` seconds ever holds more than ``N + burst`` starts.
"""

import bisect
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from queuelab.errors import ConfigError


@dataclass(frozen=True)
class Rate:
    """``count`` task starts per ``period_s`` seconds, e.g. ``Rate(60, 60.0)``."""

    count: int
    period_s: float = 1.0

    def __post_init__(self) -> None:
        if self.count < 1 or self.period_s <= 0:
            raise ConfigError(
                f"a rate needs count >= 1 and period_s > 0, got {self.count} "
                f"per {self.period_s} s"
            )

    @property
    def per_s(self) -> float:
        return self.count / self.period_s

    @property
    def interval_s(self) -> float:
        """The time between starts at exactly this rate."""
        return self.period_s / self.count

    def __str__(self) -> str:
        return f"{self.count} per {self.period_s:g} s"


class Limiter(ABC):
    """Decides when a task may start; see the module docstring."""

    def __init__(self, rate: Rate, *, burst: int = 0) -> None:
        if burst < 0:
            raise ConfigError(f"burst must be >= 0, got {burst}")
        self.rate = rate
        self.burst = burst

    @abstractmethod
    async def acquire(self) -> None:
        """Wait until one more task may start."""

    async def release(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Called when the task that acquired a slot is over."""

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """``async with limiter.slot(): ...`` around one task."""
        await self.acquire()
        try:
            yield
        finally:
            await self.release()

    @property
    def bound(self) -> int:
        """The most starts any window of one period may hold."""
        return self.rate.count + self.burst

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.rate}, burst={self.burst})"


def max_starts_in_window(starts: Sequence[float], window_s: float) -> int:
    """The largest number of ``starts`` (seconds) in any window ``[t, t+w)``.

    The busiest window can always be slid to begin at a start, so checking
    the windows that begin at each start is enough.
    """
    times = sorted(starts)
    best = 0
    for i, t in enumerate(times):
        best = max(best, bisect.bisect_left(times, t + window_s) - i)
    return best
