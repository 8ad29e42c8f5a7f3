"""The checker on hand-built histories with known answers."""

from pathlib import Path

import pytest

from queuelab.ledger import Event, Ledger, check, from_events, rate_over_time, summarize


def test_an_empty_history_has_nothing_wrong() -> None:
    verdict = check(Ledger().frame())
    assert verdict.ok
    assert verdict.counts() == dict.fromkeys(verdict.counts(), 0)


def test_a_clean_history_with_confirms() -> None:
    frame = from_events(
        [("published", "a"), ("confirmed", "a"), ("processed", "a"), ("acked", "a")]
    )
    verdict = check(frame)
    assert verdict.ok
    assert verdict.uses_confirms
    assert (verdict.published, verdict.confirmed, verdict.processed) == (1, 1, 1)


def test_lost_duplicated_unexpected_and_recovered_are_told_apart() -> None:
    frame = from_events(
        [
            ("published", "ok"),
            ("confirmed", "ok"),
            ("processed", "ok"),
            ("published", "lost"),
            ("confirmed", "lost"),
            ("published", "dup"),
            ("confirmed", "dup"),
            ("processed", "dup"),
            ("processed", "dup"),
            ("processed", "dup"),
            ("processed", "ghost"),
            ("published", "unconfirmed"),
            ("processed", "unconfirmed"),
            ("published", "never-confirmed-never-processed"),
        ]
    )
    verdict = check(frame)
    assert verdict.lost == {"lost"}
    assert verdict.duplicated == {"dup"}
    assert verdict.extra_processings == 2
    assert verdict.unexpected == {"ghost"}
    assert verdict.recovered == {"unconfirmed"}
    assert not verdict.ok


def test_without_confirms_every_published_message_must_be_processed() -> None:
    frame = from_events([("published", "a"), ("published", "b"), ("processed", "a")])
    verdict = check(frame)
    assert not verdict.uses_confirms
    assert verdict.lost == {"b"}
    assert verdict.recovered == frozenset()


def test_forcing_confirms_on_a_history_without_any_counts_nothing_as_lost() -> None:
    frame = from_events([("published", "a"), ("processed", "a"), ("published", "b")])
    verdict = check(frame, confirms=True)
    assert verdict.lost == frozenset()
    assert verdict.recovered == {"a"}


def test_summary_latency_and_throughput_from_known_times() -> None:
    ledger = Ledger()
    for i in range(10):
        ledger.record(Event.PUBLISHED, f"m{i}", t=float(i))
        ledger.record(Event.PROCESSED, f"m{i}", t=i + 0.5)
    summary = summarize(ledger.frame())
    assert summary.messages == 10
    assert summary.duration_s == pytest.approx(9.5)
    assert summary.throughput_per_s == pytest.approx(10 / 9.5)
    assert summary.latency_ms["p50"] == pytest.approx(500)
    assert summary.latency_ms["p99"] == pytest.approx(500)


def test_latency_counts_from_the_first_publish_to_the_first_processing() -> None:
    ledger = Ledger()
    ledger.record(Event.PUBLISHED, "m", t=0.0)
    ledger.record(Event.PUBLISHED, "m", t=1.0)  # republished after a reconnect
    ledger.record(Event.PROCESSED, "m", t=2.0)
    ledger.record(Event.PROCESSED, "m", t=5.0)  # a duplicate
    assert summarize(ledger.frame()).latency_ms["p50"] == pytest.approx(2000)


def test_rate_over_time_bins_processed_events_and_drops_a_partial_last_bin() -> None:
    ledger = Ledger()
    ledger.record(Event.PUBLISHED, "a", t=0.0)
    for i, t in enumerate([0.05, 0.06, 0.25, 0.31]):
        ledger.record(Event.PROCESSED, f"m{i}", t=t)
    rate = rate_over_time(ledger.frame(), bin_s=0.1)
    assert rate.tolist() == pytest.approx([20.0, 0.0, 10.0])  # 0.3-0.4 is partial


def test_ledgers_from_several_workers_merge_in_time_order(tmp_path: Path) -> None:
    producer, worker = Ledger(), Ledger()
    producer.record(Event.PUBLISHED, "a", t=1.0)
    worker.record(Event.PROCESSED, "a", worker="w1", attempt=1, t=2.0)
    producer.record(Event.PUBLISHED, "b", t=3.0)
    worker.save(tmp_path / "worker.parquet")
    producer.extend(Ledger.load(tmp_path / "worker.parquet"))

    frame = producer.frame()
    assert frame.message_id.tolist() == ["a", "a", "b"]
    assert frame.worker.tolist() == ["", "w1", ""]
    assert check(frame).lost == {"b"}
