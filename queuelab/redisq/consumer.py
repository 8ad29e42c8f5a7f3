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
from typing import Protocol

import redis.asyncio

from queuelab.envelope import Envelope
from queuelab.errors import EnvelopeError
from queuelab.ledger import Event, Ledger

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
