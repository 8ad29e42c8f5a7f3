"""Every benchmark runs (quick sizes) and measures queuelab next to a baseline.

This is a smoke test: speed itself is read from `python -m benchmarks`, never
asserted here.
"""

import importlib
import pkgutil

import pytest

import benchmarks

NAMES = sorted(
    m.name
    for m in pkgutil.iter_modules(benchmarks.__path__)
    if m.name.startswith("bench_")
)


@pytest.mark.parametrize("name", NAMES)
def test_benchmark_runs_and_has_a_baseline(name: str) -> None:
    table = importlib.import_module(f"benchmarks.{name}").main(quick=True)
    assert len(table) >= 2
    # Either wide (a queuelab column beside a baseline column) or long (a column
    # naming who did the work: queuelab and at least one baseline).
    wide = [c for c in table.columns if "queuelab" in str(c) and "vs" not in str(c)]
    if wide:
        numeric = table.select_dtypes("number").columns
        assert len(set(numeric) - set(wide)) >= 2, "no baseline column beside it"
        return
    labelled = [
        set(table[column].astype(str))
        for column in table.columns
        if table[column].astype(str).str.contains("queuelab").any()
    ]
    assert labelled, "no row or column is labelled as queuelab's"
    assert any(len(values) >= 2 for values in labelled), "no baseline beside it"
