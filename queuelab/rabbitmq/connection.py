"""Open an AMQP connection that names its broker when it fails.

aio-pika's ``connect_robust`` reconnects after a dropped connection and
restores the channels, exchanges, queues and consumers declared through it.
The first connection, though, must succeed: a wrong URL or a broker that is
down is reported here within ``timeout_s``, with the password masked, instead
of as a traceback from inside the client.
"""

import asyncio

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from aio_pika.exceptions import AMQPError, ProbableAuthenticationError

from queuelab.brokers import BrokerKind, check_url, mask_url
from queuelab.errors import BrokerUnavailable

DEFAULT_TIMEOUT_S = 5.0
RECONNECT_INTERVAL_S = 1.0  # aio-pika waits 5 s by default between attempts


async def connect(
    url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> AbstractRobustConnection:
    """A robust connection to ``url``, or ``BrokerUnavailable`` in seconds."""
    check_url(BrokerKind.RABBITMQ, url)
    try:
        return await asyncio.wait_for(
            aio_pika.connect_robust(
                url, timeout=timeout_s, reconnect_interval=RECONNECT_INTERVAL_S
            ),
            timeout_s,
        )
    except ProbableAuthenticationError:
        raise BrokerUnavailable(
            f"RabbitMQ at {mask_url(url)}: authentication failed"
        ) from None
    except (AMQPError, OSError, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        raise BrokerUnavailable(
            f"RabbitMQ at {mask_url(url)} did not answer within {timeout_s:g} s "
            f"({reason})"
        ) from None
