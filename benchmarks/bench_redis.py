"""Push and pop throughput of queuelab's Redis queues, beside plain clients.

Every operation is measured three ways in the same run, on the same server,
one connection, one request at a time (no pipelining):

- queuelab: the queue's own method (encoding the envelope included);
- redis-py: plain redis.asyncio sending the same commands with bytes ready;
- redis-benchmark: the C client sending the same command, where one command
  is the whole operation (skipped, with the reason, where it is not).

The server is a private redis-server when the binary is installed (so
redis-benchmark's keys never land on a shared server), else whatever
``find_redis`` serves; the table says which.
"""

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import pandas as pd

from queuelab import envelope as codec
from queuelab.brokers import Broker, find_redis, start_private_redis
from queuelab.experiments import workload
from queuelab.redisq import (
    ListQueue,
    PriorityQueue,
    ReliableListQueue,
    SeedPriorityQueue,
    StreamQueue,
)
from queuelab.redisq.priority import _PUSH, COUNTER_BITS

Step = Callable[[int], Awaitable[object]]


@dataclass
class Row:
    pattern: str
    operation: str
    queuelab: float
    redis_py: float
    redis_benchmark: float | None
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "pattern": self.pattern,
            "operation": self.operation,
            "queuelab_ops_s": round(self.queuelab),
            "redis_py_ops_s": round(self.redis_py),
            "redis_benchmark_ops_s": (
                round(self.redis_benchmark) if self.redis_benchmark else None
            ),
            "queuelab_vs_redis_py": round(self.queuelab / self.redis_py, 2),
            "note": self.note,
        }


async def _rate(n: int, step: Step) -> float:
    """Operations per second of ``step(i)`` for i in range(n), one at a time."""
    started = time.perf_counter()
    for i in range(n):
        await step(i)
    return n / (time.perf_counter() - started)


class RedisBenchmark:
    """redis-benchmark against one server, or the reason it cannot run."""

    def __init__(self, broker: Broker) -> None:
        self.binary = shutil.which("redis-benchmark")
        parts = urlsplit(broker.url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 6379
        self.reason = ""
        if not broker.is_real:
            self.reason = "embedded fakeredis: no server for redis-benchmark"
        elif self.binary is None:
            self.reason = "redis-benchmark is not installed"

    def rate(self, n: int, *command: str) -> float | None:
        if self.reason:
            return None
        argv = [self.binary or "", "-h", self.host, "-p", str(self.port)]
        argv += ["-n", str(n), "-c", "1", "-P", "1", "-r", "1000000", "--csv"]
        done = subprocess.run(
            argv + list(command), capture_output=True, text=True, check=True
        )
        # "test","rps","avg_latency_ms",5 more: the test name holds the
        # command's arguments, commas included, so count from the right.
        last = done.stdout.strip().splitlines()[-1]
        return float(last.rsplit(",", 7)[1].strip('"'))


async def _measure(broker: Broker, n: int) -> list[Row]:
    client = broker.redis()
    plain = broker.redis()
    bench = RedisBenchmark(broker)
    name = f"bench:{uuid.uuid4().hex[:8]}"
    envelopes = list(workload(n, body_bytes=64))
    payloads = [codec.encode(e) for e in envelopes]
    rows: list[Row] = []

    # The seed's list: LPUSH, then BRPOP.
    seed_list = ListQueue(client, f"{name}:list")
    push = await _rate(n, lambda i: seed_list.push(envelopes[i]))
    plain_push = await _rate(n, lambda i: plain.lpush(f"{name}:plain", payloads[i]))
    rb_push = bench.rate(n, "LPUSH", f"{name}:rb", payloads[0].decode())
    rows.append(Row("list (seed)", "push: LPUSH", push, plain_push, rb_push))
    pop = await _rate(n, lambda i: seed_list.pop(1))
    plain_pop = await _rate(n, lambda i: plain.brpop([f"{name}:plain"], timeout=1))
    rb_pop = bench.rate(n, "BRPOP", f"{name}:rb", "1")
    rows.append(Row("list (seed)", "pop: BRPOP", pop, plain_pop, rb_pop))
    await seed_list.close()

    # The reliable list: LMOVE into processing (+ lease), then LREM.
    reliable = ReliableListQueue(client, f"{name}:rel", worker="bench")
    for envelope in envelopes:
        await reliable.push(envelope)
    await plain.lpush(f"{name}:plain", *payloads)

    bench.rate(n, "LPUSH", f"{name}:rb", payloads[0].decode())  # refill

    async def reliable_step(i: int) -> None:
        envelope = await reliable.pop(1)
        assert envelope is not None
        await reliable.done(envelope)

    async def plain_reliable(i: int) -> None:
        raw = await plain.lmove(f"{name}:plain", f"{name}:proc", "RIGHT", "LEFT")
        await plain.lrem(f"{name}:proc", 1, raw)

    rows.append(
        Row(
            "list (reliable)",
            "pop + done",
            await _rate(n, reliable_step),
            await _rate(n, plain_reliable),
            bench.rate(n, "LMOVE", f"{name}:rb", f"{name}:rb2", "RIGHT", "LEFT"),
            "redis-py and redis-benchmark: LMOVE (+ LREM) without the lease",
        )
    )
    await reliable.close()

    # Priority queues: the seed's ZADD/ZPOPMIN and the corrected Lua scripts.
    seed_pq = SeedPriorityQueue(client, f"{name}:seedpq")
    rows.append(
        Row(
            "priority (seed)",
            "push: ZADD",
            await _rate(n, lambda i: seed_pq.push(envelopes[i].body, 1)),
            await _rate(n, lambda i: plain.zadd(f"{name}:pz", {payloads[i]: i})),
            bench.rate(n, "ZADD", f"{name}:rbz", "__rand_int__", "m:__rand_int__"),
        )
    )
    rows.append(
        Row(
            "priority (seed)",
            "pop: ZPOPMIN",
            await _rate(n, lambda i: seed_pq.pop()),
            await _rate(n, lambda i: plain.zpopmin(f"{name}:pz")),
            bench.rate(n, "ZPOPMIN", f"{name}:rbz"),
        )
    )
    fixed = PriorityQueue(client, f"{name}:pq")
    script = plain.register_script(_PUSH)
    keys = [f"{name}:pp", f"{name}:pp:b", f"{name}:pp:n", f"{name}:pp:s"]

    async def plain_push_script(i: int) -> object:
        args = [envelopes[i].id, payloads[i], 1, 2**COUNTER_BITS]
        return await script(keys=keys, args=args)

    rows.append(
        Row(
            "priority (corrected)",
            "push: Lua (INCR, HSET, ZADD)",
            await _rate(n, lambda i: fixed.push(envelopes[i], 1)),
            await _rate(n, plain_push_script),
            None,
            "redis-py: the same script by EVALSHA; redis-benchmark: not one command",
        )
    )

    async def fixed_step(i: int) -> None:
        envelope = await fixed.pop(1)
        assert envelope is not None
        await fixed.done(envelope)

    rows.append(
        Row(
            "priority (corrected)",
            "pop + done: 2 Lua scripts",
            await _rate(n, fixed_step),
            await _rate(n, lambda i: plain.zpopmin(keys[0])),
            None,
            "redis-py: ZPOPMIN alone (the seed's at-most-once pop)",
        )
    )

    # Streams: XADD, then XREADGROUP + XACK.
    stream = StreamQueue(client, f"{name}:s", "g", consumer="c")
    await stream.ensure_group()
    await plain.xgroup_create(f"{name}:ps", "g", id="0", mkstream=True)
    rows.append(
        Row(
            "stream",
            "push: XADD",
            await _rate(n, lambda i: stream.push(envelopes[i])),
            await _rate(
                n, lambda i: plain.xadd(f"{name}:ps", {"envelope": payloads[i]})
            ),
            bench.rate(n, "XADD", f"{name}:rbs", "*", "envelope", payloads[0].decode()),
        )
    )

    async def stream_step(i: int) -> None:
        [entry] = await stream.read(count=1, timeout_s=1)
        await stream.ack(entry)

    async def plain_stream(i: int) -> None:
        reply = await plain.xreadgroup(
            "g", "c", {f"{name}:ps": ">"}, count=1, block=1000
        )
        await plain.xack(f"{name}:ps", "g", reply[0][1][0][0])

    rows.append(
        Row(
            "stream",
            "read + ack: XREADGROUP, XACK",
            await _rate(n, stream_step),
            await _rate(n, plain_stream),
            None,
            "redis-benchmark: no one command reads and acknowledges",
        )
    )
    await stream.close()

    for row in rows:
        if row.redis_benchmark is None and bench.reason and not row.note:
            row.note = bench.reason
    await client.delete(*[k async for k in client.scan_iter(f"{name}*")])
    await client.aclose()
    await plain.aclose()
    return rows


def main(quick: bool = False) -> pd.DataFrame:
    n = 300 if quick else 3000
    private = shutil.which("redis-server") is not None
    broker = start_private_redis() if private else find_redis()
    try:
        rows = asyncio.run(_measure(broker, n))
    finally:
        broker.close()
    table = pd.DataFrame([row.as_dict() for row in rows])
    table.insert(0, "server", f"{broker.link.value} {broker.version}")
    table.insert(1, "n", n)
    return table


if __name__ == "__main__":
    print(main().to_string(index=False))
