"""The reliable list queue: BLMOVE into a processing list, LREM when done.

BRPOP takes a task out of Redis as it hands it over, so a consumer that dies
mid-task loses it. Here the hand-over is a move instead: BLMOVE takes the
oldest task from the queue and, in the same atomic step, pushes it onto a
processing list that belongs to this worker (``<name>:processing:<worker>``).
The task stays there while it runs, and LREM removes it when it is done.

Who notices a dead worker? Each worker holds a lease, a key that expires
(``<name>:lease:<worker>``), renewed on every pop for ``visibility_timeout_s``.
A reaper (any process calling :meth:`ReliableListQueue.reap`) looks at every
registered worker, and a processing list whose lease has expired belongs to a
worker presumed dead: its tasks go back to the front of the queue with their
attempt number raised. That is at-least-once: a worker that was only slow, or
that died after its task's effect but before LREM, sees its task run again.
Tasks should be idempotent; ``done`` returns False and logs a warning when the
task had already been returned. A task that keeps killing its worker is
dead-lettered after ``max_attempts`` deliveries instead of looping forever.

A worker that starts under the name of a dead one first returns what that name
still holds, so a restarted worker recovers its own tasks at once.

Moves out of a processing list are Lua scripts ("remove it from the processing
list, and only if that worked, push it elsewhere"), so a reaper and a finishing
worker can never both act on the same task.
"""

import asyncio
import contextlib
import logging
import uuid

import redis.asyncio

from queuelab import envelope as codec
from queuelab.envelope import Envelope
from queuelab.errors import ConfigError, EnvelopeError
from queuelab.redisq.blocking import BlockingConnection
from queuelab.redisq.consumer import Outcome, RedisQueue, as_bytes, dead_record

log = logging.getLogger(__name__)

# Take the oldest task into the processing list and renew the lease, in one
# step; empty when the queue is empty (then the caller blocks with BLMOVE).
_TAKE = """
local item = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
if item then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[1])
  redis.call('SADD', KEYS[4], ARGV[2])
end
return item
"""

# Move one item out of a processing list only if it is still there.
_MOVE = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
  if ARGV[3] == 'front' then
    redis.call('RPUSH', KEYS[2], ARGV[2])
  else
    redis.call('LPUSH', KEYS[2], ARGV[2])
  end
  return 1
end
return 0
"""


class ReliableListQueue(RedisQueue):
    """BLMOVE into a per-worker processing list; at-least-once with a reaper."""

    def __init__(
        self,
        client: "redis.asyncio.Redis",
        name: str,
        *,
        worker: str | None = None,
        visibility_timeout_s: float = 30.0,
        max_attempts: int = 5,
    ) -> None:
        if visibility_timeout_s <= 0:
            raise ConfigError(
                f"visibility_timeout_s must be > 0: {visibility_timeout_s}"
            )
        if max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1, got {max_attempts}")
        super().__init__(client, name)
        self.worker = worker or f"worker-{uuid.uuid4().hex[:8]}"
        self.visibility_timeout_s = visibility_timeout_s
        self.max_attempts = max_attempts
        self.workers_name = f"{name}:workers"
        self.processing_name = self._processing(self.worker)
        self.lease_name = self._lease(self.worker)
        self._take = client.register_script(_TAKE)
        self._move = client.register_script(_MOVE)
        self._fake = _is_fakeredis(client)
        self._held: dict[str, bytes] = {}  # message id -> the bytes in processing
        self._recovered = False

    def _processing(self, worker: str) -> str:
        return f"{self.name}:processing:{worker}"

    def _lease(self, worker: str) -> str:
        return f"{self.name}:lease:{worker}"

    @property
    def _lease_ms(self) -> int:
        return max(1, int(self.visibility_timeout_s * 1000))

    async def push(self, envelope: Envelope) -> None:
        await self.client.lpush(self.name, codec.encode(envelope))

    async def pop(self, timeout_s: float | None = 1.0) -> Envelope | None:
        """The oldest task, now held by this worker; None if none came in time."""
        if not self._recovered:
            await self.recover()
        keys = [self.name, self.processing_name, self.lease_name, self.workers_name]
        raw = await self._take(keys=keys, args=[self._lease_ms, self.worker])
        if raw is None:
            if self._blocking is None:
                self._blocking = BlockingConnection(self.client)
            raw = await self._blocking.wait(self._blmove, timeout_s)
            if raw is None:
                return None
            await self.touch()
        return await self._decode(raw)

    async def _blmove(
        self, client: "redis.asyncio.Redis", block_s: float
    ) -> bytes | None:
        # While blocked, the lease must outlast the block: a reaper must not
        # take a task that BLMOVE hands over in the last moment of the wait.
        lease_ms = self._lease_ms + int(block_s * 1000)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.set(self.lease_name, "1", px=lease_ms)
            pipe.sadd(self.workers_name, self.worker)
            await pipe.execute()
        if self._fake:
            # TODO: fakeredis 2.41's BLMOVE returns at once on an empty list
            # instead of blocking; BRPOPLPUSH is the same move (RIGHT to LEFT)
            # and blocks there. Use BLMOVE everywhere once fakeredis blocks.
            raw = await client.brpoplpush(self.name, self.processing_name, block_s)
        else:
            # redis-py annotates this timeout as int; Redis takes decimal seconds.
            raw = await client.blmove(
                self.name,
                self.processing_name,
                block_s,  # type: ignore[arg-type]
                "RIGHT",
                "LEFT",
            )
        return None if raw is None else as_bytes(raw)

    async def _decode(self, raw: bytes) -> Envelope:
        try:
            envelope = codec.decode(raw)
        except EnvelopeError as exc:
            await self._move_out(
                self.worker, raw, self.dead_name, dead_record(raw, str(exc))
            )
            log.warning("dead-lettered malformed item from %s: %s", self.name, exc)
            raise
        self._held[envelope.id] = raw
        return envelope

    # TODO: the lease is per worker, renewed by every pop, so a worker that
    # holds several tasks at once keeps an old one alive by taking new ones.
    # A deadline per task (a sorted set of processing items by deadline) would
    # time each task on its own; one task at a time, as consume() runs, is exact.
    async def touch(self) -> None:
        """Renew this worker's lease; a task longer than the timeout calls it."""
        await self.client.set(self.lease_name, "1", px=self._lease_ms)

    async def done(self, envelope: Envelope) -> bool:
        """Remove the finished task; False if a reaper had already returned it."""
        raw = self._held.pop(envelope.id, None)
        if raw is None:
            return False
        # redis-py's annotation says str; it sends bytes as they are.
        removed = await self.client.lrem(self.processing_name, 1, raw)  # type: ignore[arg-type]
        removed = int(removed)
        if not removed:
            log.warning(
                "%s finished message %s on %s after its visibility timeout; it was "
                "returned to the queue and will run again",
                self.worker,
                envelope.id,
                self.name,
            )
        return removed == 1

    async def failed(self, envelope: Envelope, reason: str) -> Outcome:
        """Return the task for another attempt, or dead-letter it when out of them."""
        raw = self._held.pop(envelope.id, None)
        if raw is None:
            return Outcome.DROPPED
        if envelope.attempt >= self.max_attempts:
            await self._move_out(
                self.worker, raw, self.dead_name, dead_record(raw, reason)
            )
            return Outcome.DEAD_LETTERED
        retry = codec.encode(envelope.retry())
        await self._move_out(self.worker, raw, self.name, retry, front=False)
        return Outcome.RETRIED

    async def recover(self) -> int:
        """Return whatever a former worker of this name still holds."""
        self._recovered = True
        returned = await self._return_all(self.worker)
        if returned:
            log.warning(
                "%s recovered %d task(s) its former self held on %s",
                self.worker,
                returned,
                self.name,
            )
        return returned

    async def reap(self) -> int:
        """Return the tasks of every worker whose lease has expired; how many."""
        returned = 0
        for member in await self.client.smembers(self.workers_name):
            worker = member.decode() if isinstance(member, bytes) else str(member)
            if await self.client.exists(self._lease(worker)):
                continue
            returned += await self._return_all(worker)
        return returned

    async def _return_all(self, worker: str) -> int:
        returned = 0
        # Newest first, each to the front: the oldest ends up first in line.
        for raw in await self.client.lrange(self._processing(worker), 0, -1):
            returned += await self._return_one(worker, as_bytes(raw))
        return returned

    async def _return_one(self, worker: str, raw: bytes) -> int:
        try:
            envelope = codec.decode(raw)
        except EnvelopeError as exc:
            await self._move_out(
                worker, raw, self.dead_name, dead_record(raw, str(exc))
            )
            return 0
        if envelope.attempt >= self.max_attempts:
            reason = f"held by a dead worker on each of {envelope.attempt} attempts"
            await self._move_out(worker, raw, self.dead_name, dead_record(raw, reason))
            log.warning(
                "dead-lettered message %s on %s: %s", envelope.id, self.name, reason
            )
            return 0
        moved = await self._move_out(
            worker, raw, self.name, codec.encode(envelope.retry())
        )
        if moved:
            log.warning(
                "returned message %s held by %s to %s (attempt %d next)",
                envelope.id,
                worker,
                self.name,
                envelope.attempt + 1,
            )
        return moved

    async def _move_out(
        self,
        worker: str,
        raw: bytes,
        target: str,
        new: str | bytes,
        *,
        front: bool = True,
    ) -> int:
        where = "front" if front else "back"
        keys = [self._processing(worker), target]
        return int(await self._move(keys=keys, args=[raw, new, where]))

    async def length(self) -> int:
        return int(await self.client.llen(self.name))

    async def in_flight(self) -> int:
        """Tasks held in processing lists, over all workers."""
        total = 0
        for member in await self.client.smembers(self.workers_name):
            worker = member.decode() if isinstance(member, bytes) else str(member)
            total += int(await self.client.llen(self._processing(worker)))
        return total

    async def delete(self) -> None:
        """Delete the queue, its dead letters and every worker's lists and lease."""
        keys = [self.name, self.dead_name, self.workers_name]
        for member in await self.client.smembers(self.workers_name):
            worker = member.decode() if isinstance(member, bytes) else str(member)
            keys += [self._processing(worker), self._lease(worker)]
        await self.client.delete(*keys)

    async def close(self, *, release: bool = True) -> None:
        """Close the blocking connection, and give up the lease.

        With ``release=False`` the lease and the name stay, as a crashed
        worker leaves them: what it holds is reaped once the lease expires.
        """
        await super().close()
        if not release:
            return
        if not await self.client.llen(self.processing_name):
            await self.client.srem(self.workers_name, self.worker)
        await self.client.delete(self.lease_name)


def _is_fakeredis(client: "redis.asyncio.Redis") -> bool:
    return client.connection_pool.connection_class.__module__.startswith("fakeredis")


async def run_reaper(
    queue: ReliableListQueue, *, stop: asyncio.Event, interval_s: float = 1.0
) -> int:
    """Reap every ``interval_s`` until ``stop`` is set; the tasks returned."""
    returned = 0
    while not stop.is_set():
        returned += await queue.reap()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
    return returned
