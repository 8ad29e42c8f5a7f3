"""One publish at a time against a confirm window, on the same workload.

Each run publishes the same seeded messages, persistent and confirmed, to a
fresh durable queue, and the rate is read from the ledger: confirmed messages
divided by the time from the first publish to the last confirm. Only the
number of confirms allowed in flight changes between runs.
"""

import pandas as pd
from tqdm.auto import tqdm

from queuelab.experiments.common import unique_name
from queuelab.experiments.roundtrip import workload
from queuelab.ledger import Event, Ledger
from queuelab.rabbitmq import Producer
from queuelab.rabbitmq.connection import admin_channel

ONE_AT_A_TIME = "one at a time"


def confirm_rate(frame: pd.DataFrame) -> tuple[int, float]:
    """Confirmed messages and their rate (msg/s) in one producer's ledger."""
    confirmed = frame[frame.event == Event.CONFIRMED]
    published = frame[frame.event == Event.PUBLISHED]
    if confirmed.empty:
        return 0, 0.0
    duration_s = float(confirmed.t.max() - published.t.min())
    return len(confirmed), len(confirmed) / duration_s


async def publish_rates(
    url: str,
    n: int,
    windows: tuple[int, ...] = (1, 10, 100, 1000),
    *,
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """One row per mode: awaited one at a time, then each confirm window."""
    modes: list[tuple[str, int | None]] = [(ONE_AT_A_TIME, None)]
    modes += [(f"window {w}", w) for w in windows]
    messages = list(workload(n, seed=seed))  # built before any clock starts
    rows = []
    for label, window in tqdm(modes, desc="publishing", disable=not progress):
        queue = unique_name("publish")
        ledger = Ledger()
        async with Producer(url, queue, ledger=ledger, window=window or 1) as producer:
            if window is None:
                for envelope in messages:
                    await producer.publish(envelope)
            else:
                await producer.publish_many(messages)
        async with admin_channel(url) as channel:
            await channel.queue_delete(queue)
        confirmed, per_s = confirm_rate(ledger.frame())
        rows.append(
            {
                "mode": label,
                "in_flight": window or 1,
                "confirmed": confirmed,
                "per_s": round(per_s, 1),
            }
        )
    return pd.DataFrame(rows)
