"""Figures for the course, one look for all of them.

Every function takes results computed from ledgers and returns a matplotlib
Figure with labelled axes and units, so a notebook cell is one call and the
lesson stays about queues, not about plotting.
"""

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

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
    ax.set_yscale("log")  # runs can differ by orders of magnitude
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms, log scale)")
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
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
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


def guarantees_vs_crash_rate(table: pd.DataFrame) -> Figure:
    """Lost and duplicated share against crash rate, simulated next to measured.

    ``table`` has one row per run with columns guarantee, crash_p, source
    ("measured" or "simulated"), lost_pct and duplicated_pct.
    """
    fig, axes = plt.subplots(1, 2, figsize=(FIGSIZE[0] * 1.4, FIGSIZE[1]), sharex=True)
    styles = {"measured": "-o", "simulated": "--x"}
    for ax, column, title in (
        (axes[0], "lost_pct", "Messages lost"),
        (axes[1], "duplicated_pct", "Messages processed more than once"),
    ):
        for index, (guarantee, rows) in enumerate(table.groupby("guarantee")):
            color = f"C{index}"
            for source, part in rows.groupby("source"):
                part = part.sort_values("crash_p")
                ax.plot(
                    part.crash_p * 100,
                    part[column],
                    styles[str(source)],
                    color=color,
                    label=f"{guarantee}, {source}",
                )
        ax.set_xlabel("deliveries ending in a worker crash (%)")
        ax.set_ylabel("share of messages (%)")
        ax.set_title(title)
    axes[1].legend(fontsize="small")
    return fig


def depth_over_time(depths: Mapping[str, pd.DataFrame]) -> Figure:
    """Messages waiting in the queue against time, one line per run."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for label, depth in depths.items():
        ax.plot(depth.t_s, depth.depth, label=label, drawstyle="steps-post")
    ax.set_xlabel("time since the first publish (s)")
    ax.set_ylabel("messages waiting in the queue")
    ax.set_title("Queue depth")
    ax.set_ylim(bottom=0)
    ax.legend()
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


def rate_against_target(table: pd.DataFrame, *, target_per_s: float) -> Figure:
    """Achieved rate against the number of consumers, one line per limiter.

    ``table`` has columns ``limiter``, ``consumers`` and ``achieved_per_s``.
    """
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for limiter, rows in table.groupby("limiter", sort=False):
        rows = rows.sort_values("consumers")
        ax.plot(rows.consumers, rows.achieved_per_s, marker="o", label=str(limiter))
    ax.axhline(target_per_s, color="black", linestyle="--", label="target")
    ax.set_xscale("log", base=2)
    counts = sorted(table.consumers.unique())
    ax.set_xticks(counts, [str(c) for c in counts])
    ax.set_xlabel("consumers (log scale)")
    ax.set_ylabel("tasks started (per s)")
    ax.set_title("Achieved rate against the target")
    ax.set_ylim(bottom=0)
    ax.legend()
    return fig


def starts_over_time(
    starts: Mapping[str, pd.Series], *, target_per_s: float, bin_s: float = 0.25
) -> Figure:
    """Task starts per second over time (``starts`` in seconds), one line each."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for label, times in starts.items():
        if times.empty:
            continue
        bins = (times // bin_s).astype("int64").value_counts().sort_index()
        bins = bins.reindex(range(int(bins.index.max()) + 1), fill_value=0)
        ax.plot(
            bins.index * bin_s,
            bins.to_numpy() / bin_s,
            label=label,
            drawstyle="steps-post",
        )
    ax.axhline(target_per_s, color="black", linestyle="--", label="target")
    ax.set_xlabel("time since the consumers started (s)")
    ax.set_ylabel("tasks started (per s)")
    ax.set_title(f"Rate over time ({bin_s * 1000:g} ms bins)")
    ax.set_ylim(bottom=0)
    ax.legend()
    return fig


_TIMELINE_MARKS = {
    Event.DELIVERED.value: ("o", "tab:blue", "delivered"),
    Event.NACKED.value: ("x", "tab:orange", "failed (retry scheduled or rejected)"),
    Event.PROCESSED.value: ("P", "tab:green", "processed"),
    Event.DEAD_LETTERED.value: ("s", "tab:red", "dead-lettered"),
}


def attempt_timeline(frame: pd.DataFrame, labels: Mapping[str, str]) -> Figure:
    """Each message's deliveries and outcomes over time, one row per message.

    ``labels`` maps the message ids to show to their row labels, top first.
    """
    fig, ax = plt.subplots(figsize=(FIGSIZE[0], 0.35 * len(labels) + 1.4))
    start = frame.t.min()
    rows = {message_id: i for i, message_id in enumerate(labels)}
    shown = frame[frame.message_id.isin(rows)]
    for event, (marker, color, name) in _TIMELINE_MARKS.items():
        points = shown[shown.event == event]
        ax.scatter(
            points.t - start,
            points.message_id.map(rows),
            marker=marker,
            color=color,
            label=name,
            zorder=3,
        )
    ax.set_yticks(range(len(rows)), list(labels.values()))
    ax.invert_yaxis()
    ax.set_xlabel("time since the first publish (s)")
    ax.set_ylabel("message")
    ax.set_title("Deliveries and outcomes of each message")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return fig


def processing_order(orders: Mapping[str, pd.DataFrame]) -> Figure:
    """Priority of each task in the order it ran, one panel per run.

    Each frame has columns ``position`` and ``priority``.
    """
    fig, axes = plt.subplots(
        1, len(orders), figsize=(FIGSIZE[0], FIGSIZE[1]), sharey=True, squeeze=False
    )
    for ax, (label, order) in zip(axes[0], orders.items(), strict=True):
        ax.scatter(order.position, order.priority, c=order.priority, cmap="coolwarm")
        ax.set_title(label)
        ax.set_xlabel("order the tasks ran in")
    axes[0][0].set_ylabel("message priority")
    fig.suptitle("When the urgent messages ran")
    fig.tight_layout()
    return fig
