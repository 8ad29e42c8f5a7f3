"""Figures for the course, one look for all of them.

Every function takes results computed from ledgers and returns a matplotlib
Figure with labelled axes and units, so a notebook cell is one call and the
lesson stays about queues, not about plotting.
"""

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from queuelab.ledger import CheckResult, Event, latencies, rate_over_time

FIGSIZE = (7.5, 3.6)
FAULT_KEYS = ("lost", "duplicated", "unexpected", "recovered")

plt.rcParams.update(
    {
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "figure.dpi": 100,
        "savefig.bbox": "tight",
    }
)


def throughput_over_time(
    ledgers: Mapping[str, pd.DataFrame], *, bin_s: float = 0.1
) -> Figure:
    """Messages processed per second against time, one line per run."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for label, frame in ledgers.items():
        series = rate_over_time(frame, Event.PROCESSED, bin_s)
        ax.plot(series.index, series.to_numpy(), label=label, drawstyle="steps-post")
    ax.set_xlabel("time since the first publish (s)")
    ax.set_ylabel("messages processed (msg/s)")
    ax.set_title(f"Throughput over time ({bin_s * 1000:g} ms bins)")
    ax.set_ylim(bottom=0)
    ax.legend()
    return fig


def latency_cdf(ledgers: Mapping[str, pd.DataFrame]) -> Figure:
    """Share of messages processed within a given latency, one line per run."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for label, frame in ledgers.items():
        lat_ms = (latencies(frame) * 1000).sort_values().to_numpy()
        if len(lat_ms):
            share = [(i + 1) / len(lat_ms) for i in range(len(lat_ms))]
            ax.plot(lat_ms, share, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("latency, publish to processed (ms, log scale)")
    ax.set_ylabel("share of messages")
    ax.set_title("Latency distribution")
    ax.legend()
    return fig


def latency_percentiles(ledgers: Mapping[str, pd.DataFrame]) -> Figure:
    """p50, p95 and p99 latency side by side for each run."""
    quantiles = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
    table = pd.DataFrame(
        {
            label: {k: latencies(f).quantile(q) * 1000 for k, q in quantiles.items()}
            for label, f in ledgers.items()
        }
    )
    fig, ax = plt.subplots(figsize=FIGSIZE)
    table.plot.bar(ax=ax, rot=0)
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    ax.set_title("Latency percentiles")
    return fig


def checker_counts(verdicts: Mapping[str, CheckResult]) -> Figure:
    """Lost, duplicated, unexpected and recovered messages for each run."""
    table = pd.DataFrame(
        {label: {k: v.counts()[k] for k in FAULT_KEYS} for label, v in verdicts.items()}
    )
    fig, ax = plt.subplots(figsize=FIGSIZE)
    table.plot.bar(ax=ax, rot=0)
    ax.set_xlabel("checker category")
    ax.set_ylabel("messages")
    ax.set_title("What the checker found")
    ax.set_ylim(bottom=0, top=max(1, int(table.to_numpy().max()) + 1))
    return fig


def bars(
    values: Mapping[str, float], *, xlabel: str, ylabel: str, title: str
) -> Figure:
    """A plain labelled bar chart."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    labels: Sequence[str] = list(values)
    ax.bar(labels, list(values.values()))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


def grouped_bars(
    table: pd.DataFrame, *, xlabel: str, ylabel: str, title: str, log: bool = False
) -> Figure:
    """One group of bars per row of ``table``, one bar per column, labelled."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    table.plot.bar(ax=ax, rot=0)
    if log:
        ax.set_yscale("symlog")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig
