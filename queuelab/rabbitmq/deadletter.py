"""Dead letters and retries with backoff, on RabbitMQ's own machinery.

A dead-letter queue (DLQ) is where a message goes when it will not be
processed: it is kept, with the reason, for a person to inspect, instead of
vanishing or looping. RabbitMQ dead-letters a message from a queue that has a
dead-letter exchange (DLX) when a consumer rejects it without requeue, when
its TTL expires, or when the queue overflows, and stamps an ``x-death`` header
that counts each of these events per queue and reason.

Retry with exponential backoff uses the same machinery. A failed message is
published to a delay queue, ``<queue>.retry.<n>``, whose TTL is the n-th
delay and whose own DLX is the default exchange with the work queue as
routing key: when the delay is over, the broker moves the message back into
the work queue. Nothing in the consumer sleeps, and a consumer crash during
the wait loses nothing. The attempt number is read from ``x-death`` (one
"expired" event per delay queue passed), so it survives restarts and is the
broker's count, not the consumer's memory. After the last attempt the message
is parked in the DLQ with the reason and the attempt count in its headers.

What goes wrong in the commonly written version: ``async with
message.process()`` rejects a message whose task raised *without* requeue, so
the message is dropped, or dead-lettered if the queue happens to have a DLX;
it is never retried. Requeueing instead (``nack(requeue=True)``) puts it back
at the head of the queue at once, so a task that always fails spins forever.
A body that cannot be decoded must never be retried at all: it goes to the
DLQ at once.

Moving a message (publish a copy, then ack the original) is at-least-once: a
consumer that dies between the two leaves the original to be delivered again,
so a retry can be scheduled twice. The copy keeps the message id, so the
ledger shows it.
"""

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from queuelab.rabbitmq.topology import Backoff, WorkQueue, queue_depth

log = logging.getLogger(__name__)

REASON_HEADER = "x-queuelab-reason"
ATTEMPTS_HEADER = "x-queuelab-attempts"
QUEUE_HEADER = "x-queuelab-queue"
REQUEUE_POLLS = 200  # 10 ms apart


async def declare_dead_letter(
    channel: AbstractChannel, queue: str, *, backoff: Backoff | None = None
) -> tuple[AbstractQueue, AbstractQueue]:
    """Declare ``queue`` with its DLX and DLQ (and delay queues for ``backoff``).

    Returns the work queue and the dead-letter queue.
    """
    spec = WorkQueue(queue, dead_letters=True, backoff=backoff)
    work = await spec.declare(channel)
    dlq = await channel.declare_queue(spec.dlq, durable=True)
    return work, dlq


def retries_done(message: AbstractIncomingMessage, spec: WorkQueue) -> int:
    """How many delay queues this message has passed through, from ``x-death``."""
    delay_queues = set(spec.delay_queues())
    total = 0
    for death in _x_death(message):
        expired = _text(death.get("reason")) == "expired"
        if expired and _text(death.get("queue")) in delay_queues:
            total += int(death.get("count") or 0)
    return total


def attempt_of(message: AbstractIncomingMessage, spec: WorkQueue) -> int:
    """The number of this delivery, from 1: retries done, plus a redelivery.

    A classic queue only says *whether* a message was delivered before (the
    ``redelivered`` flag), not how often, so a message redelivered twice after
    consumer crashes counts once.
    """
    # TODO: classic queues do not count redeliveries; a quorum queue's
    # x-delivery-count header would give the exact number.
    return 1 + retries_done(message, spec) + (1 if message.redelivered else 0)


async def retry_later(
    channel: AbstractChannel,
    message: AbstractIncomingMessage,
    spec: WorkQueue,
    retry: int,
    reason: str,
) -> str:
    """Publish a copy to the ``retry``-th delay queue; returns its name.

    The caller acks the original once this returns (the publish is confirmed
    when ``channel`` has publisher confirms).
    """
    delay_queue = spec.delay_queue(retry)
    headers = {REASON_HEADER: reason[:500], ATTEMPTS_HEADER: retry}
    await channel.default_exchange.publish(
        _copy(message, headers), routing_key=delay_queue
    )
    return delay_queue


async def park(
    channel: AbstractChannel,
    message: AbstractIncomingMessage,
    spec: WorkQueue,
    reason: str,
    attempts: int,
) -> None:
    """Publish a copy to the dead-letter queue with the reason and attempts."""
    headers = {
        REASON_HEADER: reason[:500],
        ATTEMPTS_HEADER: attempts,
        QUEUE_HEADER: spec.name,
    }
    await channel.default_exchange.publish(
        _copy(message, headers), routing_key=spec.dlq
    )


@dataclass(frozen=True)
class DeadLetter:
    """One message found in a dead-letter queue."""

    message_id: str
    reason: str
    attempts: int
    body: bytes
    x_death: list[dict[str, Any]]

    def as_row(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "reason": self.reason,
            "attempts": self.attempts,
            "body_bytes": len(self.body),
            "broker_deaths": sum(int(d.get("count") or 0) for d in self.x_death),
        }


async def read_dead_letters(
    channel: AbstractChannel, spec: WorkQueue, *, remove: bool = False
) -> list[DeadLetter]:
    """Every message now in ``spec``'s DLQ, oldest first.

    Without ``remove`` they are returned to the DLQ (in the same order) when
    the channel closes; with it, they are acked and gone.
    """
    queue = await channel.declare_queue(spec.dlq, durable=True)
    letters: list[DeadLetter] = []
    held: list[AbstractIncomingMessage] = []
    while (message := await queue.get(fail=False, timeout=5)) is not None:
        held.append(message)
        headers = message.headers or {}
        reason = _text(headers.get(REASON_HEADER)) or _broker_reason(message)
        attempts = headers.get(ATTEMPTS_HEADER)
        letters.append(
            DeadLetter(
                message_id=message.message_id or "",
                reason=reason,
                attempts=int(attempts) if isinstance(attempts, int) else 0,
                body=message.body,
                x_death=_x_death(message),
            )
        )
    for message in held:
        if remove:
            await message.ack()
        else:
            await message.nack(requeue=True)
    if held and not remove:
        await _until_requeued(channel, spec.dlq, len(held))
    return letters


async def _until_requeued(channel: AbstractChannel, queue: str, count: int) -> None:
    """A nack is not answered: wait until the broker shows the messages back."""
    for _ in range(REQUEUE_POLLS):
        if await queue_depth(channel, queue) >= count:
            return
        await asyncio.sleep(0.01)
    log.warning("%d message(s) read from %s are not back in it yet", count, queue)


def _copy(
    message: AbstractIncomingMessage, extra_headers: dict[str, Any]
) -> aio_pika.Message:
    """The same message (body, id, headers incl. ``x-death``), made persistent."""
    headers = dict(message.headers or {})
    headers.update(extra_headers)
    return aio_pika.Message(
        message.body,
        headers=headers,
        message_id=message.message_id,
        content_type=message.content_type,
        priority=message.priority,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def _x_death(message: AbstractIncomingMessage) -> list[dict[str, Any]]:
    deaths = (message.headers or {}).get("x-death")
    if not isinstance(deaths, list):
        return []
    return [d for d in deaths if isinstance(d, dict)]


def _broker_reason(message: AbstractIncomingMessage) -> str:
    """The newest ``x-death`` reason, for messages the broker dead-lettered."""
    deaths = _x_death(message)
    if not deaths:
        return "unknown"
    reason, queue = _text(deaths[0].get("reason")), _text(deaths[0].get("queue"))
    return f"{reason} by the broker from {queue}"


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)
