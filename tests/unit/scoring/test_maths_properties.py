"""Properties of the pure scoring maths (services/scoring/maths), checked by hypothesis on generated
inputs: bounds, monotonicity and agreement with a brute-force reading of each definition in
docs/SCORING.md. (test_out_of_order.py checks, with seeded random orders, that the incremental updates
agree with the definitions; these check the definitions themselves.)"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.common.names import AccountStatus
from services.scoring.maths import (
    DAY_MS,
    DailyPoint,
    any_present_at,
    difference,
    intervals_from_points,
    present_at,
    transitions,
)
from services.scoring.maths.score import (
    MAX_SCORE,
    MIN_COMPONENTS,
    engagement,
    good_practice,
    growth_component,
    regularity,
)
from services.scoring.maths.windows import entity_followers, followers_at, growth, per_1000
from tests.unit.scoring.factories import point

# Derandomized: the same cases on every run (a failure reproduces; hypothesis prints the case).
PROPERTY = settings(max_examples=150, deadline=None, derandomize=True)

STALENESS = 45 * DAY_MS
counts = st.integers(min_value=0, max_value=10**9)
small_counts = st.integers(min_value=0, max_value=10_000)
optional_counts = st.none() | small_counts
# Instants within ~2 years, in hours: collisions and touching intervals are frequent, as they should be.
instants = st.integers(min_value=0, max_value=2 * 365 * 24).map(lambda h: h * 3_600_000)
statuses = st.sampled_from(list(AccountStatus))


@st.composite
def series(draw: st.DrawFn, max_size: int = 12) -> list[DailyPoint]:
    """One account's points, one per distinct instant, sorted (what an AccountSeries holds)."""
    at = sorted(draw(st.sets(instants, max_size=max_size)))
    return [point(t, draw(counts), draw(statuses)) for t in at]


def brute_present(points: Sequence[DailyPoint], t: int, staleness: int) -> bool:
    """The definition: some active p_i with p_i <= t < min(p_i + staleness, p_(i+1))."""
    for i, p in enumerate(points):
        end = p.observed_at + staleness
        if i + 1 < len(points):
            end = min(end, points[i + 1].observed_at)
        if p.active and p.observed_at <= t < end:
            return True
    return False


# --- Growth and ratios.


@PROPERTY
@given(counts, counts)
def test_growth_is_the_difference_and_its_percentage(now: int, before: int) -> None:
    g = growth(now, before)
    assert g.abs == now - before
    if before == 0:
        assert g.pct is None
    else:
        assert g.pct is not None
        assert (g.pct > 0) == (now > before) and (g.pct < 0) == (now < before)
        assert abs(g.pct - 100.0 * (now - before) / before) <= 1e-9 * max(1.0, abs(g.pct))
        assert g.pct >= -100.0  # followers cannot fall below zero


@PROPERTY
@given(counts, counts, counts)
def test_growths_over_consecutive_periods_add_up(a: int, b: int, c: int) -> None:
    assert growth(c, a).abs == growth(b, a).abs + growth(c, b).abs


@PROPERTY
@given(st.none() | counts, st.none() | st.integers(min_value=-10, max_value=10**8))
def test_per_1000_is_defined_exactly_with_followers_and_a_positive_population(
    followers: int | None, population: int | None
) -> None:
    value = per_1000(followers, population)
    if followers is None or population is None or population <= 0:
        assert value is None
    else:
        assert value is not None and value >= 0.0
        assert abs(value * population - 1000.0 * followers) <= 1e-6 * max(1.0, 1000.0 * followers)


@PROPERTY
@given(counts, counts, st.integers(min_value=1, max_value=10**8))
def test_per_1000_is_monotonic_in_followers(f1: int, f2: int, population: int) -> None:
    lo, hi = sorted((f1, f2))
    assert per_1000(lo, population) <= per_1000(hi, population)  # type: ignore[operator]


# --- The good-practice score.


@PROPERTY
@given(small_counts, optional_counts, optional_counts, optional_counts, counts,
       st.none() | st.floats(min_value=-100.0, max_value=1e6, allow_nan=False))  # fmt: skip
def test_score_is_five_times_the_mean_of_at_least_three_components_in_0_1(
    posts: int, interactions: int | None, replies: int | None, automated: int | None, followers: int,
    growth_pct: float | None,
) -> None:  # fmt: skip
    p = DailyPoint(0, "e", followers, AccountStatus.ACTIVE, posts, interactions, replies, automated)
    score = good_practice(p, growth_pct)
    assert all(0.0 <= c <= 1.0 for c in score.components.values())
    if len(score.components) < MIN_COMPONENTS:
        assert score.value is None
    else:
        assert score.value is not None and 0.0 <= score.value <= MAX_SCORE
        mean = sum(score.components.values()) / len(score.components)
        assert abs(score.value - MAX_SCORE * mean) <= 1e-9
    assert ("regularity" in score.components) and (("growth" in score.components) == (growth_pct is not None))


@PROPERTY
@given(small_counts, small_counts)
def test_regularity_never_decreases_with_posts(a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    assert regularity(lo) <= regularity(hi)


@PROPERTY
@given(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
)
def test_growth_component_never_decreases_with_growth(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert growth_component(lo) <= growth_component(hi)


@PROPERTY
@given(counts, counts, st.integers(min_value=1, max_value=10_000), st.integers(min_value=1, max_value=10**9))
def test_engagement_never_decreases_with_interactions(a: int, b: int, posts: int, followers: int) -> None:
    lo, hi = sorted((a, b))
    assert 0.0 <= engagement(lo, posts, followers) <= engagement(hi, posts, followers) <= 1.0


# --- Followers at an instant.


@PROPERTY
@given(series(), instants)
def test_followers_at_is_the_latest_fresh_point(points: list[DailyPoint], t: int) -> None:
    found = followers_at(points, t, STALENESS)
    fresh = [p for p in points if t - STALENESS < p.observed_at <= t]
    assert found == (fresh[-1] if fresh else None)


@PROPERTY
@given(st.lists(series(max_size=5), max_size=4), instants)
def test_entity_followers_sum_the_accounts_with_a_value(accounts: list[list[DailyPoint]], t: int) -> None:
    values = [p.followers for p in (followers_at(a, t, STALENESS) for a in accounts) if p is not None]
    assert entity_followers(accounts, t, STALENESS) == (sum(values) if values else None)


# --- Presence.


@PROPERTY
@given(series(), st.integers(min_value=1, max_value=60).map(lambda d: d * DAY_MS))
def test_presence_intervals_are_canonical_and_follow_the_definition(
    points: list[DailyPoint], staleness: int
) -> None:
    intervals = intervals_from_points(reversed(points), staleness)  # any order in
    for start, end in intervals:
        assert start < end
    for (_, end), (start, _) in pairwise(intervals):
        assert end < start  # disjoint and not touching: one presence has one representation
    probes = {p.observed_at + d for p in points for d in (-1, 0, 1, staleness - 1, staleness)}
    for t in probes:
        assert present_at(intervals, t) == brute_present(points, t, staleness)


@PROPERTY
@given(st.lists(series(max_size=6), max_size=5), instants)
def test_an_entity_is_present_when_one_of_its_accounts_is(accounts: list[list[DailyPoint]], t: int) -> None:
    intervals = [intervals_from_points(a, STALENESS) for a in accounts]
    assert any_present_at(intervals, t) == any(brute_present(a, t, STALENESS) for a in accounts)


@PROPERTY
@given(st.lists(st.lists(series(max_size=4), max_size=3), min_size=1, max_size=6), instants)
def test_presence_rate_is_a_share(entities: list[list[list[DailyPoint]]], t: int) -> None:
    present = sum(any_present_at([intervals_from_points(a, STALENESS) for a in e], t) for e in entities)
    rate = present / len(entities)
    assert 0.0 <= rate <= 1.0


@PROPERTY
@given(series(), series())
def test_difference_and_transitions_partition_time(
    a_points: list[DailyPoint], b_points: list[DailyPoint]
) -> None:
    a, b = intervals_from_points(a_points, STALENESS), intervals_from_points(b_points, STALENESS)
    gained, lost = difference(b, a), difference(a, b)
    change = transitions(a, b)
    assert (change.gained, change.lost) == (gained, lost)
    assert bool(change) == (a != b)
    probes = {edge + d for iv in (*a, *b) for edge in iv for d in (-1, 0, 1)}
    for t in probes:
        in_a, in_b = present_at(a, t), present_at(b, t)
        assert present_at(gained, t) == (in_b and not in_a)
        assert present_at(lost, t) == (in_a and not in_b)


@PROPERTY
@given(series())
def test_inactive_points_alone_are_never_present(points: list[DailyPoint]) -> None:
    assume(points)
    silent = [point(p.observed_at, p.followers, AccountStatus.DELETED) for p in points]
    assert intervals_from_points(silent, STALENESS) == ()
