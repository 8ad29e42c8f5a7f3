"""Fanout pub/sub: every subscriber gets its own copy of every message.

A fanout exchange ignores routing keys and copies each message to every
queue bound to it. Publish/subscribe on RabbitMQ is therefore one exchange
plus one queue per subscriber, and what a subscriber misses while it is away
depends only on that queue:

- a durable queue with a stable name stays bound while its subscriber is
  gone and keeps collecting messages (persistent ones survive a broker
  restart too); the subscriber reads them when it comes back;
- an exclusive queue belongs to the subscriber's connection and is deleted
  with it, so whatever is published while the subscriber is away goes
  nowhere. That is fine for live updates and wrong for anything that must
  not be missed.

The publisher uses publisher confirms and ``mandatory``: a message published
while no queue at all is bound comes back, and :class:`~queuelab.rabbitmq.
producer.Producer` raises ``PublishError`` instead of pretending somebody
heard it.
"""

import uuid
from dataclasses import dataclass, field

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from queuelab.errors import ConfigError


@dataclass(frozen=True)
class Fanout:
    """A durable fanout exchange; pass it to ``Producer`` to publish to it."""

    name: str

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("a fanout exchange needs a name")

    @property
    def label(self) -> str:
        return self.name

    @property
    def routing_key(self) -> str:
        return ""  # a fanout exchange ignores it

    async def declare_exchange(self, channel: AbstractChannel) -> AbstractExchange:
        return await channel.declare_exchange(
            self.name, ExchangeType.FANOUT, durable=True
        )

    def subscription(self, subscriber: str, *, durable: bool) -> "Subscription":
        return Subscription(self, subscriber, durable=durable)

    async def delete(self, channel: AbstractChannel) -> None:
        await channel.exchange_delete(self.name)


@dataclass(frozen=True)
class Subscription:
    """One subscriber's queue on a fanout; pass it to ``Consumer`` as its queue.

    A durable subscription's queue is ``<exchange>.<subscriber>`` and outlives
    the subscriber. An exclusive one gets a fresh name and is deleted by the
    broker when the subscriber's connection closes.
    """

    fanout: Fanout
    subscriber: str
    durable: bool
    _suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8], repr=False)

    @property
    def name(self) -> str:
        base = f"{self.fanout.name}.{self.subscriber}"
        return base if self.durable else f"{base}.{self._suffix}"

    @property
    def has_dead_letters(self) -> bool:
        return False

    async def declare(self, channel: AbstractChannel) -> AbstractQueue:
        exchange = await self.fanout.declare_exchange(channel)
        queue = await channel.declare_queue(
            self.name,
            durable=self.durable,
            exclusive=not self.durable,
            auto_delete=not self.durable,
        )
        await queue.bind(exchange)
        return queue

    async def delete(self, channel: AbstractChannel) -> None:
        await channel.queue_delete(self.name)
