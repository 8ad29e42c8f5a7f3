"""The persistent producer: durable queue, persistent messages, confirms.

A message survives a broker restart only if three things hold: the queue is
durable, the message is persistent (delivery mode 2), and the producer waits
for the broker's publisher confirm before it counts the message as sent. The
commonly written producer does all three but awaits each confirm before
sending the next message: one network round trip per message. A confirm
window keeps up to ``window`` publishes in flight and is several times faster
for the same guarantee. ``window=1`` (or :meth:`Producer.publish` in a loop)
is the one-at-a-time behaviour.

Nothing is dropped silently. A publish the broker nacks, or returns as
unroutable (``mandatory``), raises ``PublishError``; :meth:`publish_many`
carries on, records each such message as nacked in the ledger, and raises
one ``PublishError`` naming them at the end.

A dropped connection is the subtle case. The robust connection reconnects
and restores the channel, but a publish that was waiting for its confirm
fails, and the producer cannot know whether the broker took it. It sends it
again (at-least-once publishing), and the ledger records each send as a
``published`` event with its send number. If the first copy had in fact
arrived, the message is now queued twice and the checker reports it as
duplicated: the price of never losing a confirmed-or-retried message.
"""

import asyncio
import logging
from collections.abc import Callable, Iterable
from types import TracebackType

import aio_pika
from aio_pika.abc import (
    AbstractExchange,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import DeliveryError
from aio_pika.exceptions import PublishError as ReturnedError
from aiormq.exceptions import AMQPConnectionError, ChannelInvalidStateError
from tenacity import (
    AsyncRetrying,
    Future,
    RetryError,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from queuelab import envelope as codec
from queuelab.envelope import Envelope
from queuelab.errors import ConfigError, PublishError
from queuelab.ledger import Event, Ledger
from queuelab.rabbitmq.connection import connect
from queuelab.rabbitmq.topology import Destination, as_work_queue

log = logging.getLogger(__name__)

# What a publish raises when the connection or its channel went away under it.
CONNECTION_LOST = (
    AMQPConnectionError,
    ChannelInvalidStateError,
    ConnectionError,
)
WORKER = "producer"


class Producer:
    """Publishes envelopes to one destination and waits for confirms.

    ``destination`` is a queue name, a :class:`~queuelab.rabbitmq.topology.
    WorkQueue`, or any other destination such as a fanout exchange.
    """

    def __init__(
        self,
        url: str,
        destination: "str | Destination",
        *,
        ledger: Ledger | None = None,
        window: int = 1,
        confirm_timeout_s: float = 30.0,
        reconnect_timeout_s: float = 60.0,
    ) -> None:
        if window < 1:
            raise ConfigError(f"confirm window must be >= 1, got {window}")
        if isinstance(destination, str):
            destination = as_work_queue(destination)
        self.url = url
        self.destination = destination
        self.ledger = ledger if ledger is not None else Ledger()
        self.window = window
        self.confirm_timeout_s = confirm_timeout_s
        self.reconnect_timeout_s = reconnect_timeout_s
        # Strong references: the robust connection keeps its channels only
        # weakly, and restores only what is still alive after a reconnect.
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._exchange: AbstractExchange | None = None

    @property
    def queue(self) -> str:
        return self.destination.label

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
        self._exchange = await self.destination.declare_exchange(self._channel)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
            self._channel = None
            self._exchange = None

    async def publish(self, envelope: Envelope, *, priority: int | None = None) -> None:
        """Publish one message and wait until the broker confirms it.

        Sends it again after a dropped connection, for up to
        ``reconnect_timeout_s``; raises ``PublishError`` if the broker nacks
        or returns it, or if no connection comes back in time.
        """
        self._require_channel()
        message = aio_pika.Message(
            codec.encode(envelope),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=envelope.id,
            content_type="application/json",
            priority=priority,
        )
        try:
            await self._send(envelope, message, 1)
        except CONNECTION_LOST as exc:
            self._log_resend(envelope, exc)
            await self._send_again(envelope, message)
        self.ledger.record(Event.CONFIRMED, envelope.id, worker=WORKER)

    async def _send_again(self, envelope: Envelope, message: aio_pika.Message) -> None:
        """Wait for the connection to come back and send, until confirmed."""
        channel = self._require_channel()
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(CONNECTION_LOST),
            wait=wait_exponential(multiplier=0.1, max=2.0),
            stop=stop_after_delay(self.reconnect_timeout_s),
            before_sleep=lambda state: self._log_resend(envelope, state.outcome),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await asyncio.wait_for(channel.ready(), self.reconnect_timeout_s)
                    send = attempt.retry_state.attempt_number + 1
                    await self._send(envelope, message, send)
        except (RetryError, TimeoutError) as exc:
            self.ledger.record(
                Event.NACKED, envelope.id, worker=WORKER, detail="unconfirmed"
            )
            raise PublishError(
                f"message {envelope.id} for {self.queue!r} is unconfirmed: the "
                f"connection did not come back within {self.reconnect_timeout_s:g} "
                f"s ({exc!r})"
            ) from None

    async def publish_many(
        self,
        envelopes: Iterable[Envelope],
        *,
        priority: Callable[[Envelope], int] | None = None,
    ) -> int:
        """Publish with up to ``window`` confirms outstanding; returns the count.

        Every message is attempted; those the broker would not take are
        recorded as nacked and named in one ``PublishError`` at the end.
        """
        slots = asyncio.Semaphore(self.window)
        failed: list[str] = []
        sent = 0

        async def one(envelope: Envelope) -> None:
            try:
                await self.publish(
                    envelope, priority=priority(envelope) if priority else None
                )
            except PublishError as exc:
                failed.append(envelope.id)
                log.warning("%s", exc)
            finally:
                slots.release()

        async with asyncio.TaskGroup() as group:
            for envelope in envelopes:
                await slots.acquire()
                group.create_task(one(envelope))
                sent += 1
        if failed:
            raise PublishError(
                f"{len(failed)} of {sent} messages for {self.queue!r} were not "
                f"taken by the broker (first: {', '.join(failed[:3])}); the "
                f"ledger records each as nacked"
            )
        return sent

    async def _send(
        self, envelope: Envelope, message: aio_pika.Message, send: int
    ) -> None:
        exchange = self._exchange
        assert exchange is not None
        detail = "" if send == 1 else "sent again after a lost connection"
        self.ledger.record(
            Event.PUBLISHED, envelope.id, worker=WORKER, attempt=send, detail=detail
        )
        try:
            await exchange.publish(
                message,
                routing_key=self.destination.routing_key,
                timeout=self.confirm_timeout_s,
            )
        except ReturnedError:
            self._record_refusal(envelope, "returned unroutable")
            raise PublishError(
                f"message {envelope.id} returned unroutable: nothing is bound "
                f"to receive it at {self.queue!r}"
            ) from None
        except DeliveryError:
            self._record_refusal(envelope, "nacked by the broker")
            raise PublishError(
                f"broker nacked message {envelope.id} for {self.queue!r}"
            ) from None
        except TimeoutError:
            self._record_refusal(envelope, "no confirm in time")
            raise PublishError(
                f"no confirm for message {envelope.id} on {self.queue!r} within "
                f"{self.confirm_timeout_s:g} s; it may or may not be queued"
            ) from None

    def _record_refusal(self, envelope: Envelope, detail: str) -> None:
        self.ledger.record(Event.NACKED, envelope.id, worker=WORKER, detail=detail)

    def _log_resend(self, envelope: Envelope, cause: object) -> None:
        if isinstance(cause, Future):
            cause = cause.exception()
        log.warning(
            "message %s for %s unconfirmed (%s); sending it again once the "
            "connection is back",
            envelope.id,
            self.queue,
            type(cause).__name__,
        )

    def _require_channel(self) -> AbstractRobustChannel:
        if self._channel is None:
            raise ConfigError("producer is not connected: use 'async with Producer'")
        return self._channel
