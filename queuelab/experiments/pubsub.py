"""Fanout pub/sub on RabbitMQ: who misses what while away.

Two subscribers listen on one fanout exchange, one through a durable queue
and one through an exclusive queue. The run has three phases with the same
number of messages each: both connected; both away (consumers stopped); both
back. The durable subscriber's queue stays bound and keeps what arrives while
it is away, so it receives every message. The exclusive queue was deleted
with its subscriber's connection, so the messages of the "away" phase never
reach that subscriber.
"""

from collections import Counter
from dataclasses import dataclass

import pandas as pd

from queuelab import envelope as codec
from queuelab.envelope import Envelope, Kind
from queuelab.experiments.common import unique_name, wait_until
from queuelab.ledger import Ledger
from queuelab.rabbitmq import Consumer, Fanout, Producer
from queuelab.rabbitmq.connection import admin_channel
from queuelab.rabbitmq.consumer import Task

PHASES = ("both connected", "both away", "both back")
SUBSCRIBERS = {"durable": True, "exclusive": False}


@dataclass
class FanoutRun:
    """What each subscriber received in each phase."""

    received: pd.DataFrame  # index: phase; one column per subscriber
    published: dict[str, int]  # per phase
    ledger: pd.DataFrame


async def fanout_run(
    url: str, *, per_phase: int = 20, timeout_s: float = 15.0
) -> FanoutRun:
    """Publish ``per_phase`` events in each of :data:`PHASES`."""
    fanout = Fanout(unique_name("fanout"))
    subscriptions = {
        name: fanout.subscription(name, durable=durable)
        for name, durable in SUBSCRIBERS.items()
    }
    ledger = Ledger()
    received: Counter[tuple[str, str]] = Counter()
    consumers: list[Consumer] = []

    async def connect_all() -> None:
        for name, subscription in subscriptions.items():
            task = _counting_task(received, name)
            consumer = Consumer(
                url, subscription, task, prefetch=20, ledger=ledger, worker=name
            )
            await consumer.start()
            consumers.append(consumer)

    async def disconnect_all() -> None:
        for consumer in consumers:
            await consumer.stop()
        consumers.clear()

    async def publish(phase: str, first_seq: int) -> None:
        await producer.publish_many(
            codec.new({"phase": phase}, first_seq + i, kind=Kind.EVENT)
            for i in range(per_phase)
        )
        if phase != "both away":
            await wait_until(
                lambda: all(received[(n, phase)] >= per_phase for n in subscriptions),
                timeout_s=timeout_s,
                what=f"both subscribers to receive the '{phase}' events",
            )

    async with Producer(url, fanout, ledger=ledger, window=50) as producer:
        await connect_all()
        await publish(PHASES[0], 0)
        await disconnect_all()
        await publish(PHASES[1], per_phase)
        await connect_all()
        await publish(PHASES[2], 2 * per_phase)
    await wait_until(
        lambda: received[("durable", PHASES[1])] >= per_phase,
        timeout_s=timeout_s,
        what="the durable subscriber to catch up on what it missed",
    )
    await disconnect_all()
    async with admin_channel(url) as channel:
        for subscription in subscriptions.values():
            await subscription.delete(channel)
        await fanout.delete(channel)

    table = pd.DataFrame(
        {name: [received[(name, phase)] for phase in PHASES] for name in subscriptions},
        index=pd.Index(PHASES, name="phase"),
    )
    published = dict.fromkeys(PHASES, per_phase)
    return FanoutRun(table, published, ledger.frame())


def _counting_task(received: Counter[tuple[str, str]], name: str) -> Task:
    async def task(envelope: Envelope) -> None:
        received[(name, envelope.body["phase"])] += 1

    return task
