"""Presence intervals: the definition, presence as of a date, the incremental update, transitions."""

from __future__ import annotations

import random

from services.common.names import AccountStatus
from services.scoring.maths import (
    DAY_MS,
    Intervals,
    any_present_at,
    apply_point,
    difference,
    intervals_from_points,
    present_at,
    transitions,
)
from tests.unit.scoring.factories import STALENESS_MS, ms, point

ACTIVE, DELETED, SUSPENDED = AccountStatus.ACTIVE, AccountStatus.DELETED, AccountStatus.SUSPENDED


def test_presence_as_of_a_date() -> None:
    jan, feb, apr, jul = ms(2013, 1, 10), ms(2013, 2, 10), ms(2013, 4, 1), ms(2013, 7, 1)
    points = [point(jan), point(feb), point(apr, status=DELETED), point(jul)]
    intervals = intervals_from_points(points, STALENESS_MS)
    # Jan and Feb chain into one interval; it stops 45 days after Feb (before April's deletion);
    # the account is back in July.
    assert intervals == ((jan, feb + STALENESS_MS), (jul, jul + STALENESS_MS))
    assert not present_at(intervals, jan - 1)
    assert present_at(intervals, jan)
    assert present_at(intervals, feb + STALENESS_MS - 1)
    assert not present_at(intervals, feb + STALENESS_MS)
    assert not present_at(intervals, apr)
    assert present_at(intervals, ms(2013, 7, 2))
    assert not present_at(intervals, jul + STALENESS_MS)
    assert not present_at((), jan)


def test_the_next_point_takes_over_whatever_its_status() -> None:
    a, b = ms(2013, 1, 1), ms(2013, 1, 20)
    assert intervals_from_points([point(a), point(b, status=SUSPENDED)], STALENESS_MS) == ((a, b),)
    assert intervals_from_points([point(b, status=SUSPENDED), point(a)], STALENESS_MS) == ((a, b),)
    assert intervals_from_points([point(a, status=DELETED)], STALENESS_MS) == ()


def test_an_entity_is_present_when_one_of_its_accounts_is() -> None:
    t = ms(2013, 5, 1)
    assert any_present_at([(), ((t - 5, t + 5),)], t)
    assert not any_present_at([(), ((t - 5, t),)], t)


def test_inserting_a_late_point_changes_only_its_neighbourhood() -> None:
    days = [ms(2013, 1, 1), ms(2013, 2, 1), ms(2013, 5, 1)]
    before = intervals_from_points([point(t) for t in days], STALENESS_MS)
    late = point(ms(2013, 2, 20), status=DELETED)
    after = apply_point(before, point(days[1]), late, point(days[2]), STALENESS_MS)
    assert after == ((days[0], late.observed_at), (days[2], days[2] + STALENESS_MS))
    assert after == intervals_from_points([*(point(t) for t in days), late], STALENESS_MS)


def test_replacing_a_same_day_point() -> None:
    prev, nxt = point(ms(2013, 1, 1)), point(ms(2013, 3, 1))
    old = point(ms(2013, 1, 20, 8), status=DELETED)
    new = point(ms(2013, 1, 20, 18))
    before = intervals_from_points([prev, old, nxt], STALENESS_MS)
    assert before == ((prev.observed_at, old.observed_at), (nxt.observed_at, nxt.observed_at + STALENESS_MS))
    after = apply_point(before, prev, new, nxt, STALENESS_MS, replaced=old)
    assert after == intervals_from_points([prev, new, nxt], STALENESS_MS)
    assert after == ((prev.observed_at, nxt.observed_at + STALENESS_MS),)
    # Without a previous point, [old, new) is no longer covered by anything.
    alone = apply_point(
        intervals_from_points([point(old.observed_at)], STALENESS_MS),
        None,
        new,
        None,
        STALENESS_MS,
        replaced=point(old.observed_at),
    )
    assert alone == ((new.observed_at, new.observed_at + STALENESS_MS),)


def test_transitions() -> None:
    old: Intervals = ((0, 10), (20, 30))
    new: Intervals = ((0, 15), (20, 30), (40, 50))
    change = transitions(old, new)
    assert change.removed == ((0, 10),)
    assert change.added == ((0, 15), (40, 50))
    assert change.gained == ((10, 15), (40, 50))
    assert change.lost == ()
    assert change
    assert transitions(new, old).lost == ((10, 15), (40, 50))
    assert not transitions(new, new)


def test_difference_against_brute_force() -> None:
    rng = random.Random(5)

    def random_intervals() -> Intervals:
        cuts = sorted(rng.sample(range(40), 2 * rng.randint(0, 5)))
        spans = [(cuts[i], cuts[i + 1]) for i in range(0, len(cuts), 2)]
        merged: list[tuple[int, int]] = []
        for start, end in spans:
            if merged and merged[-1][1] == start:
                merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        return tuple(merged)

    def covered(intervals: Intervals) -> set[int]:
        return {t for start, end in intervals for t in range(start, end)}

    for _ in range(2000):
        a, b = random_intervals(), random_intervals()
        result = difference(a, b)
        assert covered(result) == covered(a) - covered(b)
        assert all(s < e for s, e in result)
        assert all(result[i][1] < result[i + 1][0] for i in range(len(result) - 1))


def test_presence_of_a_day_boundary_instant() -> None:
    t = 15_706 * DAY_MS  # midnight exactly
    intervals = intervals_from_points([point(t)], STALENESS_MS)
    assert present_at(intervals, t) and not present_at(intervals, t - 1)
