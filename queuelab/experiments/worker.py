"""A worker process for experiments on real brokers.

The runner starts one of these per consumer with ``python -m
queuelab.experiments.worker``. It consumes with the spec's guarantee, runs
the task (sleep ``task_s``, then apply the effect), and may kill itself with
SIGKILL at the crash point drawn for each delivery: before the effect, or
between the effect and the ack. Every event it sees goes to a file ledger that
survives the kill; the effect goes to the run's effect log in Redis.

A worker starts as a spare: it imports, opens its ledger and prints
``standby``, then waits for ``go`` on standard input. The runner keeps one
spare per consumer, so replacing a dead worker costs a connection, not a
Python start-up (which would make every crash look a second long). Once it
consumes it prints ``ready``, and it stops cleanly on SIGTERM. Broker
URLs come through the environment, not the command line, where any local
user could read their passwords.
"""

import argparse
import asyncio
import logging
import os
import random
import signal
import sys
from pathlib import Path

import redis
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_fixed,
)

from queuelab.brokers import redis_client
from queuelab.envelope import Envelope
from queuelab.errors import EnvelopeError
from queuelab.experiments.effects import EffectLog
from queuelab.experiments.redis_backends import RedisSource, Taken
from queuelab.experiments.spec import Backend, ExperimentSpec
from queuelab.ledger import Event, FileLedger
from queuelab.rabbitmq.consumer import AckMode, Consumer

log = logging.getLogger(__name__)

BROKER_URL_ENV = "QUEUELAB_WORKER_BROKER_URL"
EFFECTS_URL_ENV = "QUEUELAB_WORKER_EFFECTS_URL"
RETRY_S = 0.2  # between attempts while the broker is away


class CrashingTask:
    """The task: work for ``task_s``, apply the effect, maybe die on the way."""

    def __init__(
        self,
        spec: ExperimentSpec,
        effects: EffectLog,
        ledger: FileLedger,
        worker: str,
        seed: str,
    ) -> None:
        self.spec = spec
        self.effects = effects
        self.ledger = ledger
        self.worker = worker
        self.rng = random.Random(seed)

    async def __call__(self, envelope: Envelope) -> None:
        crash = self.rng.random() < self.spec.crash_p
        after_effect = self.rng.random() < self.spec.crash_after_effect
        await asyncio.sleep(self.spec.task_s)
        if crash and not after_effect:
            self._die(envelope, "before the effect")

        applied = await self.effects.apply(envelope.id, self.worker, envelope.attempt)
        if not applied:
            self.ledger.record(
                Event.DEDUPLICATED,
                envelope.id,
                worker=self.worker,
                attempt=envelope.attempt,
            )
        if crash:
            self._die(envelope, "after the effect, before the ack")

    def _die(self, envelope: Envelope, where: str) -> None:
        self.ledger.record(
            Event.FAULT,
            envelope.id,
            worker=self.worker,
            detail=f"worker killed {where}",
        )
        os.kill(os.getpid(), signal.SIGKILL)


async def serve(args: argparse.Namespace) -> None:
    spec = ExperimentSpec.from_json(args.spec)
    ledger = FileLedger(Path(args.ledger))
    client = redis_client(os.environ[EFFECTS_URL_ENV])
    effects = EffectLog(client, args.run_id, idempotent=spec.guarantee.idempotent)
    seed = f"{spec.seed}:{args.worker}:{args.generation}"
    task = CrashingTask(spec, effects, ledger, args.worker, seed)

    print("standby", flush=True)
    loop = asyncio.get_running_loop()
    if (await loop.run_in_executor(None, sys.stdin.readline)).strip() != "go":
        return  # the runner is done and closed our standard input
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    if spec.backend is Backend.RABBITMQ:
        await _consume_rabbitmq(spec, args, task, ledger, stop)
    else:
        await _consume_redis(spec, args, task, ledger, stop)
    await client.aclose()
    ledger.close()


async def _consume_rabbitmq(
    spec: ExperimentSpec,
    args: argparse.Namespace,
    task: CrashingTask,
    ledger: FileLedger,
    stop: asyncio.Event,
) -> None:
    ack = AckMode.BEFORE if spec.guarantee.acks_before_task else AckMode.AFTER
    consumer = Consumer(
        os.environ[BROKER_URL_ENV],
        args.queue,
        task,
        prefetch=spec.prefetch,
        ack=ack,
        ledger=ledger,
        worker=args.worker,
    )
    await consumer.start()
    print("ready", flush=True)
    await stop.wait()
    await consumer.stop()


async def _consume_redis(
    spec: ExperimentSpec,
    args: argparse.Namespace,
    task: CrashingTask,
    ledger: FileLedger,
    stop: asyncio.Event,
) -> None:
    """Take, settle and run tasks one at a time, in the guarantee's order."""
    client = redis_client(os.environ[BROKER_URL_ENV])
    source = RedisSource(client, spec.backend, spec.guarantee, args.queue, args.worker)
    ack_first = spec.guarantee.acks_before_task or source.settles_on_take
    name = args.worker
    print("ready", flush=True)
    while not stop.is_set():
        try:
            taken = await source.take()
        except redis.RedisError as exc:  # the broker is restarting or dropped us
            log.warning("%s: cannot take from %s: %s", name, args.queue, exc)
            await asyncio.sleep(RETRY_S)
            continue
        except EnvelopeError:
            continue
        if taken is None:
            continue

        envelope = taken.envelope
        ledger.record(
            Event.DELIVERED, envelope.id, worker=name, attempt=envelope.attempt
        )
        if ack_first:
            await _settle(source, taken, ledger, name)
        await task(envelope)
        if not ack_first:
            await _settle(source, taken, ledger, name)
    await source.close()
    await client.aclose()


async def _settle(
    source: RedisSource, taken: Taken, ledger: FileLedger, worker: str
) -> None:
    envelope = taken.envelope
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(redis.RedisError),
        wait=wait_fixed(RETRY_S),
        stop=stop_after_delay(30),
        reraise=True,
    ):
        with attempt:
            await source.settle(taken)
    ledger.record(Event.ACKED, envelope.id, worker=worker, attempt=envelope.attempt)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m queuelab.experiments.worker")
    for name in ("spec", "worker", "queue", "run-id", "ledger"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--generation", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
