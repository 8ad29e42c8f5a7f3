"""The persistent producer: durable queue, persistent messages, confirms.

A message survives a broker restart only if three things hold: the queue is
durable, the message is persistent (delivery mode 2), and the producer waits
for the broker's publisher confirm before it counts the message as sent. The
seed's producer does all three but awaits each confirm before sending the
next message: one network round trip per message. A confirm window keeps up
to ``window`` publishes in flight and is several times faster for the same
guarantee. ``window=1`` is the seed's behaviour.

A publish the broker nacks, or returns as unroutable (``mandatory``), raises
``PublishError``: nothing is dropped silently.
"""

import asyncio
import logging
from collections.abc import Iterable
from types import TracebackType

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aio_pika.exceptions import DeliveryError
from aio_pika.exceptions import PublishError as ReturnedError

from queuelab import envelope as codec
from queuelab.envelope import Envelope
from queuelab.errors import ConfigError, PublishError
from queuelab.ledger import Event, Ledger
from queuelab.rabbitmq.connection import connect
from queuelab.rabbitmq.topology import declare_work_queue

log = logging.getLogger(__name__)


class Producer:
    """Publishes envelopes to one durable queue and waits for confirms."""

    def __init__(
        self,
        url: str,
        queue: str,
        *,
        ledger: Ledger | None = None,
        window: int = 1,
        confirm_timeout_s: float = 30.0,
    ) -> None:
        if window < 1:
            raise ConfigError(f"confirm window must be >= 1, got {window}")
        self.url = url
        self.queue = queue
        self.ledger = ledger if ledger is not None else Ledger()
        self.window = window
        self.confirm_timeout_s = confirm_timeout_s
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None

    async def __aenter__(self) -> "Producer":
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        self._connection = await connect(self.url)
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        await declare_work_queue(self._channel, self.queue)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def publish(self, envelope: Envelope) -> None:
        """Publish one message and wait until the broker confirms it."""
        channel = self._require_channel()
        message = aio_pika.Message(
            codec.encode(envelope),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=envelope.id,
            content_type="application/json",
        )
        self.ledger.record(Event.PUBLISHED, envelope.id, worker="producer")
        try:
            await channel.default_exchange.publish(
                message, routing_key=self.queue, timeout=self.confirm_timeout_s
            )
        except ReturnedError:
            raise PublishError(
                f"message {envelope.id} returned unroutable: no queue "
                f"{self.queue!r} is bound"
            ) from None
        except DeliveryError:
            raise PublishError(
                f"broker nacked message {envelope.id} for queue {self.queue!r}"
            ) from None
        self.ledger.record(Event.CONFIRMED, envelope.id, worker="producer")

    async def publish_many(self, envelopes: Iterable[Envelope]) -> int:
        """Publish with up to ``window`` confirms outstanding; returns the count."""
        slots = asyncio.Semaphore(self.window)
        sent = 0

        async def one(envelope: Envelope) -> None:
            try:
                await self.publish(envelope)
            finally:
                slots.release()

        async with asyncio.TaskGroup() as group:
            for envelope in envelopes:
                await slots.acquire()
                group.create_task(one(envelope))
                sent += 1
        return sent

    def _require_channel(self) -> AbstractChannel:
        if self._channel is None:
            raise ConfigError("producer is not connected: use 'async with Producer'")
        return self._channel
