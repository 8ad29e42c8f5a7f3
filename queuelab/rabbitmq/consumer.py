"""A consumer with explicit prefetch and an explicit ack policy.

``prefetch`` is how many unacknowledged messages the broker may hand this
consumer at once. It must be set before consuming, and 0 is refused: in AMQP
it means "unlimited", not "one", so a single consumer would take the whole
queue into memory.

The ack policy decides the guarantee. Acking after the task (the default)
gives at-least-once: a consumer that dies mid-task leaves the message
unacknowledged and the broker delivers it again, so it may run twice. Acking
before the task gives at-most-once: a crash after the ack loses the message.

A message whose bytes are not a valid envelope is rejected without requeue
and recorded with the reason, so it can never loop.
"""

import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum

from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from queuelab import envelope as codec
from queuelab.envelope import Envelope
from queuelab.errors import ConfigError, EnvelopeError
from queuelab.ledger import Event, Ledger
from queuelab.rabbitmq.connection import connect
from queuelab.rabbitmq.topology import declare_work_queue

log = logging.getLogger(__name__)

Task = Callable[[Envelope], Awaitable[None]]


class AckMode(StrEnum):
    BEFORE = "before"  # at-most-once
    AFTER = "after"  # at-least-once


class Consumer:
    """Runs ``task`` for each message of a durable queue."""

    def __init__(
        self,
        url: str,
        queue: str,
        task: Task,
        *,
        prefetch: int = 1,
        ack: AckMode = AckMode.AFTER,
        ledger: Ledger | None = None,
        worker: str = "consumer",
    ) -> None:
        if prefetch < 1:
            raise ConfigError(
                f"prefetch must be >= 1, got {prefetch}: AMQP reads 0 as "
                "'unlimited', which hands one consumer the whole queue"
            )
        self.url = url
        self.queue_name = queue
        self.task = task
        self.prefetch = prefetch
        self.ack = AckMode(ack)
        self.ledger = ledger if ledger is not None else Ledger()
        self.worker = worker
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None

    async def start(self) -> None:
        """Connect, set prefetch, and start consuming."""
        self._connection = await connect(self.url)
        self._channel = await self._connection.channel()
        await self._channel.set_qos(prefetch_count=self.prefetch)
        self._queue = await declare_work_queue(self._channel, self.queue_name)
        self._tag = await self._queue.consume(self._on_message)
        log.info(
            "%s consuming %s (prefetch %d)", self.worker, self.queue_name, self.prefetch
        )

    async def stop(self) -> None:
        """Stop consuming and close; unacked messages go back to the queue."""
        if self._queue is not None and self._tag is not None:
            await self._queue.cancel(self._tag)
            self._tag = None
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            envelope = codec.decode(message.body)
        except EnvelopeError as exc:
            await message.reject(requeue=False)
            self.ledger.record(
                Event.NACKED,
                message.message_id or "",
                worker=self.worker,
                detail=f"malformed: {exc}",
            )
            log.warning(
                "%s rejected malformed message on %s: %s",
                self.worker,
                self.queue_name,
                exc,
            )
            return

        attempt = 2 if message.redelivered else 1
        record = self.ledger.record
        record(Event.DELIVERED, envelope.id, worker=self.worker, attempt=attempt)
        if self.ack is AckMode.BEFORE:
            await message.ack()
            record(Event.ACKED, envelope.id, worker=self.worker, attempt=attempt)

        try:
            await self.task(envelope)
        except Exception as exc:
            log.warning(
                "%s: task failed for message %s on %s: %s",
                self.worker,
                envelope.id,
                self.queue_name,
                exc,
            )
            log.debug("task traceback", exc_info=True)
            if self.ack is AckMode.AFTER:
                await message.reject(requeue=False)
                record(
                    Event.NACKED,
                    envelope.id,
                    worker=self.worker,
                    attempt=attempt,
                    detail=repr(exc),
                )
            return

        record(Event.PROCESSED, envelope.id, worker=self.worker, attempt=attempt)
        if self.ack is AckMode.AFTER:
            await message.ack()
            record(Event.ACKED, envelope.id, worker=self.worker, attempt=attempt)
