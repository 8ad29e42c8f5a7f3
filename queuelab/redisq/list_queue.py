"""A Redis LIST as a task queue, as the seed writes it: LPUSH to add, BRPOP to take.

The producer pushes on the left and each consumer blocks on the right, so the
list is FIFO and one pop hands a task to exactly one consumer. It is fast and
simple, and it is at-most-once: BRPOP removes the task from Redis the moment it
is handed over, so a consumer that dies mid-task takes the task with it, and a
task that raises is dropped. Redis with no persistence also loses every queued
task on restart. ``reliable_queue.py`` keeps the list and fixes the first two.

The seed's version blocks with the client's ordinary connection and its socket
timeout, and ``timeout=0`` means "forever". Here the pop blocks on a connection
of its own in slices shorter than the socket timeout (see ``blocking.py``), and
``timeout_s=None`` means forever, so a long wait returns empty instead of
raising, and a cancelled pop leaves the client usable at once.

A popped item that is not a valid envelope is pushed to ``<name>:dead`` with
the reason beside it, so a poison message is kept for inspection and never
retried in a loop.
"""

import logging

import redis.asyncio

from queuelab import envelope as codec
from queuelab.envelope import Envelope
from queuelab.errors import EnvelopeError
from queuelab.redisq.blocking import BlockingConnection
from queuelab.redisq.consumer import Outcome, RedisQueue, dead_record

log = logging.getLogger(__name__)


class ListQueue(RedisQueue):
    """The seed's LPUSH/BRPOP queue over one Redis key (at-most-once)."""

    async def push(self, envelope: Envelope) -> None:
        await self.client.lpush(self.name, codec.encode(envelope))

    async def pop(self, timeout_s: float | None = 1.0) -> Envelope | None:
        """The oldest task, waiting up to ``timeout_s`` (None: forever)."""
        if self._blocking is None:
            self._blocking = BlockingConnection(self.client)
        result = await self._blocking.wait(self._brpop, timeout_s)
        if result is None:
            return None
        try:
            return codec.decode(result)
        except EnvelopeError as exc:
            await self.client.lpush(self.dead_name, dead_record(result, str(exc)))
            log.warning("dead-lettered malformed item from %s: %s", self.name, exc)
            raise

    async def _brpop(
        self, client: "redis.asyncio.Redis", block_s: float
    ) -> bytes | None:
        result = await client.brpop([self.name], timeout=block_s)
        if result is None:
            return None
        raw = result[1]
        return raw if isinstance(raw, bytes) else raw.encode()

    async def done(self, envelope: Envelope) -> bool:
        """Nothing to do: BRPOP already removed the task. Returns False."""
        return False

    async def failed(self, envelope: Envelope, reason: str) -> Outcome:
        """The task is already gone from Redis; it is not retried."""
        log.warning("message %s from %s dropped: %s", envelope.id, self.name, reason)
        return Outcome.DROPPED

    async def length(self) -> int:
        return int(await self.client.llen(self.name))
