"""The simulator's back-fill schedule: the days the dashboard reads first, every day exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.common.reference import load_entities
from services.ingest.simulate import back_fill_schedule
from services.ingest.sources.simulator import Simulator, SimulatorParams


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


def test_the_gone_accounts_of_a_day_are_its_rows_that_are_not_active() -> None:
    origin = datetime(2026, 1, 1, tzinfo=UTC)
    sim = Simulator(load_entities(), params=SimulatorParams(scale=0.3), seed=0, origin=origin)
    batches = [sim.observe(origin + timedelta(days=d)) for d in range(20, 60)]
    gone = [b.gone() for b in batches]
    assert sum(len(g) for g in gone) > 0
    for batch, part in zip(batches, gone, strict=True):
        rows = dict(batch.records())
        assert len(part) == int((batch.status != 0).sum())
        for key, value in part.records():
            assert rows[key] == value  # the same bytes as in the whole day's batch
            assert b'"status":"active"' not in value
