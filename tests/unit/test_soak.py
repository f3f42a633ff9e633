"""The soak's verdict (bench/_soak.py): trends and checks on made-up samples, no process, no broker."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench._soak import Check, Limits, Sample, Totals, judge, slope, trend, windows

LIMITS = Limits(rate=1000.0, warm_up_s=60.0, window_s=60.0)


def sample(t: float, lag: int = 500, ingest: float = 100.0, scoring: float = 400.0) -> Sample:
    return Sample(
        t=t,
        sent=int(t * 1000),
        accepted=int(t * 1000),
        rejected=0,
        raw=0,
        produced=int(t * 1000),
        committed=int(t * 1000) - lag,
        lag=lag,
        stored=int(t * 1000) - lag,
        dead_letters=0,
        behind_s=0.0,
        rss_mb={"ingest": ingest, "scoring": scoring},
    )


TOTALS = Totals(
    accepted=600_000,
    raw=600,
    stored_distinct=600_000,
    stored_rows=600_000,
    dead_letters=600,
    dead_letter_records=600,
    dead_letter_codes={"invalid_json": 120, "invalid_encoding": 120, "invalid_event": 360},
    raw_codes={"invalid_json": 120, "invalid_encoding": 120, "invalid_event": 360},
    invalid_sent=1200,
    rejected=1200,
    unexpected_rejections=0,
    failed_requests=0,
    drained=True,
    drain_s=3.0,
)


def failed(checks: list[Check]) -> list[str]:
    return [c.name for c in checks if not c.ok]


def test_slope_is_least_squares() -> None:
    assert slope([0, 1, 2, 3], [1, 3, 5, 7]) == pytest.approx(2.0)
    assert slope([0, 1, 2], [5, 5, 5]) == 0.0
    assert slope([1], [4]) == 0.0
    assert slope([2, 2], [1, 9]) == 0.0


def test_windows_leave_out_the_warm_up() -> None:
    samples = [sample(t) for t in range(10, 610, 10)]
    first, last = windows(samples, LIMITS)
    assert [s.t for s in first] == [60, 70, 80, 90, 100, 110]
    assert [s.t for s in last] == [550, 560, 570, 580, 590, 600]
    # Too few samples in a window: at least three are taken.
    short = windows(samples, replace(LIMITS, window_s=5.0))
    assert [s.t for s in short[0]] == [60, 70, 80]


def test_a_steady_run_passes() -> None:
    samples = [sample(t, lag=400 + (t % 30) * 10, ingest=100 + (t % 20) / 10) for t in range(10, 610, 10)]
    assert failed(judge(samples, TOTALS, LIMITS, 600.0, 600_000)) == []


def test_growing_memory_fails_and_says_by_how_much() -> None:
    samples = [sample(t, scoring=400 + t / 5) for t in range(10, 610, 10)]  # +120 MB over the run
    checks = judge(samples, TOTALS, LIMITS, 600.0, 600_000)
    assert failed(checks) == ["scoring memory flat (<= +10%)"]
    first, last, per_hour = trend(samples, LIMITS, lambda s: s.rss_mb["scoring"])
    assert (first, last) == pytest.approx((417.0, 515.0))
    assert per_hour == pytest.approx(720.0)


def test_growing_lag_fails() -> None:
    samples = [sample(t, lag=20 * t) for t in range(10, 610, 10)]  # falls behind by 20 records a second
    assert failed(judge(samples, TOTALS, LIMITS, 600.0, 600_000)) == ["lag flat"]


def test_a_lost_or_doubled_event_fails() -> None:
    samples = [sample(t) for t in range(10, 610, 10)]
    lost = replace(TOTALS, stored_distinct=599_999)
    assert failed(judge(samples, lost, LIMITS, 600.0, 600_000)) == [
        "produced = stored + dead letters",
        "every acknowledged snapshot stored, once",
    ]
    wrong_code = replace(TOTALS, dead_letter_codes={"invalid_json": 240, "invalid_event": 360})
    assert failed(judge(samples, wrong_code, LIMITS, 600.0, 600_000)) == [
        "every bad record dead-lettered with its reason"
    ]
    undrained = replace(TOTALS, drained=False)
    assert "produced = stored + dead letters" in failed(judge(samples, undrained, LIMITS, 600.0, 600_000))


def test_a_rate_not_held_or_a_valid_line_refused_fails() -> None:
    samples = [sample(t) for t in range(10, 610, 10)]
    assert failed(judge(samples, TOTALS, LIMITS, 600.0, 540_000)) == ["rate sustained (>= 95% of 1,000/s)"]
    refused = replace(TOTALS, rejected=1201, unexpected_rejections=1)
    assert failed(judge(samples, refused, LIMITS, 600.0, 600_000)) == [
        "ingest refused exactly the invalid snapshots"
    ]
