"""Arrival order does not matter: seeded random histories, fed in random orders, through the series and
the incremental presence update, always give what the definitions give on the whole history.

(hypothesis is not a dependency: a seeded ``random.Random`` makes every failure reproducible; the
failing seed is in the assertion message.)
"""

from __future__ import annotations

import random

from services.common.names import AccountStatus
from services.scoring.maths import (
    DAY_MS,
    AccountSeries,
    DailyPoint,
    Intervals,
    apply_change,
    baselines,
    intervals_from_points,
    newer,
)
from tests.unit.scoring.factories import ACCOUNT, HOUR_MS, STALENESS_MS, point

D = 15_706  # 2013-01-01
STATUSES = [AccountStatus.ACTIVE] * 6 + [AccountStatus.DELETED, AccountStatus.SUSPENDED]


def random_history(rng: random.Random, span_days: int) -> list[DailyPoint]:
    """Snapshots of one account: some days with several (ties on the instant included), gaps longer
    than the staleness, every status, derived and explicit ids, and exact duplicates."""
    snapshots: dict[tuple[int, str], DailyPoint] = {}
    for day in rng.sample(range(D, D + span_days), rng.randint(1, min(span_days, 40))):
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            observed_at = day * DAY_MS + rng.choice([0, 9 * HOUR_MS, 9 * HOUR_MS, 20 * HOUR_MS, DAY_MS - 1])
            explicit = rng.random() < 0.3
            event_id = f"e{rng.randrange(3)}" if explicit else None
            p = point(
                observed_at,
                rng.randrange(100_000),
                rng.choice(STATUSES),
                event_id=event_id,
                posts_30d=rng.choice([None, rng.randrange(50)]),
            )
            snapshots.setdefault((p.observed_at, p.event_id), p)  # one event id, one snapshot
    history = list(snapshots.values())
    history += rng.sample(history, rng.randint(0, len(history)))  # delivered again
    rng.shuffle(history)
    return history


def daily_points(history: list[DailyPoint]) -> list[DailyPoint]:
    """The daily points by the definition, computed the obvious way."""
    best: dict[int, DailyPoint] = {}
    for p in history:
        if p.day not in best or newer(p, best[p.day]):
            best[p.day] = p
    return [best[day] for day in sorted(best)]


def retained(points: list[DailyPoint], horizon_days: int) -> list[DailyPoint]:
    """What a series keeps of ``points`` (daily, sorted): the horizon and the boundary point."""
    cutoff = points[-1].day - horizon_days
    inside = [p for p in points if p.day >= cutoff]
    before = [p for p in points if p.day < cutoff]
    return before[-1:] + inside


def test_any_order_gives_the_definitions_within_the_horizon() -> None:
    for seed in range(3000):
        rng = random.Random(seed)
        history = random_history(rng, span_days=rng.choice([5, 60, 300]))
        expected = daily_points(history)
        series = AccountSeries(ACCOUNT)
        intervals: Intervals = ()
        for p in history:
            change = series.add(p)
            assert not change.too_old, seed
            intervals = apply_change(intervals, change, STALENESS_MS)
        assert series.points == expected, seed
        assert intervals == intervals_from_points(expected, STALENESS_MS), seed
        assert baselines(series, STALENESS_MS) == baselines(expected, STALENESS_MS), seed


def test_any_order_with_a_short_horizon_restarts_and_recomputes() -> None:
    """As the worker runs: the state goes through bytes between events, and a point beyond the
    horizon has presence recomputed from every daily point so far (read back from storage)."""
    for seed in range(1500):
        rng = random.Random(seed)
        horizon = rng.choice([1, 7, 30])
        history = random_history(rng, span_days=rng.choice([20, 120]))
        series = AccountSeries(ACCOUNT, horizon)
        intervals: Intervals = ()
        seen: list[DailyPoint] = []
        for p in history:
            if rng.random() < 0.3:
                series = AccountSeries.from_bytes(series.to_bytes(), horizon)
            seen.append(p)
            change = series.add(p)
            if change.too_old:
                intervals = intervals_from_points(daily_points(seen), STALENESS_MS)
            else:
                intervals = apply_change(intervals, change, STALENESS_MS)
        expected = daily_points(history)
        assert series.points == retained(expected, horizon), seed
        assert intervals == intervals_from_points(expected, STALENESS_MS), seed
        canonical = AccountSeries.from_points(ACCOUNT, sorted(history, key=lambda p: p.observed_at), horizon)
        assert series.to_bytes() == canonical.to_bytes(), seed


def test_each_step_agrees_with_the_definition() -> None:
    """Not only the end: after every event the intervals are those of the daily points so far."""
    for seed in range(300):
        rng = random.Random(10_000 + seed)
        history = random_history(rng, span_days=90)
        series = AccountSeries(ACCOUNT)
        intervals: Intervals = ()
        for i, p in enumerate(history):
            intervals = apply_change(intervals, series.add(p), STALENESS_MS)
            assert intervals == intervals_from_points(daily_points(history[: i + 1]), STALENESS_MS), seed
