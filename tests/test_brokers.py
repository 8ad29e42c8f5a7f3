"""The broker chain: each link serves when it should; failures name themselves."""

import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from queuelab import brokers
from queuelab.brokers import (
    AMQP_ENV,
    REDIS_ENV,
    BrokerKind,
    Link,
    find_rabbitmq,
    find_redis,
    mask_url,
)
from queuelab.errors import BrokerError, BrokerUnavailable, BrokerURLError
from queuelab.servers import free_port


def port_answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_mask_url_hides_only_the_password() -> None:
    assert (
        mask_url("amqp://guest:s3cret@host:5672/vh") == "amqp://guest:***@host:5672/vh"
    )
    assert mask_url("redis://:pw@[::1]:6379/0") == "redis://:***@[::1]:6379/0"
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_an_explicit_url_argument_is_served_first() -> None:
    broker = find_redis("redis://127.0.0.1:6379/0")
    assert broker.link is Link.EXPLICIT
    assert broker.detail == "from argument"
    assert broker.version.startswith("Redis ")


def test_the_environment_variable_is_an_explicit_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(AMQP_ENV, "amqp://guest:guest@127.0.0.1:5672/")
    broker = find_rabbitmq()
    assert (broker.link, broker.detail) == (Link.EXPLICIT, f"from {AMQP_ENV}")
    assert broker.masked_url == "amqp://guest:***@127.0.0.1:5672/"


def test_without_a_url_the_local_port_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AMQP_ENV, raising=False)
    monkeypatch.delenv(REDIS_ENV, raising=False)
    assert find_rabbitmq().link is Link.LOCAL
    redis_broker = find_redis()
    assert redis_broker.link is Link.LOCAL
    assert redis_broker.tried == [f"explicit: no URL given (argument or {REDIS_ENV})"]


@pytest.mark.parametrize(
    ("kind", "url", "message"),
    [
        (BrokerKind.REDIS, "http://127.0.0.1:6379", "has scheme 'http'"),
        (BrokerKind.RABBITMQ, "redis://127.0.0.1:6379", "expected amqp:// or amqps://"),
        (BrokerKind.REDIS, "redis://127.0.0.1:notaport/0", "port is not a number"),
        (BrokerKind.RABBITMQ, "amqp://g:pw@127.0.0.1:99999/", "port is not a number"),
        (BrokerKind.RABBITMQ, "amqp://g:pw@127.0.0.1:0/", "port 0 is not a port"),
        (BrokerKind.REDIS, "redis://127.0.0.1:6379/abc", "database 'abc' is not"),
        (BrokerKind.REDIS, "redis://127.0.0.1:6379/0?db=x", "Invalid value for 'db'"),
        (BrokerKind.RABBITMQ, "amqp:///", "names no host"),
        (BrokerKind.RABBITMQ, "", "URL is empty"),
    ],
)
def test_a_malformed_url_is_refused_at_once(
    kind: BrokerKind, url: str, message: str
) -> None:
    find = find_redis if kind is BrokerKind.REDIS else find_rabbitmq
    with pytest.raises(BrokerURLError, match=message):
        find(url)


@pytest.mark.parametrize("kind", list(BrokerKind))
def test_an_unreachable_explicit_url_names_itself_quickly_without_its_password(
    kind: BrokerKind, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    scheme = "amqp" if kind is BrokerKind.RABBITMQ else "redis"
    url = f"{scheme}://user:s3cret@127.0.0.1:{free_port()}/"
    find = find_redis if kind is BrokerKind.REDIS else find_rabbitmq

    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as caught:
        find(url)
    assert time.monotonic() - started < 5
    assert "user:***@127.0.0.1" in str(caught.value)
    assert "s3cret" not in str(caught.value)
    assert "s3cret" not in caplog.text


def test_an_error_from_an_environment_url_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(AMQP_ENV, "amqp://guest:wrong@127.0.0.1:5672/")
    with pytest.raises(BrokerUnavailable, match=f"from {AMQP_ENV}"):
        find_rabbitmq()


def test_wrong_rabbitmq_credentials_are_reported_as_such() -> None:
    with pytest.raises(BrokerUnavailable, match="authentication failed"):
        find_rabbitmq("amqp://guest:wrong@127.0.0.1:5672/")


def test_a_private_redis_runs_on_a_free_port_and_is_gone_after_close() -> None:
    broker = find_redis(links=[Link.PRIVATE])
    port = broker.server.port if broker.server else 0
    assert broker.link is Link.PRIVATE
    assert port not in (0, 6379)
    assert port_answers(port)
    folder = broker.server.folder if broker.server else None

    broker.close()
    assert not port_answers(port)
    assert folder is not None
    assert not folder.exists()


def test_a_closed_private_server_cannot_be_started_again() -> None:
    broker = find_redis(links=[Link.PRIVATE])
    server = broker.server
    broker.close()
    assert server is not None
    with pytest.raises(BrokerError, match="was closed; start a new one"):
        server.start()


def test_a_private_server_is_reaped_when_its_owner_is_killed(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER_SCRIPT], stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    port, folder = owner.stdout.readline().split()
    assert port_answers(int(port))

    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 10
    while (port_answers(int(port)) or Path(folder).exists()) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert not port_answers(int(port))
    assert not Path(folder).exists()


OWNER_SCRIPT = """
import time
from queuelab.brokers import start_private_redis
broker = start_private_redis()
print(broker.server.port, broker.server.folder, flush=True)
time.sleep(60)
"""


@pytest.mark.slow
def test_a_private_rabbitmq_node_starts_and_stops() -> None:
    with brokers.start_private_rabbitmq() as broker:
        port = broker.server.port if broker.server else 0
        assert broker.version.startswith("RabbitMQ ")
        assert port_answers(port)
    assert not port_answers(port)


def test_the_embedded_link_is_labelled_as_not_a_real_server() -> None:
    broker = find_redis(links=[Link.EMBEDDED])
    assert broker.link is Link.EMBEDDED
    assert not broker.is_real
    assert "not a real server" in broker.detail


async def test_the_embedded_redis_answers_commands() -> None:
    client = find_redis(links=[Link.EMBEDDED]).redis()
    await client.rpush("k", "a", "b")
    assert await client.lrange("k", 0, -1) == [b"a", b"b"]


def test_the_container_link_needs_a_docker_engine() -> None:
    reason = brokers._docker_unavailable()
    if not reason:
        pytest.skip(
            "a Docker engine answers here; the container link is exercised below"
        )
    with pytest.raises(BrokerUnavailable, match="container: no Docker engine"):
        find_redis(links=[Link.CONTAINER])


def test_the_container_link_starts_a_throwaway_redis() -> None:
    reason = brokers._docker_unavailable()
    if reason:
        pytest.skip(f"container link not exercised: {reason}")
    with find_redis(links=[Link.CONTAINER]) as broker:
        assert broker.link is Link.CONTAINER


def test_when_nothing_serves_the_error_lists_every_link_and_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server, no docker
    monkeypatch.setattr(brokers, "RABBITMQ_SCRIPT", "/nonexistent", raising=False)
    monkeypatch.setattr("queuelab.servers.RABBITMQ_SCRIPT", "/nonexistent")
    monkeypatch.delenv(AMQP_ENV, raising=False)
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"

    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as caught:
        find_rabbitmq(local_url=dead)
    elapsed = time.monotonic() - started

    message = str(caught.value)
    assert elapsed < 10
    for link in ("explicit:", "local:", "container:", "private:"):
        assert link in message
    assert "rabbitmq-server not found" in message
    assert "apt-get install rabbitmq-server" in message
