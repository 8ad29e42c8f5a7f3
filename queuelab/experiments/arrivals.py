"""When messages arrive: the arrival processes of a workload.

Each function returns the arrival times in seconds from the start, sorted, as
a NumPy array. The same array drives a real producer (which sleeps until each
time) and a simulated one, so the two see the same traffic. Random processes
take a seed and return the same times for the same seed.

- constant: evenly spaced, the easy case;
- poisson: independent arrivals at a mean rate, gaps exponentially distributed;
- bursts: a base Poisson rate with periodic spikes of many times that rate,
  the traffic a queue exists to smooth;
- replay: times read from a CSV file (a column ``t_s``), e.g. a production log.
"""

from pathlib import Path

import numpy as np

from queuelab.errors import ConfigError


def constant(rate_per_s: float, duration_s: float) -> np.ndarray:
    """One arrival every ``1 / rate_per_s`` seconds for ``duration_s``."""
    _positive(rate_per_s=rate_per_s, duration_s=duration_s)
    count = int(rate_per_s * duration_s)
    return np.arange(count, dtype="float64") / rate_per_s


def poisson(rate_per_s: float, duration_s: float, *, seed: int = 0) -> np.ndarray:
    """Poisson arrivals at a mean of ``rate_per_s`` for ``duration_s``."""
    _positive(rate_per_s=rate_per_s, duration_s=duration_s)
    rng = np.random.default_rng(seed)
    count = rng.poisson(rate_per_s * duration_s)
    return np.sort(rng.uniform(0.0, duration_s, size=count))


def bursts(
    rate_per_s: float,
    duration_s: float,
    *,
    burst_every_s: float,
    burst_len_s: float,
    burst_factor: float,
    seed: int = 0,
) -> np.ndarray:
    """Poisson arrivals whose rate is ``burst_factor`` times higher in bursts.

    A burst of ``burst_len_s`` starts every ``burst_every_s`` seconds, the
    first one at ``burst_every_s / 2``.
    """
    _positive(
        rate_per_s=rate_per_s,
        duration_s=duration_s,
        burst_every_s=burst_every_s,
        burst_len_s=burst_len_s,
        burst_factor=burst_factor,
    )
    rng = np.random.default_rng(seed)
    base = np.sort(rng.uniform(0.0, duration_s, rng.poisson(rate_per_s * duration_s)))
    extra = []
    start = burst_every_s / 2
    while start < duration_s:
        end = min(start + burst_len_s, duration_s)
        count = rng.poisson(rate_per_s * (burst_factor - 1) * (end - start))
        extra.append(rng.uniform(start, end, count))
        start += burst_every_s
    return np.sort(np.concatenate([base, *extra]))


def replay(path: Path) -> np.ndarray:
    """Arrival times from column ``t_s`` of a CSV file, shifted to start at 0."""
    import pandas as pd  # only replay needs it; worker processes never do

    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as exc:
        raise ConfigError(f"cannot read workload {path}: {exc}") from None
    if "t_s" not in frame.columns:
        raise ConfigError(f"workload {path} has no column 't_s'")
    times = pd.to_numeric(frame["t_s"], errors="coerce")
    if times.isna().any() or (times < 0).any():
        raise ConfigError(f"workload {path}: 't_s' must be numbers >= 0")
    ordered = np.sort(times.to_numpy(dtype="float64"))
    return ordered - ordered[0] if len(ordered) else ordered


def _positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ConfigError(f"{name} must be > 0, got {value}")
