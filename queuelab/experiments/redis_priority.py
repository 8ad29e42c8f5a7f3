"""The seed's sorted-set priority queue against the corrected one, measured.

Three experiments, each run on both queues with the same seeded tasks:

- ``collapse``: tasks some of which repeat an earlier payload (the same user
  asking for the same report twice). How many entries does each queue hold?
- ``arrival_order``: a batch pushed in one pipeline at one priority, then
  popped. How many tasks come out ahead of a task that was pushed before them,
  how many share their score with another, and in what order do those come?
- ``priority_latency``: a backlog of tasks at three priorities drained by
  consumers. Latency per priority, and what the checker finds.

Priorities follow the convention of ``queuelab.redisq.priority``: the lower
number is served first.
"""

import asyncio
import json
import random
import string
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pandas as pd
import redis.asyncio

from queuelab import envelope as codec
from queuelab.ledger import CheckResult, Event, Ledger, check, latencies
from queuelab.redisq.priority import PriorityQueue, SeedPriorityQueue

SEED = "seed (member = payload)"
CORRECTED = "corrected (member = id)"


def repeated_payloads(
    n: int, *, repeat_share: float, seed: int = 0
) -> list[dict[str, Any]]:
    """``n`` task payloads, about ``repeat_share`` of them copies of earlier ones."""
    rng = random.Random(seed)
    payloads: list[dict[str, Any]] = []
    for _ in range(n):
        if payloads and rng.random() < repeat_share:
            payloads.append(dict(rng.choice(payloads)))
        else:
            user = rng.randrange(10_000)
            payloads.append({"user": user, "report": rng.choice(["daily", "weekly"])})
    return payloads


def _name(what: str) -> str:
    return f"queuelab:{what}:{uuid.uuid4().hex[:8]}"


async def collapse(
    client: "redis.asyncio.Redis", payloads: Sequence[dict[str, Any]]
) -> pd.DataFrame:
    """Push every payload into both queues; how many entries each then holds."""
    seed_queue = SeedPriorityQueue(client, _name("collapse"))
    fixed = PriorityQueue(client, _name("collapse"))
    await seed_queue.push_many((payload, 0) for payload in payloads)
    await fixed.push_many((codec.new(p, i), 0) for i, p in enumerate(payloads))
    distinct = len({json.dumps(p, sort_keys=True) for p in payloads})
    rows = [
        {"queue": SEED, "pushed": len(payloads), "held": await seed_queue.length()},
        {"queue": CORRECTED, "pushed": len(payloads), "held": await fixed.length()},
    ]
    await seed_queue.delete()
    await fixed.delete()
    table = pd.DataFrame(rows)
    table["distinct payloads"] = distinct
    table["lost"] = table.pushed - table.held
    return table


@dataclass(frozen=True)
class OrderRun:
    """How one batch at one priority came out of one queue."""

    queue: str
    priority: int
    pushed: int
    out_of_order: int  # popped after a task that was pushed later than them
    tied: int  # tasks whose score equals another task's
    ties_in_byte_order: bool  # within each tie, pop order == sorted member bytes

    def as_row(self) -> dict[str, object]:
        return self.__dict__.copy()


def _random_word(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_lowercase, k=8))


def out_of_order(popped: Sequence[int]) -> int:
    """Tasks that came out after a task pushed later than them."""
    count, highest = 0, -1
    for n in popped:
        if n < highest:
            count += 1
        highest = max(highest, n)
    return count


async def arrival_order(
    client: "redis.asyncio.Redis", *, n: int = 500, priority: int = 1, seed: int = 0
) -> list[OrderRun]:
    """Push ``n`` tasks at ``priority`` in one pipeline into each queue; pop all."""
    rng = random.Random(seed)
    bodies = [{"payload": _random_word(rng), "n": i} for i in range(n)]
    return [
        await _seed_order(client, bodies, priority),
        await _corrected_order(client, bodies, priority),
    ]


async def _scores(client: "redis.asyncio.Redis", key: str) -> list[tuple[bytes, float]]:
    """A sorted set's (member, score) pairs, lowest score first."""
    pairs = await client.zrange(key, 0, -1, withscores=True)
    return [(bytes(member), float(score)) for member, score in cast(list[Any], pairs)]


async def _seed_order(
    client: "redis.asyncio.Redis", bodies: list[dict[str, Any]], priority: int
) -> OrderRun:
    queue = SeedPriorityQueue(client, _name("order"))
    await queue.push_many((body, priority) for body in bodies)
    scored = await _scores(client, queue.name)
    by_score: dict[float, list[bytes]] = defaultdict(list)
    for member, score in scored:
        by_score[score].append(member)
    tied = sum(len(members) for members in by_score.values() if len(members) > 1)

    popped: list[bytes] = []
    while (body := await queue.pop()) is not None:
        popped.append(json.dumps(body).encode())
    await queue.delete()
    position = {member: i for i, member in enumerate(popped)}
    in_byte_order = all(
        sorted(members) == sorted(members, key=position.__getitem__)
        for members in by_score.values()
    )
    order = [json.loads(member)["n"] for member in popped]
    return OrderRun(
        SEED, priority, len(bodies), out_of_order(order), tied, in_byte_order
    )


async def _corrected_order(
    client: "redis.asyncio.Redis", bodies: list[dict[str, Any]], priority: int
) -> OrderRun:
    queue = PriorityQueue(client, _name("order"), levels=max(10, priority + 1))
    await queue.push_many(
        (codec.new(body, i), priority) for i, body in enumerate(bodies)
    )
    scores = [score for _, score in await _scores(client, queue.name)]
    tied = len(scores) - len(set(scores))
    order = []
    while (envelope := await queue.pop(timeout_s=0.01)) is not None:
        order.append(envelope.seq)
        await queue.done(envelope)
    await queue.delete()
    return OrderRun(CORRECTED, priority, len(bodies), out_of_order(order), tied, True)


@dataclass
class PriorityLatencyRun:
    """A backlog drained by consumers: the ledger and each message's priority."""

    queue: str
    ledger: pd.DataFrame
    verdict: CheckResult
    priorities: dict[str, int]  # message id -> priority

    def by_priority(self) -> pd.DataFrame:
        """Per priority: tasks, processed, lost, and latency percentiles (ms)."""
        lat = latencies(self.ledger) * 1000
        processed = set(self.ledger.message_id[self.ledger.event == Event.PROCESSED])
        rows = []
        for priority in sorted(set(self.priorities.values())):
            ids = [i for i, p in self.priorities.items() if p == priority]
            own = lat[lat.index.isin(ids)]
            rows.append(
                {
                    "queue": self.queue,
                    "priority": priority,
                    "tasks": len(ids),
                    "processed": sum(i in processed for i in ids),
                    "lost": sum(i in self.verdict.lost for i in ids),
                    "p50_ms": own.quantile(0.5),
                    "p95_ms": own.quantile(0.95),
                }
            )
        return pd.DataFrame(rows)


async def priority_latency(
    client_factory: Callable[[], "redis.asyncio.Redis"],
    corrected: bool,
    *,
    tasks: int = 600,
    shares: Sequence[float] = (0.1, 0.3, 0.6),
    repeat_share: float = 0.1,
    consumers: int = 2,
    task_s: float = 0.002,
    seed: int = 0,
) -> PriorityLatencyRun:
    """A backlog of ``tasks`` at priorities 0, 1, 2 (``shares``), drained."""
    rng = random.Random(seed)
    payloads = repeated_payloads(tasks, repeat_share=repeat_share, seed=seed)
    levels = rng.choices(range(len(shares)), weights=shares, k=tasks)
    envelopes = [codec.new(payload, i) for i, payload in enumerate(payloads)]
    priorities = {e.id: p for e, p in zip(envelopes, levels, strict=True)}
    ledger = Ledger()
    client = client_factory()
    name = _name("latency")
    for envelope in envelopes:
        ledger.record(Event.PUBLISHED, envelope.id, worker="producer")

    if corrected:
        fixed = PriorityQueue(client, name)
        await fixed.push_many(zip(envelopes, levels, strict=True))
        drain = [
            _drain_corrected(client_factory, name, ledger, f"c{i}", task_s)
            for i in range(consumers)
        ]
    else:
        seed_queue = SeedPriorityQueue(client, name)
        await seed_queue.push_many(
            (payload, p) for payload, p in zip(payloads, levels, strict=True)
        )
        waiting: dict[str, deque[str]] = defaultdict(deque)
        for envelope in envelopes:
            waiting[json.dumps(envelope.body)].append(envelope.id)
        drain = [
            _drain_seed(client_factory, name, ledger, f"c{i}", task_s, waiting)
            for i in range(consumers)
        ]
    await asyncio.gather(*drain)
    await PriorityQueue(client, name).delete()
    await client.aclose()

    frame = ledger.frame()
    label = CORRECTED if corrected else SEED
    return PriorityLatencyRun(label, frame, check(frame), priorities)


async def _drain_corrected(
    client_factory: Callable[[], "redis.asyncio.Redis"],
    name: str,
    ledger: Ledger,
    worker: str,
    task_s: float,
) -> None:
    client = client_factory()
    queue = PriorityQueue(client, name)
    while (envelope := await queue.pop(timeout_s=0.05)) is not None:
        ledger.record(
            Event.DELIVERED, envelope.id, worker=worker, attempt=envelope.attempt
        )
        await asyncio.sleep(task_s)
        ledger.record(
            Event.PROCESSED, envelope.id, worker=worker, attempt=envelope.attempt
        )
        await queue.done(envelope)
    await client.aclose()


async def _drain_seed(
    client_factory: Callable[[], "redis.asyncio.Redis"],
    name: str,
    ledger: Ledger,
    worker: str,
    task_s: float,
    waiting: dict[str, deque[str]],
) -> None:
    """Identical payloads are indistinguishable: each pop is the oldest of its kind."""
    client = client_factory()
    queue = SeedPriorityQueue(client, name)
    while (body := await queue.pop()) is not None:
        message_id = waiting[json.dumps(body)].popleft()
        ledger.record(Event.DELIVERED, message_id, worker=worker, attempt=1)
        await asyncio.sleep(task_s)
        ledger.record(Event.PROCESSED, message_id, worker=worker, attempt=1)
    await client.aclose()
