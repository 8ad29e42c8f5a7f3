"""Kill workers mid-task and count what each Redis list queue lost.

A queue of tasks, a few workers taking them, and every so often one worker
killed while it holds a task: with SIGKILL, so it gets no chance to put the
task back. The workers are real processes (``python -m
queuelab.redisq.worker``) that write their ledgers to files; the experiment
merges them with its own (published, and the kills as faults) and the checker
counts what was lost and what ran twice.

With the seed's BRPOP queue, the task a killed worker held is gone. With the
reliable queue it waits in the dead worker's processing list until its lease
expires; a reaper running here returns it, and another worker runs it.

On the embedded fakeredis no other process can reach the broker, so there the
workers are tasks of this process and a kill is a cancellation; the result says
which it was.
"""

import asyncio
import contextlib
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import redis.asyncio
from tqdm.auto import tqdm

from queuelab.brokers import REDIS_ENV, Broker, start_private_redis
from queuelab.envelope import Envelope
from queuelab.errors import BrokerError
from queuelab.experiments.roundtrip import workload
from queuelab.ledger import CheckResult, Event, Ledger, check, read_events
from queuelab.redisq.consumer import consume
from queuelab.redisq.list_queue import ListQueue
from queuelab.redisq.reliable_queue import ReliableListQueue, run_reaper
from queuelab.redisq.worker import Backend

DRAIN_TIMEOUT_S = 60.0


@dataclass
class KillRun:
    """What one kill experiment produced."""

    backend: str
    ledger: pd.DataFrame
    verdict: CheckResult
    kills: int
    # Tasks the killed workers' ledgers show taken and not finished; a worker
    # killed between taking a task and writing its ledger line is not counted.
    held_at_kill: int
    left: int  # tasks Redis still held at the end (queue and processing lists)
    how: str  # "SIGKILL to worker processes" or "cancelled worker tasks"

    def as_row(self) -> dict[str, object]:
        counts = self.verdict.counts()
        return {
            "backend": self.backend,
            "tasks": counts["published"],
            "kills": self.kills,
            "held at kill": self.held_at_kill,
            "processed": counts["processed"],
            "lost": counts["lost"],
            "duplicated": counts["duplicated"],
            "left in Redis": self.left,
        }


@dataclass
class _Worker:
    name: str
    ledger_path: Path | None = None
    process: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None
    ledger: Ledger = field(default_factory=Ledger)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    queue: ListQueue | ReliableListQueue | None = None

    def frame(self) -> pd.DataFrame:
        if self.ledger_path is not None:
            return read_events(self.ledger_path)
        return self.ledger.frame()

    def delivered(self) -> int:
        frame = self.frame()
        return int((frame.event == Event.DELIVERED).sum())


async def kill_workers(
    broker: Broker,
    backend: Backend | str,
    *,
    tasks: int = 300,
    workers: int = 2,
    kills: int = 4,
    task_s: float = 0.02,
    visibility_timeout_s: float = 0.5,
    seed: int = 0,
    progress: bool = False,
) -> KillRun:
    """Run ``tasks`` through ``workers`` workers, killing one ``kills`` times."""
    backend = Backend(backend)
    if backend is Backend.STREAM:
        raise BrokerError("kill_workers runs the list queues (brpop, reliable)")
    run = _KillExperiment(broker, backend, task_s, visibility_timeout_s)
    return await run.execute(tasks, workers, kills, random.Random(seed), progress)


class _KillExperiment:
    def __init__(
        self, broker: Broker, backend: Backend, task_s: float, visibility_s: float
    ) -> None:
        self.broker = broker
        self.backend = backend
        self.task_s = task_s
        self.visibility_s = visibility_s
        self.processes = broker.is_real
        self.name = f"queuelab:kill:{uuid.uuid4().hex[:8]}"
        self.folder = Path(tempfile.mkdtemp(prefix="queuelab-kill-"))
        self.client = broker.redis()
        self.queue = self._queue(self.client, "reaper")
        self.ledger = Ledger()
        self.killed: list[_Worker] = []
        self.spawned = 0

    def _queue(
        self, client: "redis.asyncio.Redis", worker: str
    ) -> ListQueue | ReliableListQueue:
        if self.backend is Backend.BRPOP:
            return ListQueue(client, self.name)
        return ReliableListQueue(
            client, self.name, worker=worker, visibility_timeout_s=self.visibility_s
        )

    async def execute(
        self, tasks: int, workers: int, kills: int, rng: random.Random, progress: bool
    ) -> KillRun:
        stop_reaper = asyncio.Event()
        reaper = None
        if isinstance(self.queue, ReliableListQueue):
            interval_s = self.visibility_s / 2
            reaper = asyncio.create_task(
                run_reaper(self.queue, stop=stop_reaper, interval_s=interval_s)
            )
        live: list[_Worker] = []
        try:
            for envelope in workload(tasks, body_bytes=16):
                self.ledger.record(Event.PUBLISHED, envelope.id, worker="producer")
                await self.queue.push(envelope)
            live = [await self._spawn() for _ in range(workers)]
            bar = tqdm(
                total=kills, desc=f"kills ({self.backend})", disable=not progress
            )
            for k in range(kills):
                slot = k % workers
                if not await self._kill_when_busy(live[slot], rng):
                    break
                live[slot] = await self._spawn()
                bar.update()
            bar.close()
            await self._drain()
        finally:
            await self._stop(live)
            stop_reaper.set()
            if reaper is not None:
                await reaper
        return await self._result(live)

    async def _spawn(self) -> _Worker:
        name = f"w{self.spawned}"
        self.spawned += 1
        worker = _Worker(name)
        if self.processes:
            worker.ledger_path = self.folder / f"{name}.jsonl"
            worker.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "queuelab.redisq.worker",
                "--backend", self.backend.value,
                "--queue", self.name,
                "--worker", name,
                "--ledger", str(worker.ledger_path),
                "--task-s", str(self.task_s),
                "--visibility-s", str(self.visibility_s),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=(self.folder / f"{name}.log").open("wb"),
                env={**os.environ, REDIS_ENV: self.broker.url},
            )  # fmt: skip
            return worker

        async def task(envelope: Envelope) -> None:
            await asyncio.sleep(self.task_s)

        worker.queue = self._queue(self.broker.redis(), name)
        worker.task = asyncio.create_task(
            consume(
                worker.queue,
                task,
                stop=worker.stop,
                ledger=worker.ledger,
                worker=name,
            )
        )
        return worker

    async def _kill_when_busy(self, worker: _Worker, rng: random.Random) -> bool:
        """Kill ``worker`` a random moment after it took its first task."""
        deadline = time.monotonic() + 20
        while worker.delivered() == 0:
            if time.monotonic() > deadline or await self.queue.length() == 0:
                return False
            await asyncio.sleep(0.02)
        await asyncio.sleep(rng.uniform(2, 6) * self.task_s)
        if await self.queue.length() == 0:
            return False

        if worker.process is not None:
            os.kill(worker.process.pid, signal.SIGKILL)
            await worker.process.wait()
        elif worker.task is not None:
            await _cancel(worker.task)
            if isinstance(worker.queue, ReliableListQueue):
                await worker.queue.close(release=False)
            elif worker.queue is not None:
                await worker.queue.close()
        self.ledger.record(Event.FAULT, "", worker=worker.name, detail="killed")
        self.killed.append(worker)
        return True

    async def _drain(self) -> None:
        """Wait until Redis holds no task (the reaper returns the dead's)."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            held = await self.queue.length()
            if isinstance(self.queue, ReliableListQueue):
                held += await self.queue.in_flight()
            if held == 0:
                return
            await asyncio.sleep(0.05)

    async def _stop(self, live: list[_Worker]) -> None:
        for worker in live:
            worker.stop.set()
            if worker.process is not None and worker.process.returncode is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in live:
            if worker.process is not None:
                await worker.process.wait()
            if worker.task is not None:
                await worker.task
            if worker.queue is not None:
                await worker.queue.close()
                await worker.queue.client.aclose()

    async def _result(self, live: list[_Worker]) -> KillRun:
        for worker in [*self.killed, *live]:
            self.ledger.extend(worker.frame())
        held = 0
        for worker in self.killed:
            frame = worker.frame()
            delivered = set(frame.message_id[frame.event == Event.DELIVERED])
            held += len(
                delivered - set(frame.message_id[frame.event == Event.PROCESSED])
            )
            if worker.queue is not None:
                await worker.queue.client.aclose()

        left = await self.queue.length()
        if isinstance(self.queue, ReliableListQueue):
            left += await self.queue.in_flight()
        await self.queue.delete()
        await self.queue.close()
        await self.client.aclose()
        shutil.rmtree(self.folder, ignore_errors=True)

        frame = self.ledger.frame()
        how = (
            "SIGKILL to worker processes"
            if self.processes
            else "cancelled worker tasks"
        )
        return KillRun(
            self.backend.value, frame, check(frame), len(self.killed), held, left, how
        )


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has ended.

    Cancel again while it runs on: on Python 3.11 ``asyncio.wait_for`` (which
    fakeredis uses inside every read) can swallow a cancellation that arrives
    as its inner wait completes.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.1)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()


async def slow_tasks(
    broker: Broker,
    *,
    tasks: int = 20,
    visibility_timeout_s: float = 0.1,
    max_attempts: int = 3,
    consumers: int = 2,
    seed: int = 0,
) -> tuple[pd.DataFrame, CheckResult]:
    """Tasks of random length around the visibility timeout, with a reaper.

    Nobody dies here, yet the reaper cannot tell a slow worker from a dead
    one: every task still running when its lease expires is returned and run
    again, until it is dead-lettered after ``max_attempts``. Returns a table of
    each task's length and runs, and the checker's verdict.
    """
    rng = random.Random(seed)
    name = f"queuelab:slow:{uuid.uuid4().hex[:8]}"
    ledger, stop = Ledger(), asyncio.Event()
    clients = [broker.redis() for _ in range(consumers + 1)]
    reaper = ReliableListQueue(
        clients[0], name, worker="reaper", max_attempts=max_attempts
    )
    queues = [
        ReliableListQueue(
            client,
            name,
            worker=f"c{i}",
            visibility_timeout_s=visibility_timeout_s,
            max_attempts=max_attempts,
        )
        for i, client in enumerate(clients[1:])
    ]
    lengths: dict[str, float] = {}
    for envelope in workload(tasks, body_bytes=16):
        lengths[envelope.id] = rng.uniform(0.2, 2.0) * visibility_timeout_s
        ledger.record(Event.PUBLISHED, envelope.id, worker="producer")
        await reaper.push(envelope)

    async def task(envelope: Envelope) -> None:
        await asyncio.sleep(lengths[envelope.id])

    async with asyncio.TaskGroup() as group:
        group.create_task(
            run_reaper(reaper, stop=stop, interval_s=visibility_timeout_s)
        )
        for i, queue in enumerate(queues):
            group.create_task(
                consume(
                    queue, task, stop=stop, ledger=ledger, worker=f"c{i}", block_s=0.1
                )
            )
        await _wait_until_empty(reaper)
        stop.set()
    await reaper.delete()
    for queue in queues:
        await queue.close()
    for client in clients:
        await client.aclose()

    frame = ledger.frame()
    runs = frame[frame.event == Event.PROCESSED].message_id.value_counts()
    table = pd.DataFrame({"task_s": pd.Series(lengths)})
    table["runs"] = runs.reindex(table.index, fill_value=0)
    table["longer_than_timeout"] = table.task_s > visibility_timeout_s
    return table.sort_values("task_s").reset_index(drop=True), check(frame)


async def _wait_until_empty(queue: ReliableListQueue) -> None:
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        if await queue.length() + await queue.in_flight() == 0:
            return
        await asyncio.sleep(0.05)


@dataclass(frozen=True)
class RestartRun:
    """Tasks queued before and after a restart of a private redis-server."""

    appendonly: bool
    before: int
    after: int


async def restart_redis(tasks: int = 100, *, appendonly: bool = False) -> RestartRun:
    """Queue ``tasks`` on a private Redis, restart it, count what is still queued."""
    broker = start_private_redis(appendonly=appendonly)
    name = "queuelab:restart"
    try:
        client = broker.redis()
        queue = ListQueue(client, name)
        for envelope in workload(tasks, body_bytes=16):
            await queue.push(envelope)
        before = await queue.length()
        await client.aclose()
        assert broker.server is not None
        broker.server.restart()

        client = broker.redis()
        after = await ListQueue(client, name).length()
        await client.aclose()
    finally:
        broker.close()
    return RestartRun(appendonly, before, after)
