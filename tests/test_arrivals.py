"""Arrival processes: seeded, sorted, and at the rate asked for."""

from pathlib import Path

import numpy as np
import pytest

from queuelab.errors import ConfigError
from queuelab.experiments import arrivals


def test_constant_spacing() -> None:
    times = arrivals.constant(10, 1)
    assert times.tolist() == pytest.approx([i / 10 for i in range(10)])


def test_poisson_is_seeded_sorted_and_near_its_rate() -> None:
    times = arrivals.poisson(1000, 10, seed=3)
    assert np.array_equal(times, arrivals.poisson(1000, 10, seed=3))
    assert np.all(np.diff(times) >= 0)
    assert abs(len(times) - 10_000) < 4 * 100  # 4 standard deviations


def test_bursts_raise_the_rate_inside_each_burst() -> None:
    times = arrivals.bursts(
        100, 10, burst_every_s=5, burst_len_s=1, burst_factor=10, seed=1
    )
    inside = ((times >= 2.5) & (times < 3.5)).sum()
    outside = ((times >= 0.5) & (times < 1.5)).sum()
    assert inside > 5 * outside


def test_replay_reads_and_shifts_times(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_text("t_s\n5.0\n5.5\n7\n")
    assert arrivals.replay(path).tolist() == [0.0, 0.5, 2.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [("x\n1\n", "no column 't_s'"), ("t_s\nsoon\n", "must be numbers")],
)
def test_replay_refuses_a_bad_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "w.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        arrivals.replay(path)


def test_rates_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="rate_per_s must be > 0"):
        arrivals.poisson(0, 1)


def test_the_shipped_workload_replays() -> None:
    path = Path(__file__).parent.parent / "data" / "workloads" / "spiky_10s.csv"
    times = arrivals.replay(path)
    assert times[0] == 0.0
    assert np.all(np.diff(times) >= 0)
    assert 9 < times[-1] <= 10
    in_burst = ((times >= 1.5) & (times < 2.0)).sum()
    calm = ((times >= 0.5) & (times < 1.0)).sum()
    assert in_burst > 3 * calm
