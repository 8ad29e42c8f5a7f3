"""The Redis backends of an experiment, behind one small interface.

A worker needs three things of a queue: take the next message, settle it (the
ack), and, for the runner, the depth. The guarantee decides when the worker
settles, exactly as on RabbitMQ:

- redis-list, at-most-once: the seed's ``BRPOP``. Taking is settling: the
  message is gone from Redis as it is handed over.
- redis-list, at-least-once and effectively-once: the reliable list, ``BLMOVE``
  into the worker's processing list; settling is the ``LREM``. A replacement
  worker under the same name takes back what its predecessor held, and the
  runner's reaper returns what a worker held past its visibility timeout.
- redis-stream: a consumer group; settling is ``XACK``. Entries a dead consumer
  left pending are claimed by the others after ``VISIBILITY_S`` idle.
  At-most-once acks before the task.
"""

import asyncio
from dataclasses import dataclass
from typing import Any

import redis.asyncio

from queuelab.envelope import Envelope
from queuelab.experiments.spec import Backend
from queuelab.guarantees import Guarantee
from queuelab.redisq.list_queue import ListQueue
from queuelab.redisq.reliable_queue import ReliableListQueue
from queuelab.redisq.streams import Entry, StreamQueue

VISIBILITY_S = 1.0  # how long a worker may hold a message before it is taken back
GROUP = "workers"
MAX_ATTEMPTS = 1000  # experiments count redeliveries; they do not dead-letter


@dataclass
class Taken:
    envelope: Envelope
    handle: Any  # what settle() needs: the envelope or the stream entry


class RedisSource:
    """One worker's view of a Redis queue: take, settle, close."""

    def __init__(
        self,
        client: "redis.asyncio.Redis",
        backend: Backend,
        guarantee: Guarantee,
        queue: str,
        worker: str,
    ) -> None:
        self.backend = backend
        self._list: ListQueue | ReliableListQueue | None = None
        self._stream: StreamQueue | None = None
        self._last_claim = 0.0
        if backend is Backend.REDIS_STREAM:
            self._stream = StreamQueue(
                client, queue, GROUP, consumer=worker, max_attempts=MAX_ATTEMPTS
            )
        elif guarantee is Guarantee.AT_MOST_ONCE:
            self._list = ListQueue(client, queue)
        else:
            self._list = ReliableListQueue(
                client,
                queue,
                worker=worker,
                visibility_timeout_s=VISIBILITY_S,
                max_attempts=MAX_ATTEMPTS,
            )

    @property
    def settles_on_take(self) -> bool:
        """True for BRPOP: there is nothing left in Redis to acknowledge."""
        return isinstance(self._list, ListQueue)

    async def take(self, block_s: float = 0.5) -> Taken | None:
        if self._list is not None:
            envelope = await self._list.pop(block_s)
            return Taken(envelope, envelope) if envelope else None
        assert self._stream is not None
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_claim > VISIBILITY_S / 2:
            self._last_claim = loop.time()
            claimed = await self._stream.claim(VISIBILITY_S, count=1)
            if claimed.entries:
                return self._entry(claimed.entries[0])
        entries = await self._stream.read(1, block_s)
        return self._entry(entries[0]) if entries else None

    async def settle(self, taken: Taken) -> None:
        if isinstance(self._list, ReliableListQueue):
            await self._list.done(taken.envelope)
        elif self._stream is not None:
            await self._stream.ack(taken.handle)

    async def close(self) -> None:
        if self._list is not None:
            await self._list.close()
        if self._stream is not None:
            await self._stream.close()

    @staticmethod
    def _entry(entry: Entry) -> Taken:
        return Taken(entry.envelope, entry)


async def prepare(client: "redis.asyncio.Redis", backend: Backend, queue: str) -> None:
    """Create what the backend needs before anything is pushed."""
    if backend is Backend.REDIS_STREAM:
        await StreamQueue(client, queue, GROUP).ensure_group("$")


async def push(
    client: "redis.asyncio.Redis", backend: Backend, queue: str, envelope: Envelope
) -> None:
    if backend is Backend.REDIS_STREAM:
        await StreamQueue(client, queue, GROUP).push(envelope)
    else:
        await ListQueue(client, queue).push(envelope)


async def depth(client: "redis.asyncio.Redis", backend: Backend, queue: str) -> int:
    """Messages waiting: the list's length, or the group's undelivered lag."""
    if backend is Backend.REDIS_STREAM:
        groups = await client.xinfo_groups(queue)
        lag = groups[0].get("lag") if groups else 0
        return int(lag or 0)
    return int(await client.llen(queue))


async def reap(client: "redis.asyncio.Redis", queue: str) -> int:
    """Return to the queue what workers held past their visibility timeout."""
    reaper = ReliableListQueue(
        client, queue, worker="reaper", visibility_timeout_s=VISIBILITY_S
    )
    return await reaper.reap()


async def delete(client: "redis.asyncio.Redis", queue: str) -> None:
    keys = [key async for key in client.scan_iter(f"{queue}*")]
    if keys:
        await client.delete(*keys)
