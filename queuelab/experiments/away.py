"""A subscriber that is away for a while: what does it get when it is back?

Three phases, the same for every backend: messages published while the
subscriber listens (``before``), while it is gone (``away``: its process
stopped, its connection closed) and after it is back (``after``). The ledger
records each message with its phase, and the table counts what arrived.

Redis pub/sub keeps nothing: PUBLISH reports 0 receivers while the subscriber
is away, and those messages are gone. A Redis stream with a consumer group
keeps every entry, and the group remembers how far its consumer had read, so
the returning consumer reads what it missed, then the rest.
"""

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import redis.asyncio

from queuelab import envelope as codec
from queuelab.envelope import Kind
from queuelab.ledger import Event, Ledger
from queuelab.redisq.pubsub import Subscriber, publish
from queuelab.redisq.streams import StreamQueue

PHASES = ("before", "away", "after")
QUIET_S = 0.3  # a subscriber that hears nothing for this long has heard it all


@dataclass
class AwayRun:
    """What one backend delivered in each phase."""

    backend: str
    ledger: pd.DataFrame
    receivers_while_away: int | None  # PUBLISH's replies summed (pub/sub only)

    def phases(self) -> pd.DataFrame:
        """Per phase: messages published and received by the subscriber."""
        frame = self.ledger
        published = frame[frame.event == Event.PUBLISHED]
        phase_of = dict(zip(published.message_id, published.detail, strict=True))
        received = frame[frame.event == Event.PROCESSED].message_id.map(phase_of)
        table = pd.DataFrame(
            {
                "published": published.detail.value_counts(),
                "received": received.value_counts(),
            }
        )
        table = table.reindex(list(PHASES)).fillna(0).astype(int)
        table.index.name = "phase"
        table.insert(0, "backend", self.backend)
        return table.reset_index()


def _events(phase: str, n: int, start: int) -> list[codec.Envelope]:
    return [
        codec.new({"phase": phase, "n": start + i}, start + i, kind=Kind.EVENT)
        for i in range(n)
    ]


async def pubsub_away(
    client_factory: Callable[[], "redis.asyncio.Redis"],
    *,
    before: int = 20,
    away: int = 20,
    after: int = 20,
) -> AwayRun:
    """Redis PUBLISH/SUBSCRIBE with a subscriber away for the middle phase."""
    channel = f"queuelab:news:{uuid.uuid4().hex[:8]}"
    publisher = client_factory()
    ledger = Ledger()
    counts = dict(zip(PHASES, (before, away, after), strict=True))
    receivers_away = 0
    start = 0
    subscriber: Subscriber | None = None
    for phase in PHASES:
        if phase != "away" and subscriber is None:
            subscriber = await Subscriber(client_factory(), channel).start()
        for envelope in _events(phase, counts[phase], start):
            ledger.record(
                Event.PUBLISHED, envelope.id, worker="publisher", detail=phase
            )
            receivers = await publish(publisher, channel, envelope)
            receivers_away += receivers if phase == "away" else 0
        start += counts[phase]
        if subscriber is not None:
            await _listen(subscriber, ledger)
        if phase == "before" and subscriber is not None:
            await subscriber.close()
            await subscriber.client.aclose()
            subscriber = None
    if subscriber is not None:
        await subscriber.close()
        await subscriber.client.aclose()
    await publisher.aclose()
    return AwayRun("redis pub/sub", ledger.frame(), receivers_away)


async def _listen(subscriber: Subscriber, ledger: Ledger) -> None:
    while (envelope := await subscriber.get(QUIET_S)) is not None:
        ledger.record(Event.PROCESSED, envelope.id, worker="subscriber")


async def stream_away(
    client_factory: Callable[[], "redis.asyncio.Redis"],
    *,
    before: int = 20,
    away: int = 20,
    after: int = 20,
) -> AwayRun:
    """A Redis stream read by a consumer group whose consumer is away a while."""
    stream = f"queuelab:news:{uuid.uuid4().hex[:8]}"
    producer_client = client_factory()
    producer = StreamQueue(producer_client, stream, "dashboard")
    await producer.ensure_group()
    ledger = Ledger()
    counts = dict(zip(PHASES, (before, away, after), strict=True))
    start = 0
    reader: StreamQueue | None = None
    for phase in PHASES:
        if phase != "away" and reader is None:
            reader = StreamQueue(client_factory(), stream, "dashboard", consumer="d1")
        for envelope in _events(phase, counts[phase], start):
            ledger.record(
                Event.PUBLISHED, envelope.id, worker="publisher", detail=phase
            )
            await producer.push(envelope)
        start += counts[phase]
        if reader is not None:
            await _read_all(reader, ledger)
        if phase == "before" and reader is not None:
            await reader.close()
            await reader.client.aclose()
            reader = None
    if reader is not None:
        await reader.close()
        await reader.client.aclose()
    await producer.delete()
    await producer_client.aclose()
    return AwayRun("redis stream", ledger.frame(), None)


async def _read_all(reader: StreamQueue, ledger: Ledger) -> None:
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < QUIET_S:
        entries = await reader.read(count=100, timeout_s=0.1)
        for entry in entries:
            ledger.record(Event.PROCESSED, entry.envelope.id, worker="subscriber")
            await reader.ack(entry)
        if entries:
            quiet_since = time.monotonic()
