"""AMQP patterns on aio-pika: connection, topology, producer and consumer."""

from queuelab.rabbitmq.connection import connect
from queuelab.rabbitmq.consumer import Consumer
from queuelab.rabbitmq.producer import Producer
from queuelab.rabbitmq.topology import declare_work_queue, queue_depth

__all__ = ["Consumer", "Producer", "connect", "declare_work_queue", "queue_depth"]
