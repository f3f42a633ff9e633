"""Followers at an instant, baselines over the windows, growth and entity sums."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from services.common.names import Window
from services.scoring.maths import (
    DAY_MS,
    AccountSeries,
    DailyPoint,
    Growth,
    baselines,
    entity_followers,
    followers_at,
    growth,
    growths,
    per_1000,
)
from tests.unit.scoring.factories import ACCOUNT, STALENESS_MS, ms, on_day, point

D = 15_706  # 2013-01-01

AsSeries = Callable[[list[DailyPoint]], Sequence[DailyPoint]]
# Every lookup is checked on a plain sorted list and on an AccountSeries: both must answer the same.
REPRESENTATIONS: list[AsSeries] = [
    lambda points: sorted(points, key=lambda p: p.observed_at),
    lambda points: AccountSeries.from_points(ACCOUNT, points),
]


@pytest.fixture(params=REPRESENTATIONS, ids=["list", "series"])
def as_series(request: pytest.FixtureRequest) -> AsSeries:
    fn: AsSeries = request.param
    return fn


def test_the_point_in_force_at_its_boundaries(as_series: AsSeries) -> None:
    p = point(ms(2013, 3, 1, 9), 500)
    points = as_series([p])
    assert followers_at(points, p.observed_at, STALENESS_MS) == p  # observed exactly at t: included
    assert followers_at(points, p.observed_at - 1, STALENESS_MS) is None
    assert followers_at(points, p.observed_at + STALENESS_MS - 1, STALENESS_MS) == p
    # Observed exactly at t - staleness: excluded.
    assert followers_at(points, p.observed_at + STALENESS_MS, STALENESS_MS) is None


def test_the_latest_point_wins_and_a_later_point_of_the_same_day_does_not_count_yet(
    as_series: AsSeries,
) -> None:
    yesterday, today = on_day(D, 9, 100), on_day(D + 1, 20, 110)
    points = as_series([today, yesterday])
    assert followers_at(points, (D + 1) * DAY_MS + 12 * 3_600_000, STALENESS_MS) == yesterday
    assert followers_at(points, (D + 1) * DAY_MS + 20 * 3_600_000, STALENESS_MS) == today
    assert followers_at(points, (D + 30) * DAY_MS, STALENESS_MS) == today
    assert followers_at(points, D * DAY_MS, STALENESS_MS) is None


def test_a_series_counts_the_followers_of_the_point_in_force_without_building_it() -> None:
    points = [on_day(D, 9, 100), on_day(D + 1, 20, 110), on_day(D + 60, 9, 200)]
    series = AccountSeries.from_points(ACCOUNT, points)
    for t in range((D - 1) * DAY_MS, (D + 120) * DAY_MS, 3_600_000):
        found = followers_at(points, t, STALENESS_MS)
        assert series.followers_count_at(t, STALENESS_MS) == (None if found is None else found.followers)


def test_baselines_of_daily_points_are_exactly_the_window_before(as_series: AsSeries) -> None:
    points = as_series([on_day(d, 9, 1000 + d - D) for d in range(D, D + 400)])
    latest = on_day(D + 399, 9, 1399)
    found = baselines(points, STALENESS_MS)
    expected_days = {Window.D1: 1, Window.D7: 7, Window.D30: 30, Window.D90: 90, Window.D365: 365}
    assert found == {w: on_day(D + 399 - back, 9, 1399 - back) for w, back in expected_days.items()}
    month = growths(latest, found)[Window.D30]
    assert month.abs == 30 and month.pct == pytest.approx(100 * 30 / 1369)


def test_a_baseline_older_than_the_staleness_is_none(as_series: AsSeries) -> None:
    points = as_series([on_day(D, 9, 100), on_day(D + 100, 9, 200)])
    found = baselines(points, STALENESS_MS)
    assert all(found[w] is None for w in (Window.D1, Window.D7, Window.D30))  # 100 days > 45
    assert found[Window.D90] == on_day(D, 9, 100)  # 10 days before D+10
    assert found[Window.D365] is None  # before the first point
    assert growths(on_day(D + 100, 9, 200), found) == {Window.D90: (100, 100.0)}


def test_the_2012_2013_monthly_shape(as_series: AsSeries) -> None:
    """The hand-made barometer of 2012-2013: one figure a month. The 30-day baseline exists (the previous
    month's point is less than 45 days older), and so does the yearly one."""
    months = [(2012, m) for m in range(1, 13)] + [(2013, m) for m in range(1, 13)]
    monthly = [point(ms(y, m, 1, 9), 1000 + 10 * i) for i, (y, m) in enumerate(months)]
    points = as_series(list(reversed(monthly)))
    found = baselines(points, STALENESS_MS)
    # 2013-12-01 - 30 days = 2013-11-01: the November point, observed exactly then.
    assert found[Window.D30] == point(ms(2013, 11, 1, 9), 1000 + 10 * 22)
    assert found[Window.D365] == point(ms(2012, 12, 1, 9), 1000 + 10 * 11)
    # With monthly points a short window's baseline is the previous month's point (see SCORING.md).
    assert found[Window.D1] == found[Window.D7] == found[Window.D30]
    # On 2013-03-01 the 30-day baseline falls on 2013-01-30: January's point, 59 days older, in force.
    march = as_series(monthly[: months.index((2013, 3)) + 1])
    assert baselines(march, STALENESS_MS)[Window.D30] == point(ms(2013, 1, 1, 9), 1000 + 10 * 12)


def test_baselines_of_nothing() -> None:
    assert baselines([], STALENESS_MS) == dict.fromkeys(Window)
    assert baselines(AccountSeries(ACCOUNT), STALENESS_MS) == dict.fromkeys(Window)


def test_growth() -> None:
    assert growth(110, 100) == Growth(10, 10.0)
    assert growth(90, 100) == (-10, -10.0)
    assert growth(5, 0) == (5, None)  # undefined from zero
    assert growth(0, 0) == (0, None)


def test_entity_followers_sum_the_accounts_with_a_value() -> None:
    t = ms(2013, 6, 1)
    fresh = [point(t - DAY_MS, 100)]
    stale = [point(t - 50 * DAY_MS, 1000)]
    later = [point(t + 1, 10)]
    assert entity_followers([fresh, stale, later, [point(t, 5)]], t, STALENESS_MS) == 105
    assert entity_followers([stale, later], t, STALENESS_MS) is None
    assert entity_followers([], t, STALENESS_MS) is None
    assert entity_followers([[point(t, 0)]], t, STALENESS_MS) == 0


def test_per_1000_inhabitants() -> None:
    assert per_1000(1500, 158_000) == pytest.approx(9.4937, rel=1e-4)
    assert per_1000(None, 1000) is None
    assert per_1000(10, 0) is None
    assert per_1000(10, None) is None
