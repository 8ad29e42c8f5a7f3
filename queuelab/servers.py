"""Private broker servers started from local binaries, owned by their caller.

A fault experiment must be able to kill or restart its broker without touching
anyone else's, so it runs its own: a ``redis-server`` or a RabbitMQ node on
free ports in a temporary folder. mirakuru starts the process, waits until the
port answers and stops the whole process group; ``restart`` keeps the data
folder, so what the server persisted survives and what it did not is lost,
exactly as on a production restart.
"""

import atexit
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from mirakuru import TCPExecutor
from mirakuru.exceptions import AlreadyRunning, ProcessExitedWithError, TimeoutExpired

from queuelab.errors import BrokerError

log = logging.getLogger(__name__)

RABBITMQ_SCRIPT = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateServer:
    """A broker process on 127.0.0.1:``port`` that this object owns."""

    name = "server"

    def __init__(self, port: int | None = None, start_timeout_s: float = 30) -> None:
        self.port = port or free_port()
        self.start_timeout_s = start_timeout_s
        self.folder = Path(tempfile.mkdtemp(prefix=f"queuelab-{self.name}-"))
        self._executor: TCPExecutor | None = None
        self._reaper: subprocess.Popen[bytes] | None = None
        self._closed = False
        # A server outlives a notebook kernel that forgot to close it (it runs
        # in its own session), so stop it when this interpreter exits.
        atexit.register(self.close)

    @property
    def running(self) -> bool:
        return self._executor is not None and self._executor.running()

    def start(self) -> "PrivateServer":
        """Start the server and wait until its port answers."""
        if self.running:
            return self
        if self._closed or not self.folder.is_dir():
            raise BrokerError(
                f"private {self.name} on port {self.port} was closed; start a new one"
            )
        command, env, popen = self._command()
        log_file = (self.folder / "stdout.log").open("ab")
        self._executor = TCPExecutor(
            command,
            host="127.0.0.1",
            port=self.port,
            timeout=self.start_timeout_s,
            envvars=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=str(self.folder),
            popen_kwargs=popen,
        )
        try:
            self._executor.start()
        except AlreadyRunning:
            raise BrokerError(
                f"port {self.port} was taken before {self.name} could use it"
            ) from None
        except (TimeoutExpired, ProcessExitedWithError) as exc:
            self._executor = None
            tail = (self.folder / "stdout.log").read_text(errors="replace")[-600:]
            raise BrokerError(
                f"private {self.name} did not start on port {self.port} "
                f"({type(exc).__name__}); its output ended with:\n{tail.strip()}"
            ) from None
        finally:
            log_file.close()
        self._start_reaper()
        log.info(
            "started private %s on port %d in %s", self.name, self.port, self.folder
        )
        return self

    def _start_reaper(self) -> None:
        process = self._executor.process if self._executor else None
        if process is None:
            return
        self._reaper = subprocess.Popen(
            [sys.executable, "-m", "queuelab.reaper", str(os.getpid()),
             str(process.pid), str(self.folder)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip

    def _stop_reaper(self) -> None:
        if self._reaper is not None:
            self._reaper.terminate()
            self._reaper.wait()
            self._reaper = None

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM to its process group)."""
        self._stop_reaper()
        if self._executor is not None:
            self._executor.stop()
            self._executor = None
            log.info("stopped private %s on port %d", self.name, self.port)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL): no shutdown, no final flush."""
        self._stop_reaper()
        if self._executor is not None:
            self._executor.kill(sig=signal.SIGKILL)
            self._executor = None
            log.warning("killed private %s on port %d", self.name, self.port)

    def restart(self) -> None:
        """Stop and start again on the same port with the same data folder."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and delete its folder."""
        self.stop()
        self._closed = True
        shutil.rmtree(self.folder, ignore_errors=True)
        atexit.unregister(self.close)

    def _command(self) -> tuple[list[str], dict[str, str], dict[str, Any]]:
        raise NotImplementedError


class PrivateRedis(PrivateServer):
    """``redis-server`` on a free port; no persistence unless asked for."""

    name = "redis"

    def __init__(self, port: int | None = None, *, appendonly: bool = False) -> None:
        super().__init__(port, start_timeout_s=10)
        self.appendonly = appendonly

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _command(self) -> tuple[list[str], dict[str, str], dict[str, Any]]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise BrokerError("redis-server not found on PATH")
        command = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
            "--dir", str(self.folder),
            "--daemonize", "no",
        ]  # fmt: skip
        return command, {}, {}


class PrivateRabbitMQ(PrivateServer):
    """A RabbitMQ node with its own name, ports, folders and no plugins.

    Run as root, the node runs as the ``rabbitmq`` user (as Debian's wrapper
    does), so its folders are handed to that user first.
    """

    name = "rabbitmq"

    def __init__(self, port: int | None = None) -> None:
        super().__init__(port, start_timeout_s=60)
        self.dist_port = free_port()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def node(self) -> str:
        return f"queuelab{self.port}@localhost"

    def close_all_connections(self, reason: str = "queuelab fault") -> None:
        """Have the node close every client connection (rabbitmqctl)."""
        # The inner script: the Debian wrapper would cd to /var/lib/rabbitmq and
        # use the system node's cookie instead of this node's.
        ctl = str(Path(RABBITMQ_SCRIPT).with_name("rabbitmqctl"))
        if not os.path.exists(ctl):
            ctl = shutil.which("rabbitmqctl") or "rabbitmqctl"
        env = {**os.environ, "HOME": str(self.folder)}
        popen: dict[str, Any] = {}
        if os.geteuid() == 0:
            user = pwd.getpwnam("rabbitmq")
            popen.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        subprocess.run(
            [ctl, "-n", self.node, "close_all_connections", reason],
            env=env,
            cwd=self.folder,
            check=True,
            capture_output=True,
            timeout=30,
            **popen,
        )
        log.warning("closed every client connection of private rabbitmq %s", self.node)

    def _command(self) -> tuple[list[str], dict[str, str], dict[str, Any]]:
        script = RABBITMQ_SCRIPT if os.path.exists(RABBITMQ_SCRIPT) else None
        script = script or shutil.which("rabbitmq-server")
        if script is None:
            raise BrokerError("rabbitmq-server not found")

        folder = self.folder
        (folder / "mnesia").mkdir(exist_ok=True)
        (folder / "log").mkdir(exist_ok=True)
        (folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
        )
        (folder / "enabled_plugins").write_text("[].\n")
        env = {
            "HOME": str(folder),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(folder / "feature_flags"),
            "RABBITMQ_PID_FILE": str(folder / "rabbitmq.pid"),
        }
        popen: dict[str, Any] = {}
        if os.geteuid() == 0:
            user = pwd.getpwnam("rabbitmq")
            for path in [folder, *folder.rglob("*")]:
                os.chown(path, user.pw_uid, user.pw_gid)
            popen.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        return [script], env, popen
