"""The simulator: deterministic, and its losses and duplicates follow its knobs."""

import math

import pytest

from queuelab.errors import ConfigError
from queuelab.experiments import arrivals
from queuelab.guarantees import Guarantee
from queuelab.ledger import Event, check
from queuelab.sim import SimSpec, simulate

TRAFFIC = arrivals.poisson(500, 10, seed=1)  # about 5,000 messages


def spec(**changes: object) -> SimSpec:
    knobs: dict[str, object] = {
        "arrivals_s": TRAFFIC,
        "consumers": 2,
        "task_s": 0.002,
        "crash_p": 0.02,
        "crash_after_effect": 0.5,
        "seed": 11,
    }
    knobs.update(changes)
    return SimSpec(**knobs)  # type: ignore[arg-type]


def test_the_same_seed_gives_the_same_ledger() -> None:
    first, again = simulate(spec()), simulate(spec())
    assert first.ledger.equals(again.ledger)
    assert not first.ledger.equals(simulate(spec(seed=12)).ledger)


def test_without_crashes_every_message_is_processed_once_under_each_guarantee() -> None:
    for guarantee in Guarantee:
        verdict = check(simulate(spec(crash_p=0.0, guarantee=guarantee)).ledger)
        assert verdict.ok, guarantee
        assert verdict.processed == len(TRAFFIC)


def test_at_most_once_loses_within_the_binomial_expectation() -> None:
    """Each delivery crashes with probability p before its effect; with
    prefetch 1 and acks on delivery every crash loses exactly one message."""
    p, n = 0.03, len(TRAFFIC)
    result = simulate(
        spec(guarantee=Guarantee.AT_MOST_ONCE, crash_p=p, crash_after_effect=0.0)
    )
    verdict = check(result.ledger)
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    assert abs(len(verdict.lost) - mean) < 4 * sd
    assert not verdict.duplicated
    crashes = (result.ledger.event == Event.FAULT).sum()
    assert len(verdict.lost) == crashes


def test_at_least_once_loses_nothing_but_duplicates_after_late_crashes() -> None:
    verdict = check(simulate(spec(guarantee=Guarantee.AT_LEAST_ONCE)).ledger)
    assert not verdict.lost
    assert verdict.duplicated


def test_effectively_once_neither_loses_nor_applies_an_effect_twice() -> None:
    result = simulate(spec(guarantee=Guarantee.EFFECTIVELY_ONCE))
    verdict = check(result.ledger)
    assert verdict.ok
    assert (result.ledger.event == Event.DEDUPLICATED).sum() > 0


def test_a_crash_before_the_effect_only_delays_an_at_least_once_message() -> None:
    result = simulate(spec(crash_after_effect=0.0))
    verdict = check(result.ledger)
    assert verdict.ok
    assert result.ledger.attempt.max() >= 2


def test_prefetch_multiplies_what_an_at_most_once_crash_loses() -> None:
    backlog = arrivals.constant(2000, 2)  # faster than two consumers can go
    lost = {
        prefetch: len(
            check(
                simulate(
                    spec(
                        arrivals_s=backlog,
                        guarantee=Guarantee.AT_MOST_ONCE,
                        crash_after_effect=0.0,
                        prefetch=prefetch,
                    )
                ).ledger
            ).lost
        )
        for prefetch in (1, 10)
    }
    assert lost[10] > 3 * lost[1]


def test_queue_depth_is_sampled_and_drains_to_zero() -> None:
    burst = arrivals.bursts(
        200, 6, burst_every_s=3, burst_len_s=0.5, burst_factor=10, seed=2
    )
    result = simulate(spec(arrivals_s=burst, crash_p=0.0, task_s=0.008))
    depth = result.depth
    assert list(depth.columns) == ["t_s", "depth"]
    assert depth.depth.max() > 20  # the burst piles up
    assert depth.depth.iloc[-1] == 0


def test_nonsense_knobs_are_refused() -> None:
    with pytest.raises(ConfigError):
        SimSpec(TRAFFIC, prefetch=0)
    with pytest.raises(ConfigError):
        SimSpec(TRAFFIC, crash_p=1.5)


def test_an_empty_workload_gives_an_empty_ledger() -> None:
    assert simulate(spec(arrivals_s=[])).ledger.empty
