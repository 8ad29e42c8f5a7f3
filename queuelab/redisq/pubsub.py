"""Redis pub/sub: PUBLISH to a channel, SUBSCRIBE to hear it, reconnect when cut.

Pub/sub is a broadcast, not a queue. PUBLISH hands a message to every client
subscribed to the channel at that instant and keeps nothing; its reply is the
number of subscribers that got it. A subscriber that is away (restarting,
reconnecting, not yet subscribed) misses everything published meanwhile, and
nobody is told: 0 receivers is not an error. Pub/sub suits news that may be
missed (a cache to invalidate, a live chart); events that every consumer must
see belong in a stream (``streams.py``).

A subscription lives on one connection. When it drops, redis-py reconnects and
subscribes again by itself a few times; when that is not enough, the read
raises and :class:`Subscriber` starts over with backoff until Redis is back.
Either way Redis confirms the new subscription, and the subscriber counts each
confirmation after the first as a reconnection and logs it: it marks a gap in
what the subscriber heard.

A message that is not a valid envelope is kept in ``<channel>:dead`` with the
reason, and skipped.
"""

import contextlib
import logging
import time
from typing import Any

import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from queuelab import envelope as codec
from queuelab.envelope import Envelope
from queuelab.errors import BrokerError, EnvelopeError
from queuelab.redisq.blocking import check_timeout
from queuelab.redisq.consumer import dead_record

log = logging.getLogger(__name__)

CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
CONFIRM_TIMEOUT_S = 5.0


async def publish(
    client: "redis.asyncio.Redis", channel: str, envelope: Envelope
) -> int:
    """Broadcast ``envelope``; how many subscribers received it (0 is allowed)."""
    return int(await client.publish(channel, codec.encode(envelope)))


class Subscriber:
    """One channel's messages, through reconnections, as envelopes."""

    def __init__(
        self,
        client: "redis.asyncio.Redis",
        channel: str,
        *,
        reconnect_for_s: float = 30.0,
    ) -> None:
        self.client = client
        self.channel = channel
        self.dead_name = f"{channel}:dead"
        self.reconnect_for_s = reconnect_for_s
        self.reconnects = 0
        self._pubsub: Any = None
        self._confirmations = 0

    async def start(self) -> "Subscriber":
        """Subscribe, and return once Redis has confirmed the subscription."""
        self._pubsub = self.client.pubsub()
        await self._pubsub.subscribe(self.channel)
        await self._await_confirmation()
        log.info("subscribed to %s", self.channel)
        return self

    async def get(self, timeout_s: float | None = 1.0) -> Envelope | None:
        """The next message, waiting up to ``timeout_s`` (None: forever)."""
        check_timeout(timeout_s)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            envelope = await self._next(remaining)
            if envelope is not None:
                return envelope

    async def _next(self, timeout_s: float | None) -> Envelope | None:
        if self._pubsub is None:
            raise BrokerError(f"subscriber of {self.channel} is not started")
        try:
            message = await self._pubsub.get_message(timeout=timeout_s)
        except CONNECTION_ERRORS as exc:
            await self._reconnect(exc)
            return None
        if message is None:
            return None
        if message["type"] == "subscribe":
            self._confirmed()
            return None
        if message["type"] != "message":
            return None
        return await self._decode(bytes(message["data"]))

    async def _decode(self, data: bytes) -> Envelope | None:
        try:
            return codec.decode(data)
        except EnvelopeError as exc:
            await self.client.lpush(self.dead_name, dead_record(data, str(exc)))
            log.warning("dead-lettered malformed message on %s: %s", self.channel, exc)
            return None

    def _confirmed(self) -> None:
        self._confirmations += 1
        if self._confirmations > 1:
            self.reconnects += 1
            log.warning(
                "resubscribed to %s (reconnection %d): whatever was published "
                "while the connection was down is lost",
                self.channel,
                self.reconnects,
            )

    async def _await_confirmation(self) -> None:
        deadline = time.monotonic() + CONFIRM_TIMEOUT_S
        seen = self._confirmations
        while self._confirmations == seen:
            if time.monotonic() > deadline:
                raise BrokerError(f"no subscription confirmed on {self.channel}")
            message = await self._pubsub.get_message(timeout=0.2)
            if message is not None and message["type"] == "subscribe":
                self._confirmed()

    async def _reconnect(self, error: BaseException) -> None:
        log.warning("subscription to %s lost (%s); reconnecting", self.channel, error)
        await self._close_pubsub()
        retrying = AsyncRetrying(
            stop=stop_after_delay(self.reconnect_for_s),
            wait=wait_exponential(multiplier=0.05, max=2.0),
            retry=retry_if_exception_type(CONNECTION_ERRORS),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self._close_pubsub()
                self._pubsub = self.client.pubsub()
                await self._pubsub.subscribe(self.channel)
                await self._await_confirmation()

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*CONNECTION_ERRORS):
                await pubsub.aclose()

    async def close(self) -> None:
        """Unsubscribe and drop the connection."""
        await self._close_pubsub()

    async def __aenter__(self) -> "Subscriber":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
