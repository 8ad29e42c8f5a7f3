"""Run an experiment spec, simulated or on real brokers, into a result.

On real brokers the runner is the producer and the supervisor:

1. it starts one worker process per consumer (``queuelab.experiments.worker``)
   and waits until each consumes;
2. it publishes at the workload's arrival times, with confirms;
3. it fires the spec's broker faults at their times, on a private broker of
   its own, never on a shared one;
4. it replaces a worker that died, after ``restart_s``, as a supervisor would;
5. it samples the queue depth from the broker every ``SAMPLE_EVERY_S``;
6. when the queue is empty and no effect has been applied for a while, it stops
   the workers and merges its ledger, theirs and the effect log into one.
"""

import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from aio_pika.exceptions import AMQPError
from redis.exceptions import RedisError
from tqdm.auto import tqdm

from queuelab import envelope as codec
from queuelab.aio import run_sync
from queuelab.brokers import (
    Broker,
    find_rabbitmq,
    find_redis,
    start_private_rabbitmq,
    start_private_redis,
)
from queuelab.errors import ConfigError, QueuelabError
from queuelab.experiments import redis_backends
from queuelab.experiments.effects import EffectLog
from queuelab.experiments.result import ExperimentResult, environment
from queuelab.experiments.spec import Backend, ExperimentSpec, Fault, FaultKind
from queuelab.experiments.worker import BROKER_URL_ENV, EFFECTS_URL_ENV
from queuelab.ledger import Event, Ledger, read_events
from queuelab.rabbitmq.connection import connect
from queuelab.rabbitmq.producer import Producer
from queuelab.rabbitmq.topology import declare_work_queue, queue_depth
from queuelab.sim import SimSpec, simulate

log = logging.getLogger(__name__)

Send = Callable[[codec.Envelope], Awaitable[None]]

SAMPLE_EVERY_S = 0.1
CONFIRM_WINDOW = 200
WORKER_START_S = 30


def run(spec: ExperimentSpec, **options: object) -> ExperimentResult:
    """:func:`run_async` from synchronous code (a script or a notebook cell)."""
    return run_sync(run_async(spec, **options))  # type: ignore[arg-type]


async def run_async(
    spec: ExperimentSpec,
    *,
    amqp_url: str | None = None,
    redis_url: str | None = None,
    progress: bool = False,
) -> ExperimentResult:
    """Run ``spec`` and return its result; see the module docstring."""
    if spec.backend is Backend.SIM:
        return simulated(spec)
    return await _Real(spec, amqp_url, redis_url, progress).run()


def simulated(spec: ExperimentSpec) -> ExperimentResult:
    """The spec in the SimPy model, in virtual time."""
    sim = simulate(
        SimSpec(
            arrivals_s=spec.workload.arrivals(spec.seed).tolist(),
            guarantee=spec.guarantee,
            consumers=spec.consumers,
            task_s=spec.task_s,
            prefetch=spec.prefetch,
            crash_p=spec.crash_p,
            crash_after_effect=spec.crash_after_effect,
            redelivery_s=spec.redelivery_s,
            restart_s=spec.restart_s,
            sample_every_s=SAMPLE_EVERY_S,
            seed=spec.seed,
        )
    )
    return ExperimentResult(spec, sim.ledger, sim.depth, environment(broker="SimPy"))


@dataclass
class _Real:
    spec: ExperimentSpec
    amqp_url: str | None
    redis_url: str | None
    progress: bool
    ledger: Ledger = field(default_factory=Ledger)
    depth: list[tuple[float, int]] = field(default_factory=list)
    stopping: bool = False
    published: int = 0  # messages handed to the producer so far
    progress_made: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def run(self) -> ExperimentResult:
        spec = self.spec
        self.run_id = f"{spec.name}-{uuid.uuid4().hex[:6]}"
        self.queue = f"queuelab.exp.{self.run_id}"
        effects_broker = find_redis(self.redis_url)
        if not effects_broker.is_real:
            raise ConfigError("experiments need a real Redis for the effect log")
        self.on_redis = spec.backend is not Backend.RABBITMQ
        if spec.needs_private_broker:
            broker = (
                start_private_redis() if self.on_redis else start_private_rabbitmq()
            )
        elif self.on_redis:
            broker = effects_broker
        else:
            broker = find_rabbitmq(self.amqp_url)
        self.broker = broker
        redis = effects_broker.redis()
        self.effects_url = effects_broker.url
        self.effects = EffectLog(redis, self.run_id, idempotent=False)
        self._ready = {f"c{i}": asyncio.Event() for i in range(spec.consumers)}
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._spares: dict[str, asyncio.subprocess.Process] = {}
        try:
            with tempfile.TemporaryDirectory(prefix="queuelab-run-") as folder:
                self.folder = Path(folder)
                frame = await self._run_in(broker)
        finally:
            await self.effects.delete()
            await redis.aclose()
            if broker is not effects_broker:
                broker.close()

        meta = environment(
            broker=broker.describe(),
            broker_version=broker.version,
            effects=effects_broker.describe(),
            run_id=self.run_id,
        )
        depth = pd.DataFrame(self.depth, columns=["t_s", "depth"])
        return ExperimentResult(spec, frame, depth, meta)

    async def _run_in(self, broker: Broker) -> pd.DataFrame:
        await self._open_queue(broker)
        supervisors = [
            asyncio.create_task(self._supervise(f"c{i}"))
            for i in range(self.spec.consumers)
        ]
        await self._wait_ready()
        self.t0 = time.monotonic()
        helpers = [asyncio.create_task(self._sample())]
        helpers += [asyncio.create_task(self._fire(f)) for f in self.spec.faults]
        if self.on_redis and self.spec.backend is Backend.REDIS_LIST:
            helpers.append(asyncio.create_task(self._reap()))
        try:
            await self._produce(broker.url)
            await self._settle()
        finally:
            self.stopping = True
            for task in helpers:
                task.cancel()
            await self._stop_workers(supervisors)
            await self._close_queue()

        return await self._merge()

    # The queue, on either broker ------------------------------------------

    async def _open_queue(self, broker: Broker) -> None:
        if self.on_redis:
            self.queue_client = broker.redis()
            await redis_backends.prepare(
                self.queue_client, self.spec.backend, self.queue
            )
            return
        self.connection = await connect(broker.url)
        self.channel = await self.connection.channel()
        await declare_work_queue(self.channel, self.queue)

    async def _depth(self) -> int:
        if self.on_redis:
            return await redis_backends.depth(
                self.queue_client, self.spec.backend, self.queue
            )
        return await queue_depth(self.channel, self.queue)

    async def _close_queue(self) -> None:
        if self.on_redis:
            await redis_backends.delete(self.queue_client, self.queue)
            await self.queue_client.aclose()
            return
        await self.channel.queue_delete(self.queue)
        await self.connection.close()

    async def _reap(self) -> None:
        """The reliable list's reaper: a dead worker's tasks go back."""
        while True:
            await asyncio.sleep(redis_backends.VISIBILITY_S / 2)
            with contextlib.suppress(RedisError):
                await redis_backends.reap(self.queue_client, self.queue)

    # Workers ------------------------------------------------------------

    async def _spawn(self, name: str, generation: int) -> asyncio.subprocess.Process:
        """A spare worker: started and imported, waiting for ``go``."""
        env = {BROKER_URL_ENV: self.broker.url, EFFECTS_URL_ENV: self.effects_url}
        stem = self.folder / f"{name}.{generation}"
        with stem.with_suffix(".err").open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "queuelab.experiments.worker",
                "--spec",
                self.spec.to_json(),
                "--worker",
                name,
                "--queue",
                self.queue,
                "--run-id",
                self.run_id,
                "--ledger",
                str(stem.with_suffix(".jsonl")),
                "--generation",
                str(generation),
                env={**os.environ, **env},
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        self._spares[name] = proc
        await self._expect(proc, b"standby", stem)
        return proc

    async def _expect(
        self, proc: asyncio.subprocess.Process, word: bytes, stem: Path
    ) -> None:
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        if line.strip() != word:
            err = stem.with_suffix(".err").read_text()[-500:].strip()
            raise ConfigError(f"worker {stem.name} did not start: {err}")

    async def _supervise(self, name: str) -> None:
        """Keep one worker consuming under ``name``, replacing it when it dies."""
        generation = 0
        spare = await self._spawn(name, generation)
        while not self.stopping:
            proc = spare
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await self._expect(proc, b"ready", self.folder / f"{name}.{generation}")
            self._procs[name] = proc
            self._ready[name].set()
            spare = await self._spawn(name, generation + 1)

            code = await proc.wait()
            if self.stopping:
                return
            if code != -signal.SIGKILL:  # a worker's own crash is SIGKILL
                err = (self.folder / f"{name}.{generation}.err").read_text()[-500:]
                log.warning(
                    "worker %s exited with %s on %s: %s",
                    name,
                    code,
                    self.queue,
                    err.strip(),
                )
                self.ledger.record(
                    Event.FAULT, "", worker=name, detail=f"worker exited with {code}"
                )
            await asyncio.sleep(self.spec.restart_s)
            generation += 1

    async def _wait_ready(self) -> None:
        waits = (event.wait() for event in self._ready.values())
        try:
            await asyncio.wait_for(asyncio.gather(*waits), WORKER_START_S)
        except TimeoutError:
            errors = " | ".join(p.read_text()[-300:] for p in self.folder.glob("*.err"))
            raise ConfigError(
                f"workers did not start within {WORKER_START_S} s: {errors}"
            ) from None

    async def _stop_workers(self, supervisors: list["asyncio.Task[None]"]) -> None:
        for spare in self._spares.values():
            if spare.stdin is not None and spare.returncode is None:
                spare.stdin.close()  # a spare exits on end of input
        for proc in self._procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self._procs.values(), *self._spares.values()]:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
        for task in supervisors:
            task.cancel()

    # Producer, faults, depth -----------------------------------------------

    async def _produce(self, url: str) -> None:
        """Publish at the workload's arrival times; confirmed when the broker says."""
        times = self.spec.workload.arrivals(self.spec.seed)
        bar = tqdm(
            total=len(times),
            desc=self.spec.name,
            unit="msg",
            disable=None if self.progress else True,
            leave=False,
        )
        slots = asyncio.Semaphore(CONFIRM_WINDOW)

        async def one(send: Send, envelope: codec.Envelope) -> None:
            try:
                await send(envelope)
            except (AMQPError, RedisError, OSError, RuntimeError, QueuelabError) as exc:
                log.warning(
                    "publish of %s to %s failed: %s", envelope.id, self.queue, exc
                )
            finally:
                slots.release()
                bar.update()

        async with self._sender(url) as send, asyncio.TaskGroup() as group:
            for seq, at in enumerate(times):
                delay = self.t0 + at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await slots.acquire()
                envelope = codec.new({"n": seq}, seq, message_id=f"m{seq}")
                group.create_task(one(send, envelope))
                async with self.progress_made:
                    self.published += 1
                    self.progress_made.notify_all()
        bar.close()

    @contextlib.asynccontextmanager
    async def _sender(self, url: str) -> AsyncIterator[Send]:
        if not self.on_redis:
            async with Producer(url, self.queue, ledger=self.ledger) as producer:
                yield producer.publish
            return

        async def push(envelope: codec.Envelope) -> None:
            # A reply to the push is Redis's confirm: it holds the message (in
            # memory: without persistence a restart still loses it).
            self.ledger.record(Event.PUBLISHED, envelope.id, worker="producer")
            await redis_backends.push(client, self.spec.backend, self.queue, envelope)
            self.ledger.record(Event.CONFIRMED, envelope.id, worker="producer")

        client = self.broker.redis()
        try:
            yield push
        finally:
            await client.aclose()

    async def _fire(self, fault: Fault) -> None:
        if fault.at_s is not None:
            await asyncio.sleep(max(0.0, self.t0 + fault.at_s - time.monotonic()))
        async with self.progress_made:
            await self.progress_made.wait_for(
                lambda: self.published >= (fault.after_messages or 0)
            )
        server = self.broker.server
        if server is None:
            raise ConfigError("broker faults need a private broker")
        self.ledger.record(Event.FAULT, "", worker="broker", detail=fault.kind.value)
        if fault.kind is FaultKind.RESTART_BROKER:
            await asyncio.to_thread(server.restart)
        elif self.on_redis:  # drop every client connection but this one
            await self.queue_client.client_kill_filter(_type="normal", skipme=True)
        else:
            await asyncio.to_thread(server.close_all_connections)  # type: ignore[attr-defined]

    async def _sample(self) -> None:
        while True:
            try:
                count = await self._depth()
                self.depth.append((time.monotonic() - self.t0, count))
            except (AMQPError, RedisError, OSError, RuntimeError):
                pass  # the broker is restarting: no sample
            await asyncio.sleep(SAMPLE_EVERY_S)

    async def _settle(self) -> None:
        """Wait until the queue is empty and effects have stopped coming."""
        quiet_s = max(1.0, 20 * self.spec.task_s, 3 * self.spec.restart_s)
        last_count, last_change = -1, time.monotonic()
        while True:
            await asyncio.sleep(SAMPLE_EVERY_S)
            count = await self.effects.count()
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            empty = bool(self.depth) and self.depth[-1][1] == 0
            if empty and time.monotonic() - last_change > quiet_s:
                return

    async def _merge(self) -> pd.DataFrame:
        frames = [self.ledger.frame(), await self.effects.events()]
        frames += [read_events(path) for path in sorted(self.folder.glob("*.jsonl"))]
        merged = pd.concat(frames, ignore_index=True)
        # "processed" comes from the effect log alone: a worker killed after its
        # effect never wrote its own line, and one that did would count twice.
        own = (merged.event == Event.PROCESSED.value) & (merged.detail != "effect")
        return merged[~own].sort_values("t", kind="stable").reset_index(drop=True)
