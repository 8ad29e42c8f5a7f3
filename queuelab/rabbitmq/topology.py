"""Declaring the queues and exchanges the patterns use, and reading depths.

A work queue is durable (its definition survives a broker restart); the
messages in it survive too only if they are published persistent. Everything
a queue needs is said once, in a :class:`WorkQueue`, and both ends declare it
the same way: RabbitMQ refuses a second declaration whose arguments differ
(``PRECONDITION_FAILED``), so a producer that declares ``tasks`` plainly and a
consumer that declares it with a dead-letter exchange cannot both run.

A work queue can carry three extras:

- ``max_priority``: the ``x-max-priority`` argument, which makes RabbitMQ
  hand out higher-priority messages first among those still waiting in it;
- ``dead_letters``: a dead-letter exchange ``<name>.dlx`` and queue
  ``<name>.dlq``, where rejected and parked messages go instead of vanishing;
- ``backoff``: one delay queue per retry, ``<name>.retry.<n>``, each with its
  own TTL, whose expired messages are dead-lettered back into the work queue.
  One queue per delay, not one queue with a per-message TTL: RabbitMQ only
  expires messages at the head of a queue, so a 4 s message at the head would
  hold back a 1 s message behind it.

Reading the depth asks the broker itself (a passive declare on a fresh AMQP
channel, never a cached client object), which is how tests cross-check the
ledger.
"""

from dataclasses import dataclass
from typing import Any, Protocol

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from queuelab.errors import ConfigError

MAX_PRIORITY_LIMIT = 255  # RabbitMQ's own ceiling; 1-10 is the advice


class Source(Protocol):
    """A queue a consumer reads from, which it declares before consuming."""

    @property
    def name(self) -> str: ...

    @property
    def has_dead_letters(self) -> bool: ...

    async def declare(self, channel: AbstractChannel) -> AbstractQueue: ...


class Destination(Protocol):
    """Where a producer publishes: an exchange and a routing key."""

    @property
    def label(self) -> str: ...

    @property
    def routing_key(self) -> str: ...

    async def declare_exchange(self, channel: AbstractChannel) -> AbstractExchange: ...


@dataclass(frozen=True)
class Backoff:
    """Retry delays that grow by ``factor``: 0.5 s, 1 s, 2 s, ... by default.

    ``attempts`` counts every delivery, the first included, so ``attempts=4``
    means three retries and three delay queues.
    """

    attempts: int = 4
    first_delay_s: float = 0.5
    factor: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError(f"attempts must be >= 1, got {self.attempts}")
        if self.first_delay_s <= 0 or self.factor < 1:
            raise ConfigError(
                f"backoff needs first_delay_s > 0 and factor >= 1, got "
                f"{self.first_delay_s} and {self.factor}"
            )

    def delays_s(self) -> list[float]:
        """The delay before each retry: one value per retry."""
        return [self.first_delay_s * self.factor**i for i in range(self.attempts - 1)]


@dataclass(frozen=True)
class WorkQueue:
    """A durable queue and whatever it needs; both ends declare it alike."""

    name: str
    max_priority: int | None = None
    dead_letters: bool = False
    backoff: Backoff | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("a work queue needs a name")
        if self.max_priority is not None and not (
            1 <= self.max_priority <= MAX_PRIORITY_LIMIT
        ):
            raise ConfigError(
                f"max_priority must be 1 to {MAX_PRIORITY_LIMIT}, got "
                f"{self.max_priority}"
            )

    @property
    def label(self) -> str:
        return self.name

    @property
    def routing_key(self) -> str:
        return self.name

    @property
    def has_dead_letters(self) -> bool:
        """Retries imply a dead-letter queue: it holds what exhausts them."""
        return self.dead_letters or self.backoff is not None

    @property
    def dlx(self) -> str:
        return f"{self.name}.dlx"

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"

    def delay_queue(self, retry: int) -> str:
        """The queue that holds a message before its ``retry``-th retry."""
        return f"{self.name}.retry.{retry}"

    def delay_queues(self) -> list[str]:
        delays = self.backoff.delays_s() if self.backoff else []
        return [self.delay_queue(i + 1) for i in range(len(delays))]

    def arguments(self) -> dict[str, Any]:
        """The ``x-`` arguments of the work queue itself."""
        arguments: dict[str, Any] = {}
        if self.max_priority is not None:
            arguments["x-max-priority"] = self.max_priority
        if self.has_dead_letters:
            arguments["x-dead-letter-exchange"] = self.dlx
            arguments["x-dead-letter-routing-key"] = self.name
        return arguments

    async def declare(self, channel: AbstractChannel) -> AbstractQueue:
        """Declare the dead-letter side, the delay queues, then the queue."""
        if self.has_dead_letters:
            exchange = await channel.declare_exchange(
                self.dlx, ExchangeType.DIRECT, durable=True
            )
            dlq = await channel.declare_queue(self.dlq, durable=True)
            await dlq.bind(exchange, routing_key=self.name)
        delays = self.backoff.delays_s() if self.backoff else []
        for name, delay_s in zip(self.delay_queues(), delays, strict=True):
            await channel.declare_queue(
                name,
                durable=True,
                arguments={
                    "x-message-ttl": round(delay_s * 1000),
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": self.name,
                },
            )
        return await channel.declare_queue(
            self.name, durable=True, arguments=self.arguments() or None
        )

    async def declare_exchange(self, channel: AbstractChannel) -> AbstractExchange:
        """Declare the queue; publish to it through the default exchange."""
        await self.declare(channel)
        return channel.default_exchange

    def all_queues(self) -> list[str]:
        """Every queue this spec declares."""
        extra = [self.dlq] if self.has_dead_letters else []
        return [self.name, *extra, *self.delay_queues()]

    async def delete(self, channel: AbstractChannel) -> None:
        """Delete every queue and exchange this spec declares."""
        for name in self.all_queues():
            await channel.queue_delete(name)
        if self.has_dead_letters:
            await channel.exchange_delete(self.dlx)


def as_work_queue(queue: "str | WorkQueue") -> WorkQueue:
    """A plain name means a plain durable queue."""
    return queue if isinstance(queue, WorkQueue) else WorkQueue(queue)


async def declare_work_queue(
    channel: AbstractChannel, queue: "str | WorkQueue"
) -> AbstractQueue:
    """The durable queue ``queue`` (created if missing), with its extras."""
    return await as_work_queue(queue).declare(channel)


async def queue_depth(channel: AbstractChannel, name: str) -> int:
    """Messages ready in ``name`` according to the broker (not the client).

    The passive declare goes through the underlying AMQP channel: a robust
    aio-pika channel would answer a passive declare of a queue it declared
    itself from its cache, with the count from that first declaration.
    """
    underlay = await channel.get_underlay_channel()
    result = await underlay.queue_declare(name, passive=True)
    return int(result.message_count or 0)
