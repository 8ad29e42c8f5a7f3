"""A Redis LIST as a task queue: LPUSH to add, BRPOP to take.

The producer pushes on the left and each consumer blocks on the right, so the
list is FIFO and one pop hands a task to exactly one consumer. It is fast and
simple, and it is at-most-once: BRPOP removes the task from Redis the moment it
is handed over, so a consumer that dies mid-task takes the task with it.
Redis with no persistence also loses every queued task on restart.

A popped item that is not a valid envelope is pushed to ``<name>:dead`` with
the reason beside it, so a poison message is kept for inspection and never
retried in a loop.
"""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio

from queuelab import envelope as codec
from queuelab.envelope import Envelope
from queuelab.errors import EnvelopeError
from queuelab.ledger import Event, Ledger

log = logging.getLogger(__name__)

Task = Callable[[Envelope], Awaitable[None]]


class ListQueue:
    """The seed's LPUSH/BRPOP queue over one Redis key."""

    def __init__(self, client: "redis.asyncio.Redis", name: str) -> None:
        self.client = client
        self.name = name
        self.dead_name = f"{name}:dead"

    async def push(self, envelope: Envelope) -> None:
        await self.client.lpush(self.name, codec.encode(envelope))

    async def pop(self, timeout_s: float = 1.0) -> Envelope | None:
        """The oldest task, waiting up to ``timeout_s``; None if none came."""
        result = await self.client.brpop([self.name], timeout=timeout_s)
        if result is None:
            return None
        _, raw = result
        data = raw if isinstance(raw, bytes) else raw.encode()
        try:
            return codec.decode(data)
        except EnvelopeError as exc:
            await self._dead_letter(data, str(exc))
            raise

    async def length(self) -> int:
        return int(await self.client.llen(self.name))

    async def dead_letters(self) -> list[dict[str, str]]:
        """What was dead-lettered, oldest first, as {reason, data} dicts."""
        items = await self.client.lrange(self.dead_name, 0, -1)
        return [json.loads(item) for item in reversed(items)]

    async def delete(self) -> None:
        await self.client.delete(self.name, self.dead_name)

    async def _dead_letter(self, data: bytes, reason: str) -> None:
        record = {"reason": reason, "data": data.decode("utf-8", "replace")}
        await self.client.lpush(self.dead_name, json.dumps(record))
        log.warning("dead-lettered malformed item from %s: %s", self.name, reason)


async def consume(
    queue: ListQueue,
    task: Task,
    *,
    stop: asyncio.Event,
    ledger: Ledger | None = None,
    worker: str = "consumer",
    block_s: float = 0.5,
) -> None:
    """Pop and run tasks until ``stop`` is set.

    A task that raises is logged and counted as nacked: with BRPOP it is
    already gone from Redis, so it is not retried.
    """
    ledger = ledger if ledger is not None else Ledger()
    while not stop.is_set():
        try:
            envelope = await queue.pop(block_s)
        except EnvelopeError:
            ledger.record(Event.DEAD_LETTERED, "", worker=worker, detail="malformed")
            continue
        if envelope is None:
            continue

        ledger.record(Event.DELIVERED, envelope.id, worker=worker, attempt=1)
        try:
            await task(envelope)
        except Exception as exc:
            ledger.record(Event.NACKED, envelope.id, worker=worker, detail=repr(exc))
            log.warning(
                "%s: task failed for message %s on %s, dropped: %s",
                worker,
                envelope.id,
                queue.name,
                exc,
            )
            continue
        ledger.record(Event.PROCESSED, envelope.id, worker=worker, attempt=1)
