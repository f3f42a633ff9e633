"""The reporting floor of audience alerts scales with the audience (docs/ALERTS.md, "The reporting
floor"): a clear share of a small audience is news even under 50 followers, while a large audience
keeps 50 followers and 0.5 % of it."""

from __future__ import annotations

import dataclasses
import random

from hypothesis import given
from hypothesis import strategies as st

from bench._alerts_buckets import BUCKETS, FORMER_FLOOR, evaluate_buckets
from services.common.names import AlertSeverity, AlertType
from services.scoring.alerts import DEFAULT_PARAMS, reporting_floor
from services.scoring.alerts.detection import DetectorParams, detect_point
from services.scoring.maths import DAY_MS, AccountSeries, DailyPoint

ACCOUNT = "facebook:mairie_petite_commune"
D0 = 19_723  # 2024-01-01, a Monday
HOUR = 3_600_000


def small_account(
    days: int, start: int, seed: int, follows: float = 1.5, unfollows: float = 1.0
) -> list[int]:
    """A small page: about ``follows`` new followers and ``unfollows`` departures a day, each day's count
    drawn as a sum of coin flips (Poisson-like), so a day is 0 to a handful of followers."""
    rng = random.Random(seed)
    followers, out = start, []
    for _ in range(days):
        gained = sum(rng.random() < follows / 10 for _ in range(10))
        lost = sum(rng.random() < unfollows / 10 for _ in range(10))
        followers = max(followers + gained - lost, 0)
        out.append(followers)
    return out


def audience_alerts(
    followers: list[int], params: DetectorParams = DEFAULT_PARAMS
) -> list[tuple[int, AlertType]]:
    """(day, type) of every audience alert on the daily series, fed in order as the worker does."""
    series = AccountSeries(ACCOUNT)
    out = []
    for day, count in enumerate(followers):
        point = DailyPoint.with_derived_id(ACCOUNT, (D0 + day) * DAY_MS + 9 * HOUR, count, posts_30d=8)
        change = series.add(point)
        for d in detect_point(series, point, replaced=change.replaced, params=params):
            if d.type in (AlertType.AUDIENCE_SPIKE, AlertType.AUDIENCE_DROP):
                out.append((day, d.type))
    return out


def test_the_floor_by_audience() -> None:
    assert reporting_floor(0) == 5
    assert reporting_floor(40) == 5  # never under 5 followers
    assert reporting_floor(250) == 5
    assert reporting_floor(1_000) == 20  # 2 % of a small audience
    assert reporting_floor(2_500) == 50  # where the fixed floor took over
    assert reporting_floor(10_000) == 50
    assert reporting_floor(100_000) == 500  # 0.5 % of a large one, as before
    assert reporting_floor(1_000_000) == 5_000
    assert reporting_floor(-3) == 5  # no negative audience


def test_the_former_floor_is_a_setting_away() -> None:
    for audience in (0, 40, 1_000, 2_500, 100_000):
        assert reporting_floor(audience, FORMER_FLOOR) == max(50, 0.005 * audience)


@given(st.floats(0, 1e8), st.floats(0, 1e8))
def test_the_floor_never_decreases_with_the_audience(a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert reporting_floor(low) <= reporting_floor(high)
    # Never above the former floor: scaling only lowers it, for small audiences.
    assert reporting_floor(high) <= max(50, 0.005 * high)
    assert reporting_floor(high) >= min(5, 50)


def test_a_commune_page_of_1000_losing_4_percent_overnight_is_reported() -> None:
    # The case: 1,000 followers, a few a day, then 40 lost overnight (4 %).
    followers = small_account(100, 1_000, seed=7)
    followers[90:] = [f - 40 for f in followers[90:]]
    assert followers[89] >= 1_000
    found = audience_alerts(followers)
    assert found == [(90, AlertType.AUDIENCE_DROP)]
    # The former floor of 50 followers never reported it.
    assert audience_alerts(followers, FORMER_FLOOR) == []


def test_the_drop_of_a_small_page_says_how_big_it_is() -> None:
    followers = small_account(100, 1_000, seed=7)
    followers[90:] = [f - 40 for f in followers[90:]]
    series = AccountSeries(ACCOUNT)
    detections = []
    for day, count in enumerate(followers):
        point = DailyPoint.with_derived_id(ACCOUNT, (D0 + day) * DAY_MS + 9 * HOUR, count, posts_30d=8)
        series.add(point)
        detections += detect_point(series, point)
    (drop,) = [d for d in detections if d.type is AlertType.AUDIENCE_DROP]
    assert drop.severity is AlertSeverity.WARNING  # 4 % of the audience: from 3 %
    assert 0.035 < float(drop.details["share"]) < 0.045  # type: ignore[arg-type]


def test_a_clear_share_of_a_tiny_audience_is_news() -> None:
    # 60 followers, quiet (about one change a day): 12 leave at once (20 %).
    followers = small_account(100, 60, seed=3, follows=0.4, unfollows=0.3)
    followers[90:] = [f - 12 for f in followers[90:]]
    assert audience_alerts(followers) == [(90, AlertType.AUDIENCE_DROP)]


def test_what_stays_below_the_floor_of_a_small_audience() -> None:
    quiet = small_account(100, 60, seed=3, follows=0.4, unfollows=0.3)
    # Under the floor of 5 followers: nothing, however steady the account.
    followers = quiet[:90] + [f + 4 for f in quiet[90:]]
    assert audience_alerts(followers) == []
    # 1 % of 1,000 (half the floor of 20): nothing either.
    followers = small_account(100, 1_000, seed=7)
    followers[90:] = [f - 10 for f in followers[90:]]
    assert audience_alerts(followers) == []


def test_small_accounts_raise_no_alert_on_their_own_noise() -> None:
    for seed in range(20):
        for start in (30, 300, 1_000, 2_000):
            assert audience_alerts(small_account(150, start, seed=seed)) == [], (seed, start)


def test_the_bucket_harness_runs_small() -> None:
    results = evaluate_buckets(seed=3, n=3, clean=3, sizes=(10.0,))
    assert [r.name for r in results] == [name for name, _, _ in BUCKETS]
    for r in results:
        assert [c.series for c in r.cells] == [3, 3]  # a spike and a drop cell
        assert r.clean is not None and r.clean.series == 3
    params = dataclasses.replace(DEFAULT_PARAMS, small_change_share=0.0, small_change_min=50)
    assert params == FORMER_FLOOR
