"""A Redis stream read by a consumer group: XADD, XREADGROUP, XACK, XAUTOCLAIM.

A stream is an append-only log: XADD appends an entry and Redis keeps it
whether or not anyone is listening, so a consumer that was away reads what it
missed when it comes back. A consumer group shares the entries among its
consumers: XREADGROUP with ``>`` hands each new entry to one consumer of the
group and records it in the group's pending entries list (PEL) under that
consumer's name until the consumer XACKs it.

A consumer that dies leaves its entries pending forever, because nobody else
reads another consumer's PEL by default. Recovery is explicit: XAUTOCLAIM
hands every entry pending for longer than ``min_idle_s`` to the caller, whose
delivery count Redis raises. That is at-least-once: a consumer that was only
slow sees its entry processed twice. An entry delivered ``max_attempts`` times
is dead-lettered instead of claimed again.

Since Redis 7, an entry can be pending although the stream no longer holds it
(XDEL, or XTRIM / XADD MAXLEN trimming past unacknowledged entries). XAUTOCLAIM
then drops it from the PEL and lists its id in a third reply element;
:meth:`StreamQueue.claim` reports those ids as lost, because their bodies are
gone. (Redis 6.2 returned such entries with no fields; they are read the same.)

An entry whose bytes are not a valid envelope is acknowledged and kept in
``<stream>:dead`` with the reason, so it is never claimed in a loop.
"""

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import redis.asyncio
from redis.exceptions import ResponseError

from queuelab import envelope as codec
from queuelab.envelope import Envelope
from queuelab.errors import ConfigError, EnvelopeError
from queuelab.ledger import Event, Ledger
from queuelab.redisq.blocking import BlockingConnection
from queuelab.redisq.consumer import RedisQueue, Task, dead_record

log = logging.getLogger(__name__)

FIELD = "envelope"


@dataclass(frozen=True)
class Entry:
    """An entry handed to this consumer; ``envelope.attempt`` counts deliveries."""

    entry_id: str
    envelope: Envelope


@dataclass(frozen=True)
class Claimed:
    """What one :meth:`StreamQueue.claim` took over."""

    entries: list[Entry] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # pending, gone from the stream
    dead_lettered: int = 0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class StreamQueue(RedisQueue):
    """One consumer of a consumer group on a stream."""

    def __init__(
        self,
        client: "redis.asyncio.Redis",
        stream: str,
        group: str,
        *,
        consumer: str | None = None,
        max_attempts: int = 5,
    ) -> None:
        if max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1, got {max_attempts}")
        super().__init__(client, stream)
        self.group = group
        self.consumer = consumer or f"consumer-{uuid.uuid4().hex[:8]}"
        self.max_attempts = max_attempts

    async def ensure_group(self, start_id: str = "0") -> bool:
        """Create the group (and the stream) if missing; True if created now.

        ``start_id="0"`` delivers entries already in the stream, ``"$"`` only
        those added from now on.
        """
        try:
            await self.client.xgroup_create(
                self.name, self.group, id=start_id, mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            return False
        return True

    async def push(self, envelope: Envelope, *, maxlen: int | None = None) -> str:
        """Append ``envelope``; its entry id. ``maxlen`` trims old entries (approx.)."""
        entry_id = await self.client.xadd(
            self.name, {FIELD: codec.encode(envelope)}, maxlen=maxlen, approximate=True
        )
        return _text(entry_id)

    async def read(self, count: int = 10, timeout_s: float | None = 1.0) -> list[Entry]:
        """Up to ``count`` new entries for this consumer, now pending under its name."""
        if self._blocking is None:
            self._blocking = BlockingConnection(self.client)

        async def xreadgroup(client: "redis.asyncio.Redis", block_s: float) -> Any:
            reply = await client.xreadgroup(
                self.group,
                self.consumer,
                {self.name: ">"},
                count=count,
                block=max(1, int(block_s * 1000)),
            )
            return reply or None

        reply = await self._blocking.wait(xreadgroup, timeout_s)
        if not reply:
            return []
        entries, _ = await self._entries(reply[0][1], {})
        return entries

    async def ack(self, entry: Entry) -> bool:
        """Acknowledge a processed entry; False if it was no longer pending here."""
        return int(await self.client.xack(self.name, self.group, entry.entry_id)) == 1

    async def claim(self, min_idle_s: float, count: int = 100) -> Claimed:
        """Take over entries pending longer than ``min_idle_s`` on any consumer."""
        min_idle_ms = int(min_idle_s * 1000)
        raw_entries: list[Any] = []
        deleted: list[str] = []
        cursor = "0-0"
        while len(raw_entries) < count:
            reply = await self.client.xautoclaim(
                self.name, self.group, self.consumer, min_idle_ms, cursor, count=count
            )
            cursor = _text(reply[0])
            deleted += [
                _text(entry_id) for entry_id in (reply[2] if len(reply) > 2 else [])
            ]
            for entry_id, fields in reply[1]:
                if not fields:  # how Redis 6.2 returned a deleted entry
                    deleted.append(_text(entry_id))
                else:
                    raw_entries.append((entry_id, fields))
            if cursor == "0-0":
                break
        for entry_id in deleted:
            log.warning(
                "entry %s of %s was deleted while pending in group %s: its message "
                "is lost",
                entry_id,
                self.name,
                self.group,
            )
        counts = await self._delivery_counts(raw_entries)
        entries, dead = await self._entries(raw_entries, counts)
        return Claimed(entries, deleted, dead)

    async def _delivery_counts(self, raw_entries: list[Any]) -> dict[str, int]:
        if not raw_entries:
            return {}
        ids = sorted((_text(entry_id) for entry_id, _ in raw_entries), key=_id_key)
        rows = await self.client.xpending_range(
            self.name,
            self.group,
            min=ids[0],
            max=ids[-1],
            count=len(ids) + 1000,
            consumername=self.consumer,
        )
        return {_text(row["message_id"]): int(row["times_delivered"]) for row in rows}

    async def _entries(
        self, raw_entries: list[Any], counts: dict[str, int]
    ) -> tuple[list[Entry], int]:
        """The valid entries as :class:`Entry`, and how many were dead-lettered."""
        entries, dead = [], 0
        for raw_id, fields in raw_entries:
            entry_id = _text(raw_id)
            data = fields.get(FIELD.encode(), fields.get(FIELD, b""))
            data = data if isinstance(data, bytes) else str(data).encode()
            attempt = counts.get(entry_id, 1)
            try:
                envelope = codec.decode(data)
            except EnvelopeError as exc:
                await self._dead(entry_id, data, str(exc))
                dead += 1
                continue
            if attempt > self.max_attempts:
                await self._dead(entry_id, data, f"delivered {attempt} times")
                dead += 1
                continue
            entries.append(Entry(entry_id, replace(envelope, attempt=attempt)))
        return entries, dead

    async def _dead(self, entry_id: str, data: bytes, reason: str) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.lpush(self.dead_name, dead_record(data, reason))
            pipe.xack(self.name, self.group, entry_id)
            await pipe.execute()
        log.warning("dead-lettered entry %s of %s: %s", entry_id, self.name, reason)

    async def pending(self) -> int:
        """Entries delivered to some consumer of the group and not acknowledged."""
        summary = await self.client.xpending(self.name, self.group)
        return int(summary["pending"])

    async def length(self) -> int:
        """Entries in the stream (acknowledged or not: a stream forgets nothing)."""
        return int(await self.client.xlen(self.name))


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def consume_stream(
    queue: StreamQueue,
    task: Task,
    *,
    stop: asyncio.Event,
    ledger: Ledger | None = None,
    worker: str = "consumer",
    count: int = 10,
    block_s: float = 0.5,
    min_idle_s: float | None = None,
) -> None:
    """Read, run and acknowledge entries until ``stop`` is set.

    With ``min_idle_s``, entries pending that long on any consumer (a dead
    one, say) are claimed and run too, checked every ``min_idle_s / 2``. A
    task that raises is left pending, to be claimed again after ``min_idle_s``.
    """
    ledger = ledger if ledger is not None else Ledger()
    last_claim = 0.0
    while not stop.is_set():
        entries: list[Entry] = []
        if min_idle_s is not None and time.monotonic() - last_claim >= min_idle_s / 2:
            last_claim = time.monotonic()
            entries += (await queue.claim(min_idle_s)).entries
        if not entries:
            entries = await queue.read(count, block_s)
        for entry in entries:
            await _run(queue, task, entry, ledger, worker)


async def _run(
    queue: StreamQueue, task: Task, entry: Entry, ledger: Ledger, worker: str
) -> None:
    envelope = entry.envelope
    ledger.record(Event.DELIVERED, envelope.id, worker=worker, attempt=envelope.attempt)
    try:
        await task(envelope)
    except Exception as exc:
        detail = f"left pending: {exc!r}"
        ledger.record(Event.NACKED, envelope.id, worker=worker, detail=detail)
        log.warning(
            "%s: task failed for message %s on %s, left pending: %s",
            worker,
            envelope.id,
            queue.name,
            exc,
        )
        return
    ledger.record(Event.PROCESSED, envelope.id, worker=worker, attempt=envelope.attempt)
    await queue.ack(entry)
