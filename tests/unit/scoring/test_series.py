"""AccountSeries: choosing each day's point, the retained horizon, what add reports, the binary form."""

from __future__ import annotations

import itertools
import random

import pytest

from services.common.names import AccountStatus
from services.scoring.maths import DAY_MS, AccountSeries, ChangeKind, DailyPoint
from tests.unit.scoring.factories import ACCOUNT, HOUR_MS, on_day, point

D = 15_706  # 2013-01-01


def test_a_day_keeps_its_latest_snapshot_whatever_the_order() -> None:
    morning, evening = on_day(D, 8, 100), on_day(D, 20, 110)
    for order in ([morning, evening], [evening, morning]):
        series = AccountSeries(ACCOUNT)
        for p in order:
            series.add(p)
        assert series.points == [evening]


def test_what_add_reports() -> None:
    series = AccountSeries(ACCOUNT)
    first = series.add(on_day(D, 9, 100))
    assert (first.kind, first.changed, first.prev, first.next) == (ChangeKind.NEW_DAY, True, None, None)

    later = series.add(on_day(D + 2, 9, 120))
    assert later.kind is ChangeKind.NEW_DAY and later.prev == on_day(D, 9, 100) and later.next is None

    between = series.add(on_day(D + 1, 9, 110))
    assert between.kind is ChangeKind.NEW_DAY
    assert (between.prev, between.next) == (on_day(D, 9, 100), on_day(D + 2, 9, 120))

    replaced = series.add(on_day(D + 1, 18, 111))
    assert replaced.kind is ChangeKind.REPLACED and replaced.changed
    assert replaced.replaced == on_day(D + 1, 9, 110)
    assert (replaced.prev, replaced.next) == (on_day(D, 9, 100), on_day(D + 2, 9, 120))
    assert replaced.presence_applicable and not replaced.too_old

    older = series.add(on_day(D + 1, 12, 999))
    assert (older.kind, older.changed) == (ChangeKind.OLDER, False)
    again = series.add(on_day(D + 1, 18, 111))
    assert (again.kind, again.changed) == (ChangeKind.DUPLICATE, False)
    assert not again.presence_applicable

    assert [p.followers for p in series] == [100, 111, 120]


def test_a_tie_on_the_instant_goes_to_the_greater_event_id() -> None:
    t = D * DAY_MS + 9 * HOUR_MS
    a, b = point(t, 1, event_id="import-a"), point(t, 2, event_id="import-b")
    for order in ([a, b], [b, a]):
        series = AccountSeries(ACCOUNT)
        kinds = [series.add(p).kind for p in order]
        assert series.points == [b]
        assert kinds == (
            [ChangeKind.NEW_DAY, ChangeKind.REPLACED]
            if order[0] is a
            else [ChangeKind.NEW_DAY, ChangeKind.OLDER]
        )


def test_a_derived_id_ties_with_an_explicit_one_by_the_same_rule() -> None:
    derived = on_day(D, 9, 1)
    explicit = on_day(D, 9, 2, event_id="ffff-explicit")  # greater than any hexadecimal UUID
    series = AccountSeries.from_points(ACCOUNT, [explicit, derived])
    restored = AccountSeries.from_bytes(series.to_bytes())
    assert restored.add(derived).kind is ChangeKind.OLDER
    assert restored.points == [explicit]


def _history(rng: random.Random) -> list[DailyPoint]:
    points = []
    for day in rng.sample(range(D, D + 30), 6):
        for _ in range(rng.randint(1, 2)):
            points.append(on_day(day, rng.choice([8, 9, 20]), rng.randrange(5000)))
    return points


def test_every_insertion_order_gives_the_same_series() -> None:
    rng = random.Random(1)
    points = _history(rng)[:7]
    expected = AccountSeries.from_points(ACCOUNT, points).to_bytes()
    for order in itertools.permutations(points):
        assert AccountSeries.from_points(ACCOUNT, order).to_bytes() == expected


def test_adding_everything_twice_changes_nothing() -> None:
    points = _history(random.Random(2))
    series = AccountSeries.from_points(ACCOUNT, points)
    before = series.to_bytes()
    changes = [series.add(p) for p in reversed(points)]
    assert series.to_bytes() == before
    assert not any(c.changed for c in changes)
    assert {c.kind for c in changes} <= {ChangeKind.DUPLICATE, ChangeKind.OLDER}


# --- The retained horizon.


def test_the_horizon_keeps_its_days_and_the_boundary_point() -> None:
    series = AccountSeries(ACCOUNT, horizon_days=10)
    for day in range(D, D + 30):
        series.add(on_day(day))
    # Days D+19..D+29 (latest day - 10 and later) and the boundary point of day D+18.
    assert [p.day for p in series] == list(range(D + 18, D + 30))


def test_a_point_before_the_horizon_is_too_old() -> None:
    series = AccountSeries.from_points(ACCOUNT, [on_day(d) for d in range(D, D + 30)], horizon_days=10)
    kept = series.to_bytes()

    older = series.add(on_day(D + 5))  # before the boundary point (D+18)
    assert (older.kind, older.changed, older.too_old) == (ChangeKind.TOO_OLD, False, True)
    assert series.to_bytes() == kept

    # A newer snapshot of the boundary point's day replaces it: the series changes, presence does not
    # know its neighbours.
    boundary = series.add(on_day(D + 18, 23, 5))
    assert (boundary.kind, boundary.changed, boundary.presence_applicable) == (
        ChangeKind.TOO_OLD,
        True,
        False,
    )
    assert series[0] == on_day(D + 18, 23, 5)


def test_the_boundary_point_is_the_last_before_the_cutoff_whatever_the_order() -> None:
    points = [on_day(d) for d in (D, D + 3, D + 7, D + 20, D + 25, D + 31)]
    expected = [on_day(d) for d in (D + 20, D + 25, D + 31)]
    for order in itertools.permutations(points):
        series = AccountSeries.from_points(ACCOUNT, order, horizon_days=10)
        assert series.points == expected


def test_the_previous_point_is_exact_at_the_edge_of_the_horizon() -> None:
    series = AccountSeries.from_points(ACCOUNT, [on_day(D), on_day(D + 40)], horizon_days=10)
    assert [p.day for p in series] == [D, D + 40]  # D is the boundary point
    change = series.add(on_day(D + 31))
    assert change.kind is ChangeKind.NEW_DAY
    assert (change.prev, change.next) == (on_day(D), on_day(D + 40))
    assert [p.day for p in series] == [D, D + 31, D + 40]


def test_a_new_latest_point_after_a_long_gap_keeps_the_old_one_as_boundary() -> None:
    series = AccountSeries.from_points(ACCOUNT, [on_day(D), on_day(D + 1)], horizon_days=10)
    change = series.add(on_day(D + 500))
    assert change.prev == on_day(D + 1)
    assert [p.day for p in series] == [D + 1, D + 500]


# --- The binary form.


def _year(rng: random.Random, followers: int, days: int = 365) -> list[DailyPoint]:
    """A year of one daily snapshot around 06:00, with derived ids, as pollers produce them."""
    points, posts = [], 20
    for day in range(D, D + days):
        followers += rng.randint(-3, 12)
        posts = max(0, posts + rng.randint(-2, 2))
        points.append(
            point(
                day * DAY_MS + 6 * HOUR_MS + rng.randrange(600_000),
                followers,
                posts_30d=posts,
                interactions_30d=posts * rng.randint(5, 40),
                replies_30d=rng.randint(0, posts),
                automated_posts_30d=rng.randint(0, 3),
            )
        )
    return points


@pytest.mark.parametrize(("followers", "max_bytes_per_point"), [(3_000, 13.2), (250_000, 15.2)])
def test_a_year_of_daily_points_round_trips_in_few_bytes(followers: int, max_bytes_per_point: float) -> None:
    points = _year(random.Random(3), followers)
    series = AccountSeries.from_points(ACCOUNT, points)
    data = series.to_bytes()
    assert len(data) / len(points) <= max_bytes_per_point
    restored = AccountSeries.from_bytes(data)
    assert restored == series
    assert restored.points == points
    assert restored.to_bytes() == data


def test_round_trip_of_every_kind_of_value() -> None:
    points = [
        point(D * DAY_MS, 0),  # midnight, no counts
        point(
            (D + 1) * DAY_MS + DAY_MS - 1,
            2**53 - 1,
            AccountStatus.DELETED,
            posts_30d=0,
            interactions_30d=2**53 - 1,
            replies_30d=0,
            automated_posts_30d=0,
        ),
        point((D + 2) * DAY_MS + 5, 7, AccountStatus.SUSPENDED, event_id="import:2013/42", posts_30d=3),
        point((D + 3) * DAY_MS + 5, 7, event_id="Ünïcode-is-not-in-the-contract-but-round-trips"),
    ]
    series = AccountSeries.from_points(ACCOUNT, points)
    restored = AccountSeries.from_bytes(series.to_bytes())
    assert restored.points == points
    assert [p.event_id for p in restored] == [p.event_id for p in points]
    assert restored.account_id == ACCOUNT


def test_an_empty_series_round_trips() -> None:
    empty = AccountSeries("bluesky:mairie.example")
    restored = AccountSeries.from_bytes(empty.to_bytes())
    assert restored == empty and len(restored) == 0 and restored.latest is None


def test_equal_series_have_equal_bytes_whatever_their_history() -> None:
    # Column widths follow the values present, not the values once seen.
    small, big = on_day(D, 9, 200), on_day(D, 8, 1_000_000)
    direct = AccountSeries.from_points(ACCOUNT, [small])
    replaced = AccountSeries.from_points(ACCOUNT, [big, small])
    assert replaced.to_bytes() == direct.to_bytes()

    old_big = [on_day(D, 9, 70_000), on_day(D + 1, 9, 70_000)]
    recent = [on_day(d, 9, 100) for d in range(D + 20, D + 25)]
    pruned = AccountSeries.from_points(ACCOUNT, old_big + recent, horizon_days=3)
    restored = AccountSeries.from_bytes(
        AccountSeries.from_points(ACCOUNT, old_big, horizon_days=3).to_bytes(), 3
    )
    for p in recent:
        restored.add(p)
    assert (
        pruned.to_bytes() == restored.to_bytes() == AccountSeries.from_points(ACCOUNT, recent, 3).to_bytes()
    )


def test_a_restored_series_goes_on_as_the_original() -> None:
    rng = random.Random(4)
    points = _year(rng, 60_000, days=60)
    rng.shuffle(points)
    whole = AccountSeries.from_points(ACCOUNT, points, horizon_days=20)
    stepwise = AccountSeries(ACCOUNT, horizon_days=20)
    for p in points:
        stepwise = AccountSeries.from_bytes(stepwise.to_bytes(), horizon_days=20)
        stepwise.add(p)
    assert stepwise.to_bytes() == whole.to_bytes()


def test_a_shorter_horizon_applies_when_restoring() -> None:
    series = AccountSeries.from_points(ACCOUNT, [on_day(d) for d in range(D, D + 30)])
    assert len(AccountSeries.from_bytes(series.to_bytes(), horizon_days=10)) == 12


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x02",
        b"\x01\x00",
        AccountSeries.from_points(ACCOUNT, [on_day(D)]).to_bytes()[:-3],
        AccountSeries.from_points(ACCOUNT, [on_day(D)]).to_bytes() + b"\x00",
    ],
)
def test_bytes_that_are_not_a_series_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="AccountSeries"):
        AccountSeries.from_bytes(data)


def test_impossible_points_are_refused() -> None:
    series = AccountSeries(ACCOUNT)
    with pytest.raises(ValueError, match="followers"):
        series.add(on_day(D, followers=-1))
    with pytest.raises(ValueError, match="count"):
        series.add(point(D * DAY_MS, posts_30d=-1))
    with pytest.raises(ValueError, match="1970"):
        series.add(point(-1))
    assert len(series) == 0


def test_a_series_is_a_sequence_of_points() -> None:
    points = [on_day(d) for d in range(D, D + 5)]
    series = AccountSeries.from_points(ACCOUNT, reversed(points))
    assert list(series) == points
    assert series[-1] == series.latest == points[-1]
    assert series[1:3] == points[1:3]
    with pytest.raises(IndexError):
        series[5]


def test_since_gives_the_points_from_an_instant() -> None:
    points = [on_day(d, hour=9) for d in range(D, D + 5)]
    series = AccountSeries.from_points(ACCOUNT, points)
    for p in points:
        t = p.observed_at
        for at in (t - 1, t, t + 1, t - 9 * HOUR_MS, t + 15 * HOUR_MS - 1):
            assert series.since(at) == [q for q in points if q.observed_at >= at]
    assert series.since(0) == points
    assert AccountSeries(ACCOUNT).since(0) == []
