"""Find a RabbitMQ and a Redis for a notebook, a test or an experiment.

Each broker is resolved through a chain of links, first that serves wins:

1. an explicit URL (argument, or ``QUEUELAB_AMQP_URL`` / ``QUEUELAB_REDIS_URL``);
2. a server already listening on the default local port (5672, 6379);
3. a throwaway container through testcontainers, when a Docker engine answers;
4. a private server started from a local binary on a free port;
5. Redis only: fakeredis in-process, labelled embedded (not a real server, so
   its timings are not broker timings).

The returned :class:`Broker` says which link served and why the earlier ones
did not. A server the chain started belongs to the broker object and stops
with ``close()``. When nothing serves, ``BrokerUnavailable`` lists every link
tried and what to install. URLs are printed and logged with the password
masked.
"""

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio
import redis.connection

from queuelab.errors import BrokerError, BrokerUnavailable, BrokerURLError
from queuelab.servers import PrivateRabbitMQ, PrivateRedis, PrivateServer

log = logging.getLogger(__name__)

AMQP_ENV = "QUEUELAB_AMQP_URL"
REDIS_ENV = "QUEUELAB_REDIS_URL"
LOCAL_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
EMBEDDED_REDIS_URL = "fakeredis://embedded"
PROBE_TIMEOUT_S = 3.0


class BrokerKind(StrEnum):
    RABBITMQ = "rabbitmq"
    REDIS = "redis"


class Link(StrEnum):
    """The links of the chain, in the order they are tried."""

    EXPLICIT = "explicit"
    LOCAL = "local"
    CONTAINER = "container"
    PRIVATE = "private"
    EMBEDDED = "embedded"


ALL_LINKS: tuple[Link, ...] = tuple(Link)

_INSTALL_HINT = {
    BrokerKind.RABBITMQ: (
        f"start RabbitMQ on 127.0.0.1:5672 (Debian: apt-get install "
        f"rabbitmq-server), set {AMQP_ENV}=amqp://user:password@host:5672/, "
        f"or run a Docker engine"
    ),
    BrokerKind.REDIS: (
        f"start Redis on 127.0.0.1:6379 (Debian: apt-get install redis-server), "
        f"set {REDIS_ENV}=redis://host:6379/0, or run a Docker engine"
    ),
}


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe to print or log.

    Works on the text, not on a parse: a password with an unescaped ``/``,
    ``?`` or ``#`` makes ``urlsplit`` miss it, and it must be masked anyway.
    """
    scheme, sep, rest = str(url).partition("://")
    if not sep or "@" not in rest:
        return str(url)
    userinfo, _, hostpart = rest.rpartition("@")
    if ":" not in userinfo:
        return str(url)
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hostpart}"


@dataclass
class Broker:
    """A broker that answered, and how it was found."""

    kind: BrokerKind
    url: str
    link: Link
    detail: str
    version: str = ""
    tried: list[str] = field(default_factory=list)
    server: PrivateServer | None = field(default=None, repr=False)
    _stop: Callable[[], None] | None = field(default=None, repr=False)
    _fake_server: Any = field(default=None, repr=False)

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    @property
    def is_real(self) -> bool:
        """False for the embedded fakeredis, whose timings mean nothing."""
        return self.link is not Link.EMBEDDED

    def redis(self, **options: Any) -> "redis.asyncio.Redis":
        """A new redis.asyncio client for this broker (fakeredis if embedded)."""
        if self.kind is not BrokerKind.REDIS:
            raise BrokerError(f"{self.describe()} is not a Redis broker")
        if self.link is Link.EMBEDDED:
            import fakeredis

            client: redis.asyncio.Redis = fakeredis.FakeAsyncRedis(
                server=self._fake_server, **options
            )
            return client
        return redis_client(self.url, **options)

    def describe(self) -> str:
        version = f" {self.version}" if self.version else ""
        where = f"{self.masked_url} ({self.link}: {self.detail})"
        return f"{self.kind.value}{version} at {where}"

    def as_row(self) -> dict[str, str]:
        return {
            "broker": self.kind.value,
            "link": self.link.value,
            "url": self.masked_url,
            "version": self.version,
            "detail": self.detail,
        }

    def close(self) -> None:
        """Stop whatever server the chain started for this broker."""
        if self.server is not None:
            self.server.close()
            self.server = None
        if self._stop is not None:
            self._stop()
            self._stop = None

    def __enter__(self) -> "Broker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Brokers:
    """One RabbitMQ and one Redis, closed together."""

    rabbitmq: Broker
    redis: Broker

    def rows(self) -> list[dict[str, str]]:
        return [self.rabbitmq.as_row(), self.redis.as_row()]

    def environ(self) -> dict[str, str]:
        """Environment variables that make child processes use these brokers.

        A broker on the local port needs none (children find it the same way,
        and say so); an embedded one cannot be shared with another process.
        """
        env = {}
        for name, broker in ((AMQP_ENV, self.rabbitmq), (REDIS_ENV, self.redis)):
            if broker.link not in (Link.LOCAL, Link.EMBEDDED):
                env[name] = broker.url
        return env

    def close(self) -> None:
        self.rabbitmq.close()
        self.redis.close()

    def __enter__(self) -> "Brokers":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def find_brokers(
    amqp_url: str | None = None,
    redis_url: str | None = None,
    *,
    links: Sequence[Link] = ALL_LINKS,
) -> Brokers:
    """Find both brokers; see the module docstring for the chain."""
    rabbitmq = find_rabbitmq(amqp_url, links=links)
    try:
        return Brokers(rabbitmq, find_redis(redis_url, links=links))
    except BaseException:
        rabbitmq.close()
        raise


def find_rabbitmq(
    url: str | None = None,
    *,
    links: Sequence[Link] = ALL_LINKS,
    local_url: str = LOCAL_AMQP_URL,
) -> Broker:
    """A RabbitMQ from the first link of the chain that serves."""
    return _resolve(BrokerKind.RABBITMQ, url, links, local_url)


def find_redis(
    url: str | None = None,
    *,
    links: Sequence[Link] = ALL_LINKS,
    local_url: str = LOCAL_REDIS_URL,
) -> Broker:
    """A Redis from the first link of the chain that serves."""
    return _resolve(BrokerKind.REDIS, url, links, local_url)


def start_private_rabbitmq() -> Broker:
    """A RabbitMQ node of the caller's own, to stop, kill or restart at will."""
    return _private(BrokerKind.RABBITMQ)


def start_private_redis(*, appendonly: bool = False) -> Broker:
    """A redis-server of the caller's own, to stop, kill or restart at will."""
    return _private(BrokerKind.REDIS, appendonly=appendonly)


def check_url(kind: BrokerKind, url: str) -> str:
    """``url`` if its scheme, host and port suit ``kind``; else ``BrokerURLError``."""
    schemes = {
        BrokerKind.RABBITMQ: ("amqp", "amqps"),
        BrokerKind.REDIS: ("redis", "rediss", "unix"),
    }[kind]
    shown = mask_url(url)
    if not url.strip():
        raise BrokerURLError(f"{kind} URL is empty")
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise BrokerURLError(
            f"{kind} URL {shown!r} has scheme {parts.scheme or 'none'!r}; "
            f"expected {' or '.join(s + '://' for s in schemes)}"
        )
    if parts.scheme == "unix":
        return url
    try:
        port = parts.port
    except ValueError:
        raise BrokerURLError(
            f"{kind} URL {shown!r}: the port is not a number from 1 to 65535 "
            "(a password with / ? # @ or : must be percent-encoded)"
        ) from None
    if not parts.hostname:
        raise BrokerURLError(f"{kind} URL {shown!r} names no host")
    if port == 0:
        raise BrokerURLError(f"{kind} URL {shown!r}: port 0 is not a port")
    if kind is BrokerKind.REDIS:
        database = parts.path.strip("/")
        if database and not database.isdigit():
            raise BrokerURLError(
                f"{kind} URL {shown!r}: the database {database!r} is not a number"
            )
        try:
            redis.connection.parse_url(url)  # type: ignore[no-untyped-call]
        except ValueError as exc:
            raise BrokerURLError(f"{kind} URL {shown!r}: {exc}") from None
    return url


def redis_client(url: str, **options: Any) -> "redis.asyncio.Redis":
    """A redis.asyncio client that fails fast instead of hanging on a dead host."""
    check_url(BrokerKind.REDIS, url)
    options.setdefault("socket_connect_timeout", PROBE_TIMEOUT_S)
    options.setdefault("health_check_interval", 15)
    client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(url, **options)
    return client


# The chain ---------------------------------------------------------------


def _resolve(
    kind: BrokerKind, url: str | None, links: Sequence[Link], local_url: str
) -> Broker:
    env_name = AMQP_ENV if kind is BrokerKind.RABBITMQ else REDIS_ENV
    tried: list[str] = []
    started = time.monotonic()

    for link in links:
        if link is Link.EMBEDDED and kind is BrokerKind.RABBITMQ:
            continue
        try:
            broker = _try_link(kind, link, url, env_name, local_url)
        except BrokerURLError as exc:
            if url is None and link is Link.EXPLICIT:
                raise BrokerURLError(f"{exc} (from {env_name})") from None
            raise
        except BrokerError as exc:
            tried.append(f"{link}: {exc}")
            if link is Link.EXPLICIT and (url is not None or os.environ.get(env_name)):
                # A URL the caller chose must not be silently replaced.
                source = "" if url is not None else f" (from {env_name})"
                raise BrokerUnavailable(f"{kind}{source}: {exc}") from None
            continue
        broker.tried = tried
        log.info("%s served by %s", kind, broker.describe())
        return broker

    elapsed = time.monotonic() - started
    lines = "\n".join(f"  - {line}" for line in tried)
    raise BrokerUnavailable(
        f"No {kind} broker could be found ({elapsed:.1f} s). Tried:\n{lines}\n"
        f"To fix: {_INSTALL_HINT[kind]}."
    )


def _try_link(
    kind: BrokerKind, link: Link, url: str | None, env_name: str, local_url: str
) -> Broker:
    if link is Link.EXPLICIT:
        chosen = url if url is not None else os.environ.get(env_name)
        if chosen is None or (url is None and not chosen):
            raise BrokerError(f"no URL given (argument or {env_name})")
        source = "argument" if url is not None else env_name
        version = _probe(kind, check_url(kind, chosen))
        return Broker(kind, chosen, link, f"from {source}", version)

    if link is Link.LOCAL:
        version = _probe(kind, local_url)
        return Broker(kind, local_url, link, "already running", version)

    if link is Link.CONTAINER:
        return _container(kind)

    if link is Link.PRIVATE:
        return _private(kind)

    import fakeredis

    server = fakeredis.FakeServer()
    return Broker(
        kind,
        EMBEDDED_REDIS_URL,
        link,
        "fakeredis in this process: not a real server, timings mean nothing",
        f"fakeredis {_package_version('fakeredis')}",
        _fake_server=server,
    )


def _private(kind: BrokerKind, *, appendonly: bool = False) -> Broker:
    server: PrivateRabbitMQ | PrivateRedis
    if kind is BrokerKind.RABBITMQ:
        server = PrivateRabbitMQ()
    else:
        server = PrivateRedis(appendonly=appendonly)
    try:
        server.start()
        version = _probe(kind, server.url)
    except BaseException:
        server.close()
        raise
    detail = f"own server on port {server.port} in {server.folder}"
    return Broker(kind, server.url, Link.PRIVATE, detail, version, server=server)


def _container(kind: BrokerKind) -> Broker:
    reason = _docker_unavailable()
    if reason:
        raise BrokerError(reason)

    container: Any
    if kind is BrokerKind.RABBITMQ:
        from testcontainers.rabbitmq import RabbitMqContainer

        container = RabbitMqContainer("rabbitmq:3-alpine").start()
        params = container.get_connection_params()
        url = f"amqp://guest:guest@{container.get_container_host_ip()}:{params.port}/"
    else:
        from testcontainers.redis import RedisContainer

        container = RedisContainer("redis:7-alpine").start()
        host = container.get_container_host_ip()
        url = f"redis://{host}:{container.get_exposed_port(6379)}/0"
    try:
        version = _probe(kind, url)
    except BaseException:
        container.stop()
        raise
    return Broker(
        kind, url, Link.CONTAINER, "testcontainers", version, _stop=container.stop
    )


def _docker_unavailable() -> str:
    """Why no Docker engine can be used, or '' when one answers."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host and not os.path.exists("/var/run/docker.sock"):
        return "no Docker engine (DOCKER_HOST unset, no /var/run/docker.sock)"
    try:
        import docker

        client = docker.from_env(timeout=PROBE_TIMEOUT_S)
        client.ping()
        client.close()
    except Exception as exc:
        return f"no Docker engine answers ({type(exc).__name__})"
    return ""


# Probes -------------------------------------------------------------------


def _probe(kind: BrokerKind, url: str) -> str:
    """The server's version if ``url`` answers; else ``BrokerError`` in seconds."""
    if kind is BrokerKind.REDIS:
        return _probe_redis(url)
    return _probe_rabbitmq(url)


def _probe_redis(url: str) -> str:
    client = redis.Redis.from_url(
        url, socket_connect_timeout=PROBE_TIMEOUT_S, socket_timeout=PROBE_TIMEOUT_S
    )
    try:
        info = client.info("server")
    except redis.AuthenticationError:
        raise BrokerError(f"{mask_url(url)}: authentication failed") from None
    except redis.RedisError as exc:
        raise BrokerError(f"no Redis answers at {mask_url(url)} ({exc})") from None
    finally:
        client.close()
    return f"Redis {info.get('redis_version', '?')}"


def _probe_rabbitmq(url: str) -> str:
    _tcp_check(url, 5672)
    # aio-pika is async; run the handshake on a thread of its own so the probe
    # works the same from a script, a test and a running notebook kernel.
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(asyncio.run, _amqp_handshake(url))
        try:
            return future.result(timeout=PROBE_TIMEOUT_S * 2)
        except FutureTimeout:
            raise BrokerError(f"{mask_url(url)}: no AMQP handshake in time") from None


async def _amqp_handshake(url: str) -> str:
    import aio_pika
    from aio_pika.exceptions import AMQPError

    try:
        connection = await asyncio.wait_for(
            aio_pika.connect(url, timeout=PROBE_TIMEOUT_S), PROBE_TIMEOUT_S
        )
    except aio_pika.exceptions.ProbableAuthenticationError:
        raise BrokerError(f"{mask_url(url)}: authentication failed") from None
    except (AMQPError, OSError, TimeoutError) as exc:
        raise BrokerError(
            f"{mask_url(url)}: AMQP handshake failed ({type(exc).__name__}); "
            "is it RabbitMQ, and does the virtual host exist?"
        ) from None
    try:
        transport = connection.transport
        properties = transport.connection.server_properties if transport else {}
        version = properties.get("version", "?")
        if isinstance(version, bytes):
            version = version.decode()
        return f"RabbitMQ {version}"
    finally:
        await connection.close()


def _tcp_check(url: str, default_port: int) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BrokerError(f"nothing answers at {mask_url(url)} ({reason})") from None


def _package_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)
