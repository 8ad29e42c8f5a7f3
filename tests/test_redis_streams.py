"""Given a stream read by a consumer group: entries a dead consumer left pending
are claimed by another, and entries deleted while pending are reported lost."""

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio

from queuelab import envelope as codec
from queuelab.brokers import REDIS_ENV, Broker
from queuelab.envelope import Envelope
from queuelab.experiments import workload
from queuelab.ledger import Event, Ledger, check, read_events
from queuelab.redisq import StreamQueue, consume_stream


async def _group(
    client: redis.asyncio.Redis, stream: str, consumer: str
) -> StreamQueue:
    queue = StreamQueue(client, stream, "workers", consumer=consumer)
    await queue.ensure_group()
    return queue


@pytest.mark.slow
async def test_a_killed_consumer_process_leaves_entries_another_claims_and_runs(
    redis_broker: Broker, redis_client: redis.asyncio.Redis, unique: str, tmp_path: Path
) -> None:
    rescuer = await _group(redis_client, unique, "rescuer")
    sent = list(workload(5))
    for envelope in sent:
        await rescuer.push(envelope)

    ledger_path = tmp_path / "doomed.jsonl"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "queuelab.redisq.worker",
        "--backend", "stream", "--queue", unique,
        "--group", "workers", "--worker", "doomed", "--count", "5",
        "--ledger", str(ledger_path), "--task-s", "60",
        stdin=asyncio.subprocess.DEVNULL,
        env={**os.environ, REDIS_ENV: redis_broker.url},
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while await rescuer.pending() < 5:
        assert time.monotonic() < deadline, "the worker never read its entries"
        await asyncio.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    await process.wait()
    frame = read_events(ledger_path)
    assert (frame.event == Event.PROCESSED).sum() == 0

    await asyncio.sleep(0.3)
    claimed = await rescuer.claim(min_idle_s=0.2)
    assert [entry.envelope.id for entry in claimed.entries] == [e.id for e in sent]
    assert {entry.envelope.attempt for entry in claimed.entries} == {2}
    assert claimed.deleted == []
    for entry in claimed.entries:
        assert await rescuer.ack(entry)
    assert await rescuer.pending() == 0
    await rescuer.close()
    await rescuer.delete()


async def test_an_entry_deleted_while_pending_is_reported_and_leaves_the_pel(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    first = await _group(redis_client, unique, "first")
    for envelope in workload(3):
        await first.push(envelope)
    read = await first.read(count=10, timeout_s=1)
    assert len(read) == 3
    await redis_client.xdel(unique, read[1].entry_id)  # or trimmed by MAXLEN

    second = StreamQueue(redis_client, unique, "workers", consumer="second")
    claimed = await second.claim(min_idle_s=0)

    assert claimed.deleted == [read[1].entry_id]
    assert [e.entry_id for e in claimed.entries] == [read[0].entry_id, read[2].entry_id]
    for entry in claimed.entries:
        await second.ack(entry)
    assert await second.pending() == 0  # nothing stuck pending forever
    await first.close()
    await first.delete()


async def test_consume_stream_runs_what_a_dead_consumer_left_pending(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    dead = await _group(redis_client, unique, "dead")
    sent = list(workload(4))
    ledger = Ledger()
    for envelope in sent:
        ledger.record(Event.PUBLISHED, envelope.id)
        await dead.push(envelope)
    assert len(await dead.read(count=2, timeout_s=1)) == 2  # then it dies
    await dead.close()

    done = asyncio.Event()
    seen: list[str] = []

    async def task(envelope: Envelope) -> None:
        seen.append(envelope.id)
        if len(seen) == 4:
            done.set()

    live = StreamQueue(redis_client, unique, "workers", consumer="live")
    consumer = asyncio.create_task(
        consume_stream(
            live, task, stop=done, ledger=ledger, min_idle_s=0.2, block_s=0.1
        )
    )
    await asyncio.wait_for(done.wait(), 10)
    await consumer
    verdict = check(ledger.frame())
    assert verdict.ok
    assert verdict.processed == 4
    assert await live.pending() == 0
    await live.close()
    await live.delete()


async def test_a_malformed_entry_is_dead_lettered_and_acknowledged(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    queue = await _group(redis_client, unique, "c1")
    await redis_client.xadd(unique, {"envelope": b"[]"})
    good = codec.new({"ok": 1}, 0)
    await queue.push(good)
    entries = await queue.read(count=10, timeout_s=1)
    assert [entry.envelope.id for entry in entries] == [good.id]
    [record] = await queue.dead_letters()
    assert "expected a JSON object" in record["reason"]
    assert await queue.pending() == 1  # only the good one, until acked
    await queue.close()
    await queue.delete()


async def test_an_entry_delivered_too_often_is_dead_lettered_instead_of_claimed(
    redis_client: redis.asyncio.Redis, unique: str
) -> None:
    queue = StreamQueue(redis_client, unique, "workers", consumer="c1", max_attempts=2)
    await queue.ensure_group()
    await queue.push(codec.new({"poison": True}, 0))
    assert len(await queue.read(timeout_s=1)) == 1  # delivery 1
    assert len((await queue.claim(min_idle_s=0)).entries) == 1  # delivery 2
    claimed = await queue.claim(min_idle_s=0)  # delivery 3: too many
    assert (claimed.entries, claimed.dead_lettered) == ([], 1)
    assert await queue.pending() == 0
    await queue.close()
    await queue.delete()


async def test_reading_an_empty_stream_waits_then_returns_nothing(
    redis_broker: Broker, unique: str
) -> None:
    client = redis_broker.redis(socket_timeout=0.5)
    queue = await _group(client, unique, "c1")
    assert await queue.read(timeout_s=1.2) == []
    await queue.close()
    await queue.delete()
    await client.aclose()
