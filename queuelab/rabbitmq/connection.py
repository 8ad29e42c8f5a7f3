"""Open an AMQP connection that names its broker when it fails.

aio-pika's ``connect_robust`` reconnects after a dropped connection and
restores the channels, exchanges, queues and consumers declared through it.
It restores only what is still alive: the connection holds its channels
weakly, so whoever wants a channel back after a reconnect must keep a
reference to it. It retries every ``reconnect_interval_s`` (aio-pika's
default is 5 s; 1 s here, so a restarted broker is back in use within about a
second of answering).

The first connection, though, must succeed: a wrong URL or a broker that is
down is reported here within ``timeout_s``, with the password masked, instead
of as a traceback from inside the client.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aio_pika.exceptions import AMQPError, ProbableAuthenticationError

from queuelab.brokers import BrokerKind, check_url, mask_url
from queuelab.errors import BrokerUnavailable

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_RECONNECT_INTERVAL_S = 1.0


async def connect(
    url: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    reconnect_interval_s: float = DEFAULT_RECONNECT_INTERVAL_S,
) -> AbstractRobustConnection:
    """A robust connection to ``url``, or ``BrokerUnavailable`` in seconds."""
    check_url(BrokerKind.RABBITMQ, url)
    try:
        return await asyncio.wait_for(
            aio_pika.connect_robust(
                url, timeout=timeout_s, reconnect_interval=reconnect_interval_s
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


@asynccontextmanager
async def admin_channel(url: str) -> AsyncIterator[AbstractChannel]:
    """A short-lived channel for looking and cleaning up: depths, deletes."""
    connection = await connect(url)
    try:
        yield await connection.channel()
    finally:
        await connection.close()
