"""Experiments on real brokers with workers that really die (SIGKILL).

Given workers that crash on about one delivery in forty, each guarantee
shows its signature: at-most-once loses and never duplicates, at-least-once
duplicates and never loses, effectively-once does neither.
"""

from pathlib import Path

import pytest

from queuelab.errors import ConfigError
from queuelab.experiments.result import ExperimentResult
from queuelab.experiments.runner import run_async, simulated
from queuelab.experiments.spec import ExperimentSpec, Fault, FaultKind, Workload
from queuelab.guarantees import Guarantee
from queuelab.ledger import Event

pytestmark = pytest.mark.slow

TRAFFIC = Workload("constant", rate_per_s=100, duration_s=2)


def crashing(guarantee: Guarantee, backend: str = "rabbitmq") -> ExperimentSpec:
    return ExperimentSpec(
        name=f"test-{backend}-{guarantee}",
        backend=backend,
        guarantee=guarantee,
        workload=TRAFFIC,
        consumers=2,
        task_s=0.004,
        crash_p=0.025,
        crash_after_effect=0.5,
        seed=5,
    )


BACKENDS = ["rabbitmq", "redis-list", "redis-stream"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_at_most_once_loses_work_when_a_worker_dies_and_never_duplicates(
    backend: str,
) -> None:
    result = await run_async(crashing(Guarantee.AT_MOST_ONCE, backend))
    verdict = result.verdict
    assert result.crashes >= 1
    assert verdict.lost
    assert not verdict.duplicated


@pytest.mark.parametrize("backend", BACKENDS)
async def test_at_least_once_loses_nothing_but_processes_some_twice(
    backend: str,
) -> None:
    result = await run_async(crashing(Guarantee.AT_LEAST_ONCE, backend))
    verdict = result.verdict
    assert result.crashes >= 1
    assert not verdict.lost
    assert verdict.duplicated
    assert verdict.processed == verdict.confirmed == len(TRAFFIC.arrivals(0))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_effectively_once_loses_nothing_and_applies_no_effect_twice(
    backend: str,
) -> None:
    result = await run_async(crashing(Guarantee.EFFECTIVELY_ONCE, backend))
    verdict = result.verdict
    assert result.crashes >= 1
    assert verdict.ok
    assert (result.ledger.event == Event.DEDUPLICATED.value).any()


def test_a_result_saves_and_loads_with_what_it_needs_to_be_rerun(
    tmp_path: Path,
) -> None:
    result = simulated(crashing(Guarantee.AT_LEAST_ONCE, backend="sim"))
    folder = result.save(tmp_path)
    again = ExperimentResult.load(folder)
    assert again.spec == result.spec
    assert again.ledger.equals(result.ledger)
    assert again.verdict.counts() == result.verdict.counts()
    assert again.meta["versions"]["simpy"]
    assert again.meta["broker"] == "SimPy"


async def test_a_broker_restart_loses_no_confirmed_message(
    redis_broker: object,
) -> None:
    spec = ExperimentSpec(
        name="test-restart",
        backend="rabbitmq",
        guarantee=Guarantee.AT_LEAST_ONCE,
        workload=Workload("constant", rate_per_s=150, duration_s=3),
        faults=(Fault(FaultKind.RESTART_BROKER, at_s=1.0),),
        seed=3,
    )
    result = await run_async(spec)
    verdict = result.verdict
    broker_faults = result.ledger.query("event == 'fault' and worker == 'broker'")
    assert broker_faults.detail.tolist() == ["restart-broker"]
    assert verdict.confirmed > 0
    assert not verdict.lost
    assert not verdict.unexpected
    assert "private" in result.meta["broker"]


async def test_a_redis_restart_without_persistence_loses_the_backlog_and_says_so() -> (
    None
):
    """Redis acknowledged the pushes, then forgot its backlog on restart."""
    spec = ExperimentSpec(
        name="test-redis-restart",
        backend="redis-list",
        guarantee=Guarantee.AT_LEAST_ONCE,
        workload=Workload("constant", rate_per_s=150, duration_s=2),
        consumers=1,
        task_s=0.02,  # 50 a second: a backlog builds before the restart
        faults=(Fault(FaultKind.RESTART_BROKER, after_messages=200),),
        seed=4,
    )
    result = await run_async(spec)
    verdict = result.verdict
    assert verdict.published == 300
    assert verdict.confirmed > 250  # pushes during the restart itself fail
    assert len(verdict.lost) > 20
    assert verdict.processed + len(verdict.lost) == verdict.confirmed
    assert "private" in result.meta["broker"]


def test_a_fault_needs_exactly_one_trigger() -> None:
    with pytest.raises(ConfigError, match="exactly one of"):
        Fault(FaultKind.RESTART_BROKER)
    with pytest.raises(ConfigError, match="exactly one of"):
        Fault(FaultKind.RESTART_BROKER, at_s=1.0, after_messages=5)
