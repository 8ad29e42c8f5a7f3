"""What an experiment leaves: ledger, queue depth, verdict, and how to redo it."""

import json
import platform
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from queuelab.experiments.spec import ExperimentSpec
from queuelab.ledger import CheckResult, Event, Summary, check, summarize

RESULTS = Path("data/results")
_PACKAGES = ("queuelab", "aio-pika", "redis", "simpy", "pandas")


@dataclass
class ExperimentResult:
    spec: ExperimentSpec
    ledger: pd.DataFrame
    depth: pd.DataFrame  # t_s, depth: messages waiting, sampled during the run
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> CheckResult:
        return check(self.ledger)

    @property
    def summary(self) -> Summary:
        return summarize(self.ledger)

    @property
    def crashes(self) -> int:
        """Worker crashes (broker faults are not counted here)."""
        faults = self.ledger[self.ledger.event == Event.FAULT.value]
        return int((faults.worker != "broker").sum())

    def replacement_s(self) -> float:
        """Median time from a worker crash to its replacement's first delivery.

        The simulator's ``restart_s`` set to this makes it model the real
        supervisor rather than an ideal one. NaN when nothing crashed.
        """
        frame = self.ledger
        faults = frame[(frame.event == Event.FAULT.value) & (frame.worker != "broker")]
        delivered = frame[frame.event == Event.DELIVERED.value]
        gaps = []
        times = delivered.t.to_numpy(dtype="float64")
        workers = delivered.worker.to_numpy()
        for worker, t in zip(
            faults.worker, faults.t.to_numpy(dtype="float64"), strict=True
        ):
            later = times[(workers == worker) & (times > t)]
            if len(later):
                gaps.append(float(later.min()) - float(t))
        return float(pd.Series(gaps).median()) if gaps else float("nan")

    def as_row(self) -> dict[str, Any]:
        """One line for a comparison table: the knobs and what the checker found."""
        spec, verdict = self.spec, self.verdict
        sent = max(verdict.confirmed if verdict.uses_confirms else verdict.published, 1)
        return {
            "name": spec.name,
            "backend": spec.backend.value,
            "guarantee": spec.guarantee.value,
            "crash_p": spec.crash_p,
            "messages": verdict.published,
            "crashes": self.crashes,
            **verdict.counts(),
            "lost_pct": 100 * len(verdict.lost) / sent,
            "duplicated_pct": 100 * len(verdict.duplicated) / sent,
        }

    def save(self, folder: Path = RESULTS) -> Path:
        """Write ``<folder>/<name>/`` with ledger and depth (Parquet) and meta.json."""
        out = folder / self.spec.name
        out.mkdir(parents=True, exist_ok=True)
        self.ledger.to_parquet(out / "ledger.parquet", index=False)
        self.depth.to_parquet(out / "depth.parquet", index=False)
        meta = {**self.meta, "spec": json.loads(self.spec.to_json())}
        (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        return out

    @classmethod
    def load(cls, folder: Path) -> "ExperimentResult":
        meta = json.loads((folder / "meta.json").read_text())
        spec = ExperimentSpec.from_json(json.dumps(meta.pop("spec")))
        return cls(
            spec,
            pd.read_parquet(folder / "ledger.parquet"),
            pd.read_parquet(folder / "depth.parquet"),
            meta,
        )


def environment(**extra: Any) -> dict[str, Any]:
    """Versions and time, to record beside a result."""
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "versions": versions,
        **extra,
    }
