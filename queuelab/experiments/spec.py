"""What an experiment is: one spec, runnable on real brokers or simulated.

A spec names the backend, the guarantee, the workload (arrival process), the
consumers and their task, the faults to inject and the seed. The runner reads
nothing else, so a spec plus the versions recorded with its result is enough
to run the same experiment again.

Crashes are described the way the simulator models them: each delivery ends in
a worker crash with probability ``crash_p``, and ``crash_after_effect`` is the
share of crashes that land between the task's effect and its ack (the ones
that make at-least-once process a message twice). On real brokers the worker
process kills itself with SIGKILL at that point: no cleanup, no goodbye to the
broker, exactly like an OOM kill. Broker-side faults (dropping every client
connection, restarting the broker) fire at given times.
"""

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from queuelab.errors import ConfigError
from queuelab.experiments import arrivals
from queuelab.guarantees import Guarantee


class Backend(StrEnum):
    SIM = "sim"  # the SimPy model, virtual time
    RABBITMQ = "rabbitmq"  # a durable queue, persistent messages, confirms
    REDIS_LIST = "redis-list"  # the reliable list: BLMOVE, processing list, reaper
    REDIS_STREAM = "redis-stream"  # a consumer group with XAUTOCLAIM recovery


class FaultKind(StrEnum):
    DROP_CONNECTIONS = "drop-connections"  # the broker closes every client
    RESTART_BROKER = "restart-broker"  # graceful stop and start, same data


@dataclass(frozen=True)
class Workload:
    """An arrival process; see :mod:`queuelab.experiments.arrivals`."""

    kind: str = "constant"  # constant, poisson, bursts or replay
    rate_per_s: float = 100.0
    duration_s: float = 5.0
    burst_every_s: float = 2.0
    burst_len_s: float = 0.5
    burst_factor: float = 5.0
    path: str = ""  # for replay: a CSV with column t_s

    def arrivals(self, seed: int) -> np.ndarray:
        if self.kind == "constant":
            return arrivals.constant(self.rate_per_s, self.duration_s)
        if self.kind == "poisson":
            return arrivals.poisson(self.rate_per_s, self.duration_s, seed=seed)
        if self.kind == "bursts":
            return arrivals.bursts(
                self.rate_per_s,
                self.duration_s,
                burst_every_s=self.burst_every_s,
                burst_len_s=self.burst_len_s,
                burst_factor=self.burst_factor,
                seed=seed,
            )
        if self.kind == "replay":
            return arrivals.replay(Path(self.path))
        raise ConfigError(
            f"workload kind {self.kind!r}: use constant, poisson, bursts or replay"
        )


@dataclass(frozen=True)
class Fault:
    """A broker-side fault, ``at_s`` seconds after the first publish or once
    ``after_messages`` messages have been published (give one of the two)."""

    kind: FaultKind
    at_s: float | None = None
    after_messages: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FaultKind(self.kind))
        if (self.at_s is None) == (self.after_messages is None):
            raise ConfigError("a fault needs exactly one of at_s and after_messages")
        if (self.at_s or 0) < 0 or (self.after_messages or 0) < 0:
            raise ConfigError("fault time and message count must be >= 0")


@dataclass(frozen=True)
class ExperimentSpec:
    """Everything a run depends on."""

    name: str
    backend: Backend
    guarantee: Guarantee = Guarantee.AT_LEAST_ONCE
    workload: Workload = field(default_factory=Workload)
    consumers: int = 2
    prefetch: int = 1
    task_s: float = 0.005
    crash_p: float = 0.0
    crash_after_effect: float = 0.5
    faults: tuple[Fault, ...] = ()
    redelivery_s: float = 0.0  # sim only: until a dead worker's messages return
    restart_s: float = 0.2  # until a crashed worker is replaced
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "backend", Backend(self.backend))
        object.__setattr__(self, "guarantee", Guarantee(self.guarantee))
        if self.consumers < 1 or self.prefetch < 1:
            raise ConfigError("consumers and prefetch must be >= 1")
        if not (0 <= self.crash_p < 1 and 0 <= self.crash_after_effect <= 1):
            raise ConfigError(
                "crash_p must be in [0, 1) and crash_after_effect in [0, 1]"
            )
        if self.task_s < 0 or self.restart_s < 0:
            raise ConfigError("task_s and restart_s must be >= 0")

    @property
    def needs_private_broker(self) -> bool:
        """Faults that touch the broker must not touch anyone else's."""
        return bool(self.faults)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ExperimentSpec":
        data: dict[str, Any] = json.loads(text)
        data["workload"] = Workload(**data["workload"])
        data["faults"] = tuple(Fault(**f) for f in data["faults"])
        return cls(**data)
