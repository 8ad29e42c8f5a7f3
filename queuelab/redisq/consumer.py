"""One consumer loop for every Redis task queue, and what the queues share.

A task queue hands out one task at a time (``pop``) and is told how the task
went (``done`` or ``failed``). What the queue does with that news is its
guarantee: the seed's BRPOP queue has already forgotten the task (at-most-once),
the reliable list queue and the priority queue keep it until ``done``
(at-least-once). The loop below is the same for all of them, so an experiment
can swap one queue for another and let the ledger show the difference.

Bytes that are not a valid envelope are never retried in a loop: the queue
moves them to ``<name>:dead`` with the reason beside them.
"""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Protocol, Self

import redis.asyncio

from queuelab.envelope import Envelope
from queuelab.errors import EnvelopeError
from queuelab.ledger import Event, Ledger
from queuelab.redisq.blocking import BlockingConnection

log = logging.getLogger(__name__)

Task = Callable[[Envelope], Awaitable[None]]


class Outcome(StrEnum):
    """What a queue did with a task whose run failed."""

    DROPPED = "dropped"  # gone for good (at-most-once)
    RETRIED = "retried"  # back in the queue for another attempt
    DEAD_LETTERED = "dead_lettered"  # out of attempts, kept with the reason


class TaskSource(Protocol):
    """What :func:`consume` needs from a queue."""

    name: str

    async def pop(self, timeout_s: float | None = 1.0) -> Envelope | None: ...

    async def done(self, envelope: Envelope) -> bool: ...

    async def failed(self, envelope: Envelope, reason: str) -> Outcome: ...


def as_bytes(value: bytes | str) -> bytes:
    """A reply item as bytes (clients made with decode_responses give str)."""
    return value if isinstance(value, bytes) else value.encode()


def dead_record(data: bytes, reason: str) -> str:
    """The JSON kept in a dead-letter list: the reason and the bytes as text."""
    return json.dumps({"reason": reason, "data": data.decode("utf-8", "replace")})


async def read_dead(client: "redis.asyncio.Redis", key: str) -> list[dict[str, str]]:
    """A dead-letter list's records, oldest first, as {reason, data} dicts."""
    items = await client.lrange(key, 0, -1)
    return [json.loads(item) for item in reversed(items)]


async def consume(
    queue: TaskSource,
    task: Task,
    *,
    stop: asyncio.Event,
    ledger: Ledger | None = None,
    worker: str = "consumer",
    block_s: float = 0.5,
) -> None:
    """Pop and run tasks until ``stop`` is set.

    ``stop`` is looked at between tasks and at least every ``block_s``, so a
    stopped consumer finishes the task in hand and holds nothing afterwards.
    """
    ledger = ledger if ledger is not None else Ledger()
    while not stop.is_set():
        try:
            envelope = await queue.pop(block_s)
        except EnvelopeError as exc:
            ledger.record(Event.DEAD_LETTERED, "", worker=worker, detail=str(exc))
            continue
        if envelope is None:
            continue

        attempt = envelope.attempt
        ledger.record(Event.DELIVERED, envelope.id, worker=worker, attempt=attempt)
        try:
            await task(envelope)
        except Exception as exc:
            outcome = await queue.failed(envelope, repr(exc))
            event = Event.DEAD_LETTERED
            if outcome is not Outcome.DEAD_LETTERED:
                event = Event.NACKED
            detail = f"{outcome}: {exc!r}"
            ledger.record(
                event, envelope.id, worker=worker, attempt=attempt, detail=detail
            )
            log.warning(
                "%s: task failed for message %s on %s (%s): %s",
                worker,
                envelope.id,
                queue.name,
                outcome,
                exc,
            )
            continue
        ledger.record(Event.PROCESSED, envelope.id, worker=worker, attempt=attempt)
        await queue.done(envelope)


class RedisQueue:
    """What the Redis queues share: a key, a dead-letter list beside it
    (``<name>:dead``), and a connection of their own for blocking reads."""

    def __init__(self, client: "redis.asyncio.Redis", name: str) -> None:
        self.client = client
        self.name = name
        self.dead_name = f"{name}:dead"
        self._blocking: BlockingConnection | None = None

    async def dead_letters(self) -> list[dict[str, str]]:
        """What was dead-lettered, oldest first, as {reason, data} dicts."""
        return await read_dead(self.client, self.dead_name)

    async def delete(self) -> None:
        await self.client.delete(self.name, self.dead_name)

    async def close(self) -> None:
        """Close the blocking connection; the client passed in stays open."""
        if self._blocking is not None:
            await self._blocking.close()
            self._blocking = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
