"""Blocking reads on a connection of their own, in slices shorter than its timeout.

A blocking command (BRPOP, BLMOVE, XREADGROUP ... BLOCK) parks a connection on
the server until data arrives or the block timeout passes. The commonly
written consumer gets two things wrong.

The socket timeout. redis-py gives every read a socket timeout (5 s unless
set). A BRPOP asked to block for 30 s on such a connection does not come back
empty after 30 s: the read gives up after 5 s and raises ``TimeoutError``, and
the client's retry policy may even send the BRPOP again. Here every blocking
command blocks for a slice shorter than the socket timeout, and a long wait is
several slices, so waiting 8 s on a 4 s socket returns empty, as asked.

Cancellation. A consumer cancelled while blocked (``asyncio.timeout``, a task
group shutting down, a notebook interrupt) leaves the server still blocked on
its behalf. redis-py drops the connection on cancel and the next command opens
a new one; but if a push reaches the server before it notices the closed
socket, the server hands the item to the abandoned pop, and with BRPOP the item
is gone. So on cancellation the server-side wait is ended with CLIENT UNBLOCK,
sent on the ordinary connection, before the cancellation goes on. (fakeredis
keeps an abandoned pop alive until its timeout; there the unblock is what lets
the next push land where it should.)

The blocking connection is separate from the one used for everything else, so
a consumer's acknowledgements never wait behind its own blocked pop.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio
from redis.exceptions import RedisError

from queuelab.errors import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")
BlockingCommand = Callable[["redis.asyncio.Redis", float], Awaitable[T | None]]

NO_SOCKET_TIMEOUT_SLICE_S = 5.0  # slice length when the socket never times out
MIN_SLICE_S = 0.01  # Redis reads a block timeout that rounds to 0 ms as "forever"


def slice_for(socket_timeout_s: float | None) -> float:
    """The longest block that a read with ``socket_timeout_s`` safely outlasts."""
    if socket_timeout_s is None:
        return NO_SOCKET_TIMEOUT_SLICE_S
    margin_s = max(0.25, 0.2 * socket_timeout_s)
    if socket_timeout_s - margin_s < 0.05:
        raise ConfigError(
            f"socket timeout of {socket_timeout_s} s is too short for blocking "
            "reads; use at least 0.3 s"
        )
    return socket_timeout_s - margin_s


def check_timeout(timeout_s: float | None) -> None:
    """Refuse a block timeout that Redis would read as something else."""
    if timeout_s is None:
        return
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float):
        raise ConfigError(f"timeout_s must be a number or None, got {timeout_s!r}")
    if timeout_s <= 0:
        raise ConfigError(
            f"timeout_s must be > 0, got {timeout_s}: Redis reads a block timeout "
            "of 0 as 'wait forever'; pass None to wait forever"
        )


class BlockingConnection:
    """A single connection for blocking reads, cloned from ``client``'s settings."""

    def __init__(self, client: "redis.asyncio.Redis") -> None:
        pool = client.connection_pool
        self._control = client
        self._pool: Any = type(pool)(
            connection_class=pool.connection_class, **pool.connection_kwargs
        )
        self.client: redis.asyncio.Redis = redis.asyncio.Redis(
            connection_pool=self._pool, single_connection_client=True
        )
        self.slice_s = slice_for(pool.connection_kwargs.get("socket_timeout"))
        self._client_id: int | None = None

    async def wait(
        self, command: BlockingCommand[T], timeout_s: float | None
    ) -> T | None:
        """Run ``command(client, slice_s)`` until it returns a result or time is up.

        ``command`` must block for at most ``slice_s`` seconds and return None
        when nothing came. ``timeout_s=None`` waits forever.
        """
        check_timeout(timeout_s)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            block_s = self.slice_s
            if deadline is not None:
                block_s = min(block_s, deadline - time.monotonic())
            result = await self._once(command, max(MIN_SLICE_S, round(block_s, 3)))
            if result is not None:
                return result
            if deadline is not None and time.monotonic() >= deadline:
                return None

    async def _once(self, command: BlockingCommand[T], block_s: float) -> T | None:
        if self._client_id is None:
            self._client_id = int(await self.client.client_id())
        try:
            return await command(self.client, block_s)
        except asyncio.CancelledError:
            await self._unblock()
            raise
        except BaseException:
            self._client_id = None  # the connection may be replaced; ask again
            raise

    # TODO: the client id is asked once per connection; if redis-py silently
    # reconnected in between (after a server restart ids start over), the
    # unblock may end another client's wait early (it then reads "nothing
    # came"). Asking CLIENT ID before every wait would close that, for a round
    # trip per pop.
    async def _unblock(self) -> None:
        client_id, self._client_id = self._client_id, None
        if client_id is None:
            return
        try:
            unblocked = await self._control.client_unblock(client_id)
        except RedisError as exc:
            log.debug("CLIENT UNBLOCK %d after a cancel failed: %s", client_id, exc)
            return
        log.debug(
            "cancelled blocking read, CLIENT UNBLOCK %d -> %s", client_id, unblocked
        )

    async def close(self) -> None:
        """Close the blocking connection (the ordinary client stays open)."""
        await self.client.aclose()
        await self._pool.disconnect()
