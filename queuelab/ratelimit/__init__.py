"""Rate limiters: how many tasks may start per period, and who counts.

Every limiter here has one interface (:class:`Limiter`): ``async with
limiter.slot(): run the task``. Each is given a :class:`Rate`, "N per
period", and each documents its *burst*: how many starts beyond N it may
allow in any window of one period. A test checks that bound on real runs.

- :class:`IntervalLimiter` is the limiter most snippets show: sleep
  ``period / N`` after each task. It limits one consumer, not the system: N
  consumers run at N times the rate, and the task's own duration comes on top
  of the sleep, so one consumer runs below the rate.
- :class:`TokenBucket` counts starts in this process: a bucket refills at the
  rate and each start takes a token. Shared by all consumers of one process,
  it holds the rate for that process; every other process has its own bucket.
- :class:`GcraLimiter` keeps one limit in Redis for every worker and process,
  with the generic cell rate algorithm in a single Lua script (one round trip,
  atomic, one key per limit).
"""

from queuelab.ratelimit.base import Limiter, Rate, max_starts_in_window
from queuelab.ratelimit.gcra import GcraLimiter
from queuelab.ratelimit.interval import IntervalLimiter
from queuelab.ratelimit.token_bucket import TokenBucket

__all__ = [
    "GcraLimiter",
    "IntervalLimiter",
    "Limiter",
    "Rate",
    "TokenBucket",
    "max_starts_in_window",
]
