"""A consumer with explicit prefetch, ack policy and failure policy.

``prefetch`` is how many unacknowledged messages the broker may hand this
consumer at once. It is set before consuming, and 0 is refused: in AMQP it
means "unlimited", not "one", so a single consumer would take the whole queue
into memory. ``concurrency`` is how many of those run at once (by default all
of them: aio-pika starts a task per delivery). A prefetch above the
concurrency is a buffer: messages wait in the client, where a later urgent
message can no longer overtake them.

The ack policy decides the guarantee. Acking after the task (the default)
gives at-least-once: a consumer that dies mid-task leaves the message
unacknowledged and the broker delivers it again, so it may run twice. Acking
before the task gives at-most-once: a crash, or a task that raises, after the
ack loses the message.

What happens when a task raises is a policy too, :class:`OnFailure`:

- ``REJECT``, what ``async with message.process()`` does by default: reject
  without requeue. The message is gone, unless the queue has a dead-letter
  exchange, in which case the broker moves it to the dead-letter queue. It is
  never retried. Most code that uses ``process()`` expects otherwise.
- ``REQUEUE``: back to the queue at once; a task that always fails spins.
- ``DEAD_LETTER``: parked in the dead-letter queue with the reason.
- ``RETRY``: again after a growing delay, then parked with the reason and the
  attempt count (see :mod:`queuelab.rabbitmq.deadletter`).

A body that is not a valid envelope is never retried, whatever the policy: it
goes to the dead-letter queue at once with the reason, or, for a queue
without one, is rejected and recorded with the reason.

A task is an ``async`` function. A blocking function must not run on the
event loop: while it runs the connection's heartbeats stop, the broker closes
the connection as dead, and the message is delivered again. Wrap it with
:func:`in_thread`.

``stop()`` is graceful: it cancels the subscription so nothing new arrives,
gives the tasks in flight ``stop_timeout_s`` to finish, returns the messages
of those still running to the queue, and closes. After a dropped connection
or a broker restart the robust connection restores the channel, the queue and
the subscription, provided they are still alive; this object keeps them.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from enum import StrEnum
from typing import Any

from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aiormq.exceptions import AMQPError

from queuelab import envelope as codec
from queuelab.envelope import Envelope
from queuelab.errors import ConfigError, EnvelopeError
from queuelab.ledger import Event, Ledger
from queuelab.rabbitmq import deadletter
from queuelab.rabbitmq.connection import connect
from queuelab.rabbitmq.topology import Source, WorkQueue, as_work_queue
from queuelab.ratelimit import Limiter

log = logging.getLogger(__name__)

Task = Callable[[Envelope], Awaitable[None]]
SETTLE_ERRORS = (AMQPError, ConnectionError, RuntimeError)


class AckMode(StrEnum):
    BEFORE = "before"  # at-most-once
    AFTER = "after"  # at-least-once


class Settle(StrEnum):
    """How a delivery is settled with the broker."""

    ACK = "ack"
    REJECT = "reject"  # without requeue: dropped or dead-lettered by the broker
    REQUEUE = "requeue"


class OnFailure(StrEnum):
    """What the consumer does with a message whose task raised."""

    REJECT = "reject"
    REQUEUE = "requeue"
    DEAD_LETTER = "dead_letter"
    RETRY = "retry"


def in_thread(function: Callable[[Envelope], None]) -> Task:
    """A task that runs blocking ``function`` in a worker thread."""

    async def task(envelope: Envelope) -> None:
        await asyncio.to_thread(function, envelope)

    task.__name__ = getattr(function, "__name__", "task")
    return task


class Consumer:
    """Runs ``task`` for each message of a queue."""

    def __init__(
        self,
        url: str,
        queue: "str | Source",
        task: Task,
        *,
        prefetch: int = 1,
        concurrency: int | None = None,
        ack: AckMode = AckMode.AFTER,
        on_failure: OnFailure = OnFailure.REJECT,
        limiter: Limiter | None = None,
        ledger: Ledger | None = None,
        worker: str = "consumer",
        stop_timeout_s: float = 10.0,
    ) -> None:
        if prefetch < 1:
            raise ConfigError(
                f"prefetch must be >= 1, got {prefetch}: AMQP reads 0 as "
                "'unlimited', which hands one consumer the whole queue"
            )
        if concurrency is not None and not 1 <= concurrency <= prefetch:
            raise ConfigError(
                f"concurrency must be 1 to prefetch ({prefetch}), got {concurrency}"
            )
        self.source: Source = as_work_queue(queue) if isinstance(queue, str) else queue
        self.on_failure = OnFailure(on_failure)
        self._check_failure_policy()
        self.url = url
        self.task = task
        self.prefetch = prefetch
        self.concurrency = concurrency or prefetch
        self.ack = AckMode(ack)
        self.limiter = limiter
        self.ledger = ledger if ledger is not None else Ledger()
        self.worker = worker
        self.stop_timeout_s = stop_timeout_s
        # Strong references to everything robust reconnection must restore.
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._running = asyncio.Semaphore(self.concurrency)
        self._inflight: set[asyncio.Task[Any]] = set()
        self._stopping = False

    @property
    def queue_name(self) -> str:
        return self.source.name

    @property
    def _spec(self) -> WorkQueue | None:
        """The work queue with a dead-letter side, if this source has one."""
        source = self.source
        if isinstance(source, WorkQueue) and source.has_dead_letters:
            return source
        return None

    def _check_failure_policy(self) -> None:
        source, policy = self.source, self.on_failure
        if policy is OnFailure.RETRY and not (
            isinstance(source, WorkQueue) and source.backoff is not None
        ):
            raise ConfigError(
                f"on_failure=RETRY needs a WorkQueue with a backoff for "
                f"{source.name!r}: the delays live in its delay queues"
            )
        if policy is OnFailure.DEAD_LETTER and not (
            isinstance(source, WorkQueue) and source.has_dead_letters
        ):
            raise ConfigError(
                f"on_failure=DEAD_LETTER needs a WorkQueue with dead_letters=True "
                f"for {source.name!r}"
            )

    async def start(self) -> None:
        """Connect, set prefetch, declare the queue, and start consuming."""
        self._stopping = False
        self._connection = await connect(self.url)
        self._connection.reconnect_callbacks.add(self._on_reconnect)
        self._channel = await self._connection.channel(publisher_confirms=True)
        await self._channel.set_qos(prefetch_count=self.prefetch)
        self._queue = await self.source.declare(self._channel)
        self._tag = await self._queue.consume(self._on_message)
        log.info(
            "%s consuming %s (prefetch %d, ack %s, on failure %s)",
            self.worker,
            self.queue_name,
            self.prefetch,
            self.ack,
            self.on_failure,
        )

    async def stop(self, timeout_s: float | None = None) -> None:
        """Stop gracefully: no new messages, let tasks finish, return the rest."""
        timeout_s = self.stop_timeout_s if timeout_s is None else timeout_s
        self._stopping = True
        if self._queue is not None and self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except SETTLE_ERRORS as exc:
                log.warning(
                    "%s: cancel on %s failed: %r", self.worker, self.queue_name, exc
                )
            self._tag = None

        pending = set(self._inflight)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if pending:
            log.warning(
                "%s: %d task(s) on %s still running after %g s; their messages "
                "were returned to the queue",
                self.worker,
                len(pending),
                self.queue_name,
                timeout_s,
            )

        if self._connection is not None:
            await self._connection.close()
        self._connection = self._channel = self._queue = None
        log.info("%s stopped consuming %s", self.worker, self.queue_name)

    def _on_reconnect(self, connection: Any) -> None:
        log.info("%s reconnected; consuming %s again", self.worker, self.queue_name)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        current = asyncio.current_task()
        if current is not None:
            self._inflight.add(current)
        try:
            await self._handle(message)
        except asyncio.CancelledError:
            await self._give_back(message, "returned to the queue at stop")
            raise
        finally:
            if current is not None:
                self._inflight.discard(current)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        if self._stopping:
            await self._give_back(message, "arrived while stopping")
            return
        try:
            envelope = codec.decode(message.body)
        except EnvelopeError as exc:
            await self._malformed(message, str(exc))
            return

        spec = self._spec
        attempt = (
            deadletter.attempt_of(message, spec)
            if spec is not None
            else 1 + int(bool(message.redelivered))
        )
        self.ledger.record(
            Event.DELIVERED, envelope.id, worker=self.worker, attempt=attempt
        )
        async with self._running:
            if self._stopping:
                await self._give_back(message, "arrived while stopping")
                return
            await self._run(message, envelope, attempt)

    async def _run(
        self, message: AbstractIncomingMessage, envelope: Envelope, attempt: int
    ) -> None:
        slot: AbstractAsyncContextManager[None] = (
            self.limiter.slot() if self.limiter is not None else nullcontext()
        )
        try:
            async with slot:
                if self.ack is AckMode.BEFORE:
                    await self._settle(
                        message, envelope.id, attempt, Settle.ACK, Event.ACKED
                    )
                await self.task(envelope)
        except Exception as exc:
            log.warning(
                "%s: task failed for message %s on %s (attempt %d): %r",
                self.worker,
                envelope.id,
                self.queue_name,
                attempt,
                exc,
            )
            log.debug("task traceback", exc_info=True)
            if self.ack is AckMode.AFTER:
                await self._failed(message, envelope, attempt, exc)
            else:
                log.warning(
                    "%s: message %s was acked before its task: it is lost",
                    self.worker,
                    envelope.id,
                )
            return

        self.ledger.record(
            Event.PROCESSED, envelope.id, worker=self.worker, attempt=attempt
        )
        if self.ack is AckMode.AFTER:
            await self._settle(message, envelope.id, attempt, Settle.ACK, Event.ACKED)

    async def _failed(
        self,
        message: AbstractIncomingMessage,
        envelope: Envelope,
        attempt: int,
        exc: Exception,
    ) -> None:
        reason = f"task failed: {exc!r}"
        policy, spec = self.on_failure, self._spec
        if policy is OnFailure.REJECT:
            # The broker dead-letters it if the queue has a DLX; else it is gone.
            event = Event.DEAD_LETTERED if spec else Event.NACKED
            detail = f"rejected without requeue: {exc!r}"
            await self._settle(
                message, envelope.id, attempt, Settle.REJECT, event, detail
            )
        elif policy is OnFailure.REQUEUE:
            detail = f"requeued: {exc!r}"
            await self._settle(
                message, envelope.id, attempt, Settle.REQUEUE, Event.NACKED, detail
            )
        elif spec is not None and policy is OnFailure.RETRY and spec.backoff:
            if attempt < spec.backoff.attempts:
                await self._retry(message, envelope, attempt, spec, reason)
            else:
                reason = f"failed {attempt} attempts, last: {exc!r}"
                await self._park(message, envelope.id, attempt, spec, reason)
        elif spec is not None:
            await self._park(message, envelope.id, attempt, spec, reason)

    async def _retry(
        self,
        message: AbstractIncomingMessage,
        envelope: Envelope,
        attempt: int,
        spec: WorkQueue,
        reason: str,
    ) -> None:
        assert self._channel is not None
        assert spec.backoff is not None
        delay_s = spec.backoff.delays_s()[attempt - 1]
        try:
            await deadletter.retry_later(self._channel, message, spec, attempt, reason)
        except SETTLE_ERRORS as exc:
            log.warning("%s: could not schedule a retry: %r", self.worker, exc)
            return  # unacked: the broker delivers it again
        # Acked: its copy now waits in the delay queue.
        detail = f"retry {attempt} in {delay_s:g} s: {reason}"
        await self._settle(
            message, envelope.id, attempt, Settle.ACK, Event.NACKED, detail
        )

    async def _park(
        self,
        message: AbstractIncomingMessage,
        message_id: str,
        attempt: int,
        spec: WorkQueue,
        reason: str,
    ) -> None:
        assert self._channel is not None
        try:
            await deadletter.park(self._channel, message, spec, reason, attempt)
        except SETTLE_ERRORS as exc:
            log.warning("%s: could not park a message: %r", self.worker, exc)
            return
        log.warning(
            "%s: message %s parked in %s: %s", self.worker, message_id, spec.dlq, reason
        )
        await self._settle(
            message, message_id, attempt, Settle.ACK, Event.DEAD_LETTERED, reason
        )

    async def _malformed(self, message: AbstractIncomingMessage, error: str) -> None:
        message_id = message.message_id or ""
        reason = f"malformed: {error}"
        spec = self._spec
        if spec is not None:
            await self._park(message, message_id, 1, spec, reason)
            return
        log.warning(
            "%s rejected malformed message %s on %s: %s",
            self.worker,
            message_id,
            self.queue_name,
            error,
        )
        await self._settle(message, message_id, 1, Settle.REJECT, Event.NACKED, reason)

    async def _settle(
        self,
        message: AbstractIncomingMessage,
        message_id: str,
        attempt: int,
        how: Settle,
        event: Event,
        detail: str = "",
    ) -> None:
        """Settle ``message`` with the broker and record ``event``.

        If the connection went away first, the broker has already put the
        message back and will deliver it again: that is only logged.
        """
        try:
            if how is Settle.ACK:
                await message.ack()
            else:
                await message.reject(requeue=how is Settle.REQUEUE)
        except SETTLE_ERRORS as exc:
            log.warning(
                "%s: could not settle message %s on %s (%r); the broker will "
                "deliver it again",
                self.worker,
                message_id,
                self.queue_name,
                exc,
            )
            return
        self.ledger.record(
            event, message_id, worker=self.worker, attempt=attempt, detail=detail
        )

    async def _give_back(self, message: AbstractIncomingMessage, detail: str) -> None:
        if message.processed:
            return
        try:
            await message.nack(requeue=True)
        except SETTLE_ERRORS:
            return  # the channel is gone: the broker requeues it anyway
        self.ledger.record(
            Event.NACKED, message.message_id or "", worker=self.worker, detail=detail
        )
