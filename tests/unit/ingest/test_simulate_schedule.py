"""The simulator's back-fill schedule: the days the dashboard reads first, every day exactly once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.ingest.simulate import back_fill_schedule


@pytest.mark.parametrize(
    ("today", "first"),
    [
        (datetime(2026, 12, 7, tzinfo=UTC), [1, 7, 30, 61, 90]),  # Nov 7, Oct 7
        (datetime(2026, 3, 10, tzinfo=UTC), [1, 7, 28, 30, 59, 90]),  # Feb 10 (28 days), Jan 10
        (datetime(2026, 3, 31, tzinfo=UTC), [1, 7, 30, 31, 59, 90]),  # Feb 28 (clamped), Jan 31
    ],
)
def test_first_the_days_the_figures_read(today: datetime, first: list[int]) -> None:
    got, rest = back_fill_schedule(today, 90)
    assert got == first
    assert sorted(got + rest) == list(range(1, 91))  # every day once
    assert rest == sorted(rest)  # newest first


def test_short_and_empty_back_fills() -> None:
    today = datetime(2026, 3, 10, tzinfo=UTC)
    assert back_fill_schedule(today, 3) == ([1, 3], [2])
    assert back_fill_schedule(today, 1) == ([1], [])
    assert back_fill_schedule(today, 0) == ([], [])
    first, rest = back_fill_schedule(today, 400)
    assert first[-1] == 400 and 365 in first and len(first) + len(rest) == 400
