"""Presence intervals (docs/SCORING.md, "Presence").

An account is present on the union over its active points ``p_i`` of ``[p_i, min(p_i + staleness,
p_(i+1)))``: the next point, whatever its status, takes over. Intervals are a sorted tuple of disjoint,
non-empty, half-open ``(start_ms, end_ms)`` pairs, merged when they touch, so that one presence has one
representation (equal presence, equal tuples).

:func:`intervals_from_points` is the definition; :func:`apply_point` is the incremental update that
the stream worker runs per event, which recomputes only ``[prev, next)`` around the new point.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, TypeAlias

from services.scoring.maths.points import DailyPoint
from services.scoring.maths.series import Change

Interval: TypeAlias = tuple[int, int]
Intervals: TypeAlias = tuple[Interval, ...]

_FAR: Final = 1 << 62  # after any instant (epoch ms), so "no next point" needs no special case


def _start(interval: Interval) -> int:
    return interval[0]


def _end(interval: Interval) -> int:
    return interval[1]


def _observed_at(point: DailyPoint) -> int:
    return point.observed_at


def intervals_from_points(points: Iterable[DailyPoint], staleness_ms: int) -> Intervals:
    """The presence intervals of an account's daily points (any order), by the definition."""
    ordered = sorted(points, key=_observed_at)
    out: list[Interval] = []
    for i, point in enumerate(ordered):
        if not point.active:
            continue
        start = point.observed_at
        end = start + staleness_ms
        if i + 1 < len(ordered):
            end = min(end, ordered[i + 1].observed_at)
        if end <= start:
            continue
        if out and out[-1][1] >= start:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return tuple(out)


def apply_point(
    intervals: Intervals,
    prev: DailyPoint | None,
    point: DailyPoint,
    next: DailyPoint | None,  # named like Change.next, whose value it takes
    staleness_ms: int,
    replaced: DailyPoint | None = None,
) -> Intervals:
    """The intervals once ``point`` is inserted between ``prev`` and ``next`` (its neighbours among the
    account's daily points), replacing ``replaced`` (the former point of its day) when given.

    Only ``[prev, next)`` can change: ``prev``'s interval now stops at ``point``, ``point``'s runs to
    ``next`` at most, and nothing else depends on them. Without ``prev`` the region starts at the new
    point (or at ``replaced``, which is earlier or at the same instant).
    """
    if prev is not None:
        lo = prev.observed_at
    elif replaced is not None:
        lo = min(point.observed_at, replaced.observed_at)
    else:
        lo = point.observed_at
    hi = next.observed_at if next is not None else _FAR
    pieces: list[Interval] = []
    if prev is not None and prev.active:
        pieces.append((prev.observed_at, min(prev.observed_at + staleness_ms, point.observed_at)))
    if point.active:
        pieces.append((point.observed_at, min(point.observed_at + staleness_ms, hi)))
    return _replace_range(intervals, lo, hi, pieces)


def apply_change(intervals: Intervals, change: Change, staleness_ms: int) -> Intervals:
    """:func:`apply_point` with what :meth:`AccountSeries.add` reported; unchanged when it does not
    apply (a duplicate, an older same-day snapshot, or a point beyond the horizon: see
    :class:`~services.scoring.maths.series.Change`)."""
    if not change.presence_applicable:
        return intervals
    return apply_point(intervals, change.prev, change.point, change.next, staleness_ms, change.replaced)


def _replace_range(intervals: Intervals, lo: int, hi: int, pieces: list[Interval]) -> Intervals:
    """``intervals`` with ``[lo, hi)`` covered by ``pieces`` (sorted, inside it) instead."""
    # i: first interval ending after lo; j: first starting at or after hi. intervals[i:j] meet [lo, hi).
    i = bisect_right(intervals, lo, key=_end)
    j = bisect_left(intervals, hi, key=_start)
    middle: list[Interval] = []
    if i < j and intervals[i][0] < lo:
        middle.append((intervals[i][0], lo))
    middle.extend(piece for piece in pieces if piece[0] < piece[1])
    if i < j and intervals[j - 1][1] > hi:
        middle.append((hi, intervals[j - 1][1]))
    # Neighbours that touch the region (ending at lo, starting at hi) merge with what is put there.
    if i > 0 and intervals[i - 1][1] == lo:
        i -= 1
        middle.insert(0, intervals[i])
    if j < len(intervals) and intervals[j][0] == hi:
        middle.append(intervals[j])
        j += 1
    merged: list[Interval] = []
    for start, end in middle:
        if merged and merged[-1][1] >= start:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    if intervals[i:j] == tuple(merged):
        return intervals
    return intervals[:i] + tuple(merged) + intervals[j:]


def present_at(intervals: Intervals, t_ms: int) -> bool:
    """Whether the account is present at ``t_ms``."""
    i = bisect_right(intervals, t_ms, key=_start) - 1
    return i >= 0 and t_ms < intervals[i][1]


def any_present_at(accounts_intervals: Iterable[Intervals], t_ms: int) -> bool:
    """Whether an entity is present on a platform at ``t_ms``: one of its accounts there is."""
    return any(present_at(intervals, t_ms) for intervals in accounts_intervals)


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """What changed between two interval sets of one account.

    ``removed`` / ``added``: the exact intervals to delete and to write where intervals are stored one
    row each. ``gained`` / ``lost``: the time ranges where the account is now present and was not,
    and the reverse (what an alert or a presence event is about).
    """

    removed: Intervals
    added: Intervals
    gained: Intervals
    lost: Intervals

    def __bool__(self) -> bool:
        return bool(self.removed or self.added)


def transitions(old: Intervals, new: Intervals) -> PresenceChange:
    """The changes from ``old`` to ``new`` intervals."""
    if old == new:
        return PresenceChange((), (), (), ())
    old_set, new_set = set(old), set(new)
    return PresenceChange(
        removed=tuple(interval for interval in old if interval not in new_set),
        added=tuple(interval for interval in new if interval not in old_set),
        gained=difference(new, old),
        lost=difference(old, new),
    )


def difference(a: Intervals, b: Intervals) -> Intervals:
    """The instants covered by ``a`` and not by ``b``, as intervals."""
    out: list[Interval] = []
    j = 0
    for start, end in a:
        cursor = start
        # Skip the intervals of b that end before this one starts; both are sorted.
        while j < len(b) and b[j][1] <= cursor:
            j += 1
        k = j
        while k < len(b) and b[k][0] < end:
            if b[k][0] > cursor:
                out.append((cursor, b[k][0]))
            cursor = max(cursor, b[k][1])
            k += 1
        if cursor < end:
            out.append((cursor, end))
    return tuple(out)
