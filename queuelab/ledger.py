"""What happened to each message, and the checker that reads it.

Every experiment records one event per step of a message's life: published,
confirmed, delivered, processed, acked, nacked, dead-lettered. Recording is
one tuple appended to a list (cheap enough for the hot path); the pandas
DataFrame is built once, at the end.

The checker reads the history the way Jepsen's total-queue checker does:

- lost: confirmed (or, without confirms, published) but never processed;
- duplicated: processed more than once;
- unexpected: processed but never published;
- recovered: processed although its publish was never confirmed.

All figures an experiment reports come from here, never from counters kept
elsewhere, so a number in a chart can always be traced to events.

pandas is imported where a DataFrame is built, not at the top: worker
processes record events without it and start in a fraction of the time.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


COLUMNS = ["t", "event", "message_id", "worker", "attempt", "detail"]
Row = tuple[float, str, str, str, int, str]


class Event(StrEnum):
    PUBLISHED = "published"
    CONFIRMED = "confirmed"
    DELIVERED = "delivered"
    PROCESSED = "processed"
    ACKED = "acked"
    NACKED = "nacked"
    DEAD_LETTERED = "dead_lettered"
    FAULT = "fault"  # an injected fault; message_id is empty
    DEDUPLICATED = "deduplicated"  # redelivered, effect already applied: skipped


class Ledger:
    """An append-only list of events with monotonic timestamps (seconds).

    ``time.monotonic`` is one clock for every process on a machine, so ledgers
    recorded by worker processes can be concatenated with the producer's.
    """

    def __init__(self) -> None:
        self._rows: list[Row] = []

    def __len__(self) -> int:
        return len(self._rows)

    def record(
        self,
        event: Event,
        message_id: str,
        *,
        worker: str = "",
        attempt: int = 0,
        detail: str = "",
        t: float | None = None,
    ) -> None:
        """Append one event, stamped now unless ``t`` is given."""
        stamp = time.monotonic() if t is None else t
        # The member itself (a str) is stored: reading .value costs per event.
        self._rows.append((stamp, event, message_id, worker, attempt, detail))

    def appender(self) -> Callable[[Row], None]:
        """The raw append for a hot loop (the simulator): takes whole rows,
        ``(t, event, message_id, worker, attempt, detail)``, no checks."""
        return self._rows.append

    def extend(self, other: Ledger | pd.DataFrame) -> None:
        """Append another ledger's events (e.g. one a worker process wrote)."""
        frame = other.frame() if isinstance(other, Ledger) else other
        rows = frame[COLUMNS].itertuples(index=False, name=None)
        self._rows.extend(rows)

    def frame(self) -> pd.DataFrame:
        """All events, ordered by time, as a DataFrame with :data:`COLUMNS`."""
        import pandas as pd

        frame = pd.DataFrame(self._rows, columns=COLUMNS)
        frame = frame.astype({"t": "float64", "attempt": "int64"})
        if not frame.t.is_monotonic_increasing:
            frame = frame.sort_values("t", kind="stable").reset_index(drop=True)
        return frame

    def save(self, path: Path) -> None:
        """Write the events as Parquet."""
        self.frame().to_parquet(path, index=False)

    @classmethod
    def load(cls, path: Path) -> Ledger:
        import pandas as pd

        ledger = cls()
        ledger.extend(pd.read_parquet(path))
        return ledger


class FileLedger(Ledger):
    """A ledger that also writes each event to a file as it happens.

    For worker processes that may be killed: every event is one JSON line,
    written with a single unbuffered ``write`` so that a SIGKILL loses at most
    the event being written. Read the file back with :func:`read_events`.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def record(self, event: Event, message_id: str, **fields: Any) -> None:
        super().record(event, message_id, **fields)
        os.write(self._fd, (json.dumps(self._rows[-1]) + "\n").encode())

    def close(self) -> None:
        os.close(self._fd)


def read_events(path: Path) -> pd.DataFrame:
    """The events a :class:`FileLedger` wrote; a torn last line is skipped.

    A file the worker never got to create (it died first) reads as no events.
    """
    import pandas as pd

    rows = []
    text = path.read_text() if path.exists() else ""
    for line in text.splitlines():
        try:
            rows.append(tuple(json.loads(line)))
        except json.JSONDecodeError:
            continue  # the process died mid-write
    ledger = Ledger()
    ledger.extend(pd.DataFrame(rows, columns=COLUMNS))
    return ledger.frame()


@dataclass(frozen=True)
class CheckResult:
    """The checker's verdict; each set holds message ids."""

    published: int
    confirmed: int
    processed: int
    lost: frozenset[str]
    duplicated: frozenset[str]
    unexpected: frozenset[str]
    recovered: frozenset[str]
    extra_processings: int  # processings beyond the first, over all messages
    uses_confirms: bool

    @property
    def ok(self) -> bool:
        """True when nothing was lost, duplicated or unexpected."""
        return not (self.lost or self.duplicated or self.unexpected)

    def counts(self) -> dict[str, int]:
        return {
            "published": self.published,
            "confirmed": self.confirmed,
            "processed": self.processed,
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "unexpected": len(self.unexpected),
            "recovered": len(self.recovered),
            "extra_processings": self.extra_processings,
        }


def check(frame: pd.DataFrame, *, confirms: bool | None = None) -> CheckResult:
    """Count lost, duplicated, unexpected and recovered messages.

    With ``confirms`` left as None, a history with any confirmed event is read
    as one that used publisher confirms.
    """
    published = _ids(frame, Event.PUBLISHED)
    confirmed = _ids(frame, Event.CONFIRMED)
    processings = Counter(frame.loc[frame.event == Event.PROCESSED, "message_id"])
    processed = set(processings)
    if confirms is None:
        confirms = bool(confirmed)

    basis = confirmed if confirms else published
    duplicated = {mid for mid, n in processings.items() if n > 1}
    return CheckResult(
        published=len(published),
        confirmed=len(confirmed),
        processed=len(processed),
        lost=frozenset(basis - processed),
        duplicated=frozenset(duplicated),
        unexpected=frozenset(processed - published),
        recovered=frozenset((processed & published) - confirmed if confirms else ()),
        extra_processings=sum(n - 1 for n in processings.values()),
        uses_confirms=confirms,
    )


@dataclass(frozen=True)
class Summary:
    """Throughput and latency of one run, from its ledger."""

    messages: int
    duration_s: float
    throughput_per_s: float
    latency_ms: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def as_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "messages": self.messages,
            "duration_s": round(self.duration_s, 3),
            "throughput_per_s": round(self.throughput_per_s, 1),
        }
        row.update({f"latency_{k}_ms": round(v, 2) for k, v in self.latency_ms.items()})
        row.update(self.counts)
        return row


def latencies(frame: pd.DataFrame) -> pd.Series:
    """Seconds from each message's first publish to its first processing."""
    import pandas as pd

    first = frame.groupby(["message_id", "event"], sort=False)["t"].min().unstack()
    needed = {Event.PUBLISHED.value, Event.PROCESSED.value}
    if not needed <= set(first.columns):
        return pd.Series(dtype="float64", name="latency_s")
    delta = first[Event.PROCESSED.value] - first[Event.PUBLISHED.value]
    return delta.dropna().rename("latency_s")


def summarize(frame: pd.DataFrame, *, confirms: bool | None = None) -> Summary:
    """Throughput (distinct messages processed per second) and latency."""
    verdict = check(frame, confirms=confirms)
    processed = frame[frame.event == Event.PROCESSED]
    published = frame[frame.event == Event.PUBLISHED]
    if processed.empty or published.empty:
        return Summary(0, 0.0, 0.0, counts=verdict.counts())

    duration_s = float(processed.t.max() - published.t.min())
    messages = verdict.processed
    lat_ms = latencies(frame) * 1000
    percentiles = {
        name: float(lat_ms.quantile(q)) if len(lat_ms) else float("nan")
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
    }
    return Summary(
        messages=messages,
        duration_s=duration_s,
        throughput_per_s=messages / duration_s if duration_s > 0 else float("inf"),
        latency_ms=percentiles,
        counts=verdict.counts(),
    )


def rate_over_time(
    frame: pd.DataFrame, event: Event = Event.PROCESSED, bin_s: float = 0.1
) -> pd.Series:
    """Events per second in bins of ``bin_s``, time from the first event.

    The last bin is dropped when the events end part-way through it: a rate
    over a fraction of a bin would look like a drop that never happened.
    """
    import pandas as pd

    if frame.empty:
        return pd.Series(dtype="float64", name="per_s")
    start = frame.t.min()
    times = frame.loc[frame.event == event, "t"] - start
    bins = (times // bin_s).astype("int64")
    counts = bins.value_counts().sort_index()
    full = range(int(counts.index.max()) + 1) if len(counts) else range(0)
    counts = counts.reindex(full, fill_value=0)
    series = pd.Series(counts.to_numpy() / bin_s, index=counts.index * bin_s)
    if len(series) > 1 and times.max() - series.index[-1] < bin_s * 0.999:
        series = series.iloc[:-1]
    series.index.name = "t_s"
    return series.rename("per_s")


def _ids(frame: pd.DataFrame, event: Event) -> set[str]:
    return set(frame.loc[frame.event == event, "message_id"])


def from_events(events: Iterable[tuple[str, str]]) -> pd.DataFrame:
    """A ledger frame from (event, message_id) pairs, one time unit apart.

    Handy for hand-built histories in tests and exercises.
    """
    ledger = Ledger()
    for i, (event, message_id) in enumerate(events):
        ledger.record(Event(event), message_id, t=float(i))
    return ledger.frame()
