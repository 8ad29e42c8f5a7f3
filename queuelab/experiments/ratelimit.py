"""Rate-limited consumers on RabbitMQ: the rate achieved against the target.

A run preloads a queue with more messages than the consumers could take in
the time, starts one consumer per limiter, lets them run for ``duration_s``
and records the moment each task starts. The achieved rate is the number of
starts in that time divided by it; the busiest window of one period is the
number the limiter's contract (``N + burst``) is about.

A start is timed when the task sees it, a little after the limiter allowed
it: the event loop may be busy with another consumer, and a GCRA answer has
to travel back from Redis. That delay varies by a few milliseconds, so a
first start seen late can make the next period look one start too full. The
busiest window is therefore counted over one period less
:data:`OBSERVATION_SLACK_S`; a start beyond the contract lands anywhere in the
window and is still counted.

Which limiters the consumers get decides what is measured: one interval
limiter or token bucket each (what separate worker processes would have), or
one GCRA limit in Redis shared by all.
"""

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from queuelab.envelope import Envelope
from queuelab.experiments.common import unique_name
from queuelab.experiments.roundtrip import workload
from queuelab.ledger import Ledger
from queuelab.rabbitmq import Consumer, Producer
from queuelab.rabbitmq.connection import admin_channel
from queuelab.rabbitmq.consumer import Task
from queuelab.ratelimit import Limiter, Rate, max_starts_in_window

OBSERVATION_SLACK_S = 0.02


@dataclass
class LimitedRun:
    """What one rate-limited run did."""

    label: str
    rate: Rate
    burst: int
    consumers: int
    duration_s: float
    starts: pd.DataFrame  # t_s (since the run began), worker
    ledger: pd.DataFrame

    @property
    def achieved_per_s(self) -> float:
        return len(self.starts) / self.duration_s

    @property
    def busiest_window(self) -> int:
        """Most starts in any window of one period (less the observation slack)."""
        window_s = self.rate.period_s - OBSERVATION_SLACK_S
        return max_starts_in_window(self.starts.t_s.tolist(), window_s)

    def as_row(self) -> dict[str, object]:
        return {
            "limiter": self.label,
            "consumers": self.consumers,
            "target_per_s": self.rate.per_s,
            "achieved_per_s": round(self.achieved_per_s, 1),
            "busiest_window": self.busiest_window,
            "bound": self.rate.count + self.burst,
        }


async def rate_limited_run(
    url: str,
    limiters: Sequence[Limiter],
    *,
    duration_s: float = 3.0,
    task_s: float = 0.0,
    label: str = "",
    seed: int = 0,
) -> LimitedRun:
    """One consumer per limiter on one queue, for ``duration_s`` seconds."""
    rate, burst = limiters[0].rate, limiters[0].burst
    queue = unique_name("ratelimit")
    # Enough for every consumer at the full rate plus its burst, with room.
    backlog = math.ceil(len(limiters) * (rate.per_s * duration_s + burst) * 1.3) + 20
    async with Producer(url, queue, window=200) as producer:
        await producer.publish_many(workload(backlog, seed=seed, body_bytes=16))

    ledger = Ledger()
    starts: list[tuple[float, str]] = []
    consumers = [
        Consumer(
            url,
            queue,
            _recording_task(starts, f"c{i}", task_s),
            limiter=limiter,
            ledger=ledger,
            worker=f"c{i}",
            stop_timeout_s=rate.interval_s + task_s + 1.0,
        )
        for i, limiter in enumerate(limiters)
    ]
    begin = time.monotonic()
    await asyncio.gather(*(consumer.start() for consumer in consumers))
    await asyncio.sleep(max(0.0, begin + duration_s - time.monotonic()))
    await asyncio.gather(*(consumer.stop() for consumer in consumers))
    async with admin_channel(url) as channel:
        await channel.queue_delete(queue)

    frame = pd.DataFrame(starts, columns=["t", "worker"])
    frame["t_s"] = frame.t - begin
    frame = frame[(frame.t_s >= 0) & (frame.t_s < duration_s)]
    return LimitedRun(
        label=label or type(limiters[0]).__name__,
        rate=rate,
        burst=burst,
        consumers=len(limiters),
        duration_s=duration_s,
        starts=frame[["t_s", "worker"]].reset_index(drop=True),
        ledger=ledger.frame(),
    )


def _recording_task(
    starts: list[tuple[float, str]], worker: str, task_s: float
) -> Task:
    async def task(envelope: Envelope) -> None:
        starts.append((time.monotonic(), worker))
        if task_s:
            await asyncio.sleep(task_s)

    return task
