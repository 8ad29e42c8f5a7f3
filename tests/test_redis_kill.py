"""The kill experiment on the real Redis: worker processes SIGKILLed while they
hold tasks, and a ledger that agrees with what Redis still holds."""

import pytest

from queuelab.brokers import Broker
from queuelab.experiments import kill_workers, restart_redis

pytestmark = pytest.mark.slow


async def test_killed_brpop_workers_lose_exactly_the_tasks_they_held(
    redis_broker: Broker,
) -> None:
    run = await kill_workers(redis_broker, "brpop", tasks=80, kills=2, task_s=0.02)
    assert run.how == "SIGKILL to worker processes"
    assert run.kills == 2
    # each killed worker held at most one task; the ledger saw most of them
    # taken (a kill can land between the pop and the ledger line)
    assert run.held_at_kill <= len(run.verdict.lost) <= run.kills
    assert len(run.verdict.lost) >= 1
    assert run.verdict.processed + len(run.verdict.lost) == 80
    assert run.left == 0  # Redis agrees: the lost tasks are nowhere


async def test_killed_reliable_workers_lose_nothing(redis_broker: Broker) -> None:
    run = await kill_workers(
        redis_broker,
        "reliable",
        tasks=80,
        kills=2,
        task_s=0.02,
        visibility_timeout_s=0.3,
    )
    assert run.kills == 2
    assert not run.verdict.lost
    assert run.verdict.processed == 80
    assert run.left == 0


async def test_redis_without_persistence_forgets_its_queue_on_restart() -> None:
    volatile = await restart_redis(50)
    durable = await restart_redis(50, appendonly=True)
    assert (volatile.before, volatile.after) == (50, 0)
    assert (durable.before, durable.after) == (50, 50)
