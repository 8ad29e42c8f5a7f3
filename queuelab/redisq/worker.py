"""A worker process for fault experiments: ``python -m queuelab.redisq.worker``.

An experiment that kills a worker must kill a real process (SIGKILL: no
cleanup, no last words), so the worker runs in a process of its own and writes
every ledger event to a file the moment it happens, one JSON line each,
flushed. What it recorded before the kill survives the kill, and the
experiment merges the files into one ledger (``queuelab.ledger.read_events``).
The Redis URL comes from ``QUEUELAB_REDIS_URL``, not the command line, where
any local user could read its password.

SIGTERM and SIGINT stop it gently: it finishes the task in hand and exits.

    QUEUELAB_REDIS_URL=redis://127.0.0.1:6379/0 python -m queuelab.redisq.worker \\
        --backend reliable --queue jobs --worker w1 --ledger w1.jsonl --task-s 0.05
"""

import argparse
import asyncio
import logging
import os
import signal
from enum import StrEnum
from pathlib import Path

import redis.asyncio

from queuelab.brokers import REDIS_ENV, redis_client
from queuelab.envelope import Envelope
from queuelab.ledger import FileLedger
from queuelab.redisq.consumer import consume
from queuelab.redisq.list_queue import ListQueue
from queuelab.redisq.reliable_queue import ReliableListQueue
from queuelab.redisq.streams import StreamQueue, consume_stream

log = logging.getLogger(__name__)


class Backend(StrEnum):
    BRPOP = "brpop"  # the seed's LPUSH/BRPOP list
    RELIABLE = "reliable"  # BLMOVE into a processing list
    STREAM = "stream"  # a consumer group on a stream


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m queuelab.redisq.worker")
    parser.add_argument("--backend", type=Backend, choices=list(Backend), required=True)
    parser.add_argument("--queue", required=True, help="list key or stream key")
    parser.add_argument("--worker", required=True, help="this worker's name")
    parser.add_argument("--ledger", type=Path, required=True, help="JSON-lines file")
    parser.add_argument("--task-s", type=float, default=0.05, help="each task's time")
    parser.add_argument("--visibility-s", type=float, default=1.0)
    parser.add_argument("--group", default="workers", help="stream consumer group")
    parser.add_argument("--min-idle-s", type=float, default=None)
    parser.add_argument("--count", type=int, default=1, help="stream entries a read")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def task(envelope: Envelope) -> None:
        await asyncio.sleep(args.task_s)

    client = redis_client(os.environ[REDIS_ENV])
    ledger = FileLedger(args.ledger)
    try:
        log.info("%s consuming %s (%s)", args.worker, args.queue, args.backend)
        if args.backend is Backend.STREAM:
            stream = StreamQueue(client, args.queue, args.group, consumer=args.worker)
            await stream.ensure_group()
            await consume_stream(
                stream,
                task,
                stop=stop,
                ledger=ledger,
                worker=args.worker,
                count=args.count,
                min_idle_s=args.min_idle_s,
            )
            await stream.close()
        else:
            queue = _list_queue(client, args)
            await consume(queue, task, stop=stop, ledger=ledger, worker=args.worker)
            await queue.close()
    finally:
        ledger.close()
    await client.aclose()


def _list_queue(
    client: "redis.asyncio.Redis", args: argparse.Namespace
) -> ListQueue | ReliableListQueue:
    if args.backend is Backend.BRPOP:
        return ListQueue(client, args.queue)
    return ReliableListQueue(
        client, args.queue, worker=args.worker, visibility_timeout_s=args.visibility_s
    )


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    main()
