"""A queue, its producer and its consumers in virtual time, with SimPy.

The model has the knobs of the real patterns: when messages arrive, how long
a task takes, how many consumers there are and how many messages each may
hold unacknowledged (prefetch), how likely a delivery is to end in a crash and
where in the task the crash lands, when the ack is sent (the guarantee), and
how long a crashed consumer's unacknowledged messages take to come back
(RabbitMQ notices a dead connection at once; a Redis visibility timeout or a
stream's idle time is seconds).

It writes the same ledger as a real run, with virtual seconds as timestamps,
so the same checker, summaries and figures read both. It is deterministic:
the same spec and seed give the same ledger.

What it leaves out, on purpose: network and broker latency, the order in
which a requeued message comes back (it goes to the tail), and publish
failures (every publish succeeds and is confirmed).
"""

from collections import deque
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import simpy

from queuelab.errors import ConfigError
from queuelab.guarantees import Guarantee
from queuelab.ledger import Event, Ledger

Process = Generator[simpy.Event, Any, None]


@dataclass(frozen=True)
class SimSpec:
    """Everything one simulated run depends on."""

    arrivals_s: Sequence[float]
    guarantee: Guarantee = Guarantee.AT_LEAST_ONCE
    consumers: int = 1
    task_s: float = 0.01  # mean task time; exponential when task_jitter
    task_jitter: bool = False
    prefetch: int = 1
    crash_p: float = 0.0  # probability that a delivery ends in a crash
    crash_after_effect: float = 0.0  # share of crashes between effect and ack
    redelivery_s: float = 0.0  # until a dead consumer's unacked messages return
    restart_s: float = 0.1  # until a crashed consumer consumes again
    sample_every_s: float = 0.1  # queue depth sampling interval
    seed: int = 0

    def __post_init__(self) -> None:
        if self.consumers < 1 or self.prefetch < 1:
            raise ConfigError("consumers and prefetch must be >= 1")
        if not (0 <= self.crash_p <= 1 and 0 <= self.crash_after_effect <= 1):
            raise ConfigError("crash_p and crash_after_effect must be in [0, 1]")
        if min(self.task_s, self.redelivery_s, self.restart_s) < 0:
            raise ConfigError("times must be >= 0")
        if self.sample_every_s <= 0:
            raise ConfigError("sample_every_s must be > 0")


@dataclass
class SimResult:
    """A simulated run: its ledger and the queue depth over virtual time."""

    spec: SimSpec
    ledger: pd.DataFrame
    depth: pd.DataFrame  # columns t_s, depth


def simulate(spec: SimSpec) -> SimResult:
    """Run the model until every message is settled; return ledger and depth."""
    model = _Model(spec)
    model.run()
    depth = pd.DataFrame(model.depth, columns=["t_s", "depth"])
    return SimResult(spec, model.ledger.frame(), depth)


class _FifoStore(simpy.Store):
    """simpy.Store on a deque: O(1) takes even with a deep backlog."""

    def __init__(self, env: simpy.Environment) -> None:
        super().__init__(env)
        self.items: deque[Any] = deque()  # type: ignore[assignment]

    def _do_put(self, event: Any) -> None:
        self.items.append(event.item)
        event.succeed()

    def _do_get(self, event: Any) -> None:
        if self.items:
            event.succeed(self.items.popleft())


class _Model:
    def __init__(self, spec: SimSpec) -> None:
        self.spec = spec
        self.env = simpy.Environment()
        self.queue = _FifoStore(self.env)
        self.ledger = Ledger()
        self.append = self.ledger.appender()
        self.rng = np.random.default_rng(spec.seed)
        self.applied: set[str] = set()  # the idempotency store
        self.attempts: dict[str, int] = {}
        self.unsettled = len(spec.arrivals_s)
        self.depth: list[tuple[float, int]] = []
        self.done = self.env.event()

    def run(self) -> None:
        if not self.unsettled:
            return
        self.env.process(self._producer())
        for i in range(self.spec.consumers):
            self.env.process(self._consumer(f"c{i}"))
        self.env.process(self._sampler())
        self.env.run(until=self.done)
        self.depth.append((self.env.now, len(self.queue.items)))

    def _settle(self) -> None:
        self.unsettled -= 1
        if self.unsettled == 0:
            self.done.succeed()

    def _producer(self) -> Process:
        env, queue, append = self.env, self.queue, self.append
        published, confirmed = Event.PUBLISHED, Event.CONFIRMED
        for seq, at in enumerate(self.spec.arrivals_s):
            if at > env.now:
                yield env.timeout(at - env.now)
            message_id = f"m{seq}"
            append((env.now, published, message_id, "producer", 0, ""))
            append((env.now, confirmed, message_id, "producer", 0, ""))
            if queue.get_queue:
                queue.put(message_id)  # a consumer is waiting: wake it
            else:
                queue.items.append(message_id)  # same effect, no event

    def _sampler(self) -> Process:
        while not self.done.triggered:
            self.depth.append((self.env.now, len(self.queue.items)))
            yield self.env.timeout(self.spec.sample_every_s)

    def _consumer(self, worker: str) -> Process:
        spec, env, queue = self.spec, self.env, self.queue
        held: list[str] = []  # delivered to this consumer, not yet settled
        ack_first = spec.guarantee.acks_before_task
        draws = self._draws()

        while True:
            if not held and not queue.items:
                self._deliver((yield queue.get()), worker, held)
            while len(held) < spec.prefetch and queue.items:
                self._deliver(queue.items.popleft(), worker, held)

            message_id = held[0]
            attempt = self.attempts[message_id]
            draw = next(draws, None)
            if draw is None:
                draws = self._draws()
                draw = next(draws)
            crash, after_effect, task_s = draw
            yield env.timeout(task_s)
            if crash and not after_effect:
                yield from self._crash(worker, held, ack_first)
                continue

            self._effect(message_id, worker, attempt)
            if crash:
                yield from self._crash(worker, held, ack_first)
                continue
            held.pop(0)
            if not ack_first:
                self.append((env.now, Event.ACKED, message_id, worker, attempt, ""))
            self._settle()

    def _deliver(self, message_id: str, worker: str, held: list[str]) -> None:
        """The broker hands ``message_id`` over; at-most-once acks right here."""
        attempt = self.attempts.get(message_id, 0) + 1
        self.attempts[message_id] = attempt
        held.append(message_id)
        now = self.env.now
        self.append((now, Event.DELIVERED, message_id, worker, attempt, ""))
        if self.spec.guarantee.acks_before_task:
            self.append((now, Event.ACKED, message_id, worker, attempt, ""))

    def _draws(self) -> Iterator[tuple[bool, bool, float]]:
        spec, rng, size = self.spec, self.rng, 4096
        crash = rng.random(size) < spec.crash_p
        after = rng.random(size) < spec.crash_after_effect
        if spec.task_jitter:
            task = rng.exponential(spec.task_s, size)
        else:
            task = np.full(size, spec.task_s)
        return iter(zip(crash.tolist(), after.tolist(), task.tolist(), strict=True))

    def _effect(self, message_id: str, worker: str, attempt: int) -> None:
        event = Event.PROCESSED
        if self.spec.guarantee.idempotent:
            if message_id in self.applied:
                event = Event.DEDUPLICATED
            self.applied.add(message_id)
        self.append((self.env.now, event, message_id, worker, attempt, ""))

    def _crash(self, worker: str, held: list[str], ack_first: bool) -> Process:
        """The consumer dies holding ``held``: lost if acked, else redelivered."""
        env, spec = self.env, self.spec
        self.ledger.record(Event.FAULT, "", worker=worker, detail="crash", t=env.now)
        lost_or_back = list(held)
        held.clear()
        if ack_first:
            for _ in lost_or_back:
                self._settle()  # acked already: gone for good
        else:
            env.process(self._redeliver(lost_or_back))
        yield env.timeout(spec.restart_s)

    def _redeliver(self, message_ids: list[str]) -> Process:
        yield self.env.timeout(self.spec.redelivery_s)
        for message_id in message_ids:
            self.queue.put(message_id)
