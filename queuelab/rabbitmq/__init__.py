"""AMQP patterns on aio-pika: topology, producer, consumer, dead letters,
fanout pub/sub and priorities."""

from queuelab.rabbitmq.connection import connect
from queuelab.rabbitmq.consumer import AckMode, Consumer, OnFailure, in_thread
from queuelab.rabbitmq.deadletter import (
    DeadLetter,
    declare_dead_letter,
    read_dead_letters,
)
from queuelab.rabbitmq.fanout import Fanout, Subscription
from queuelab.rabbitmq.producer import Producer
from queuelab.rabbitmq.topology import (
    Backoff,
    WorkQueue,
    declare_work_queue,
    queue_depth,
)

__all__ = [
    "AckMode",
    "Backoff",
    "Consumer",
    "DeadLetter",
    "Fanout",
    "OnFailure",
    "Producer",
    "Subscription",
    "WorkQueue",
    "connect",
    "declare_dead_letter",
    "declare_work_queue",
    "in_thread",
    "queue_depth",
    "read_dead_letters",
]
