"""Followers at an instant and growth over the windows (docs/SCORING.md, "Followers at an instant",
"Growth over a window").

``followers(a, t)`` is the followers of the account's latest daily point ``p`` with
``t - staleness < p.observed_at <= t``: :func:`followers_at` finds that point by binary search.
Live figures compare each account's latest point ``L`` with the point in force at ``L - w``
(:func:`baselines`). Entity figures sum the accounts that have a value (:func:`entity_followers`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Final, NamedTuple

from services.common.names import WINDOWS, Window
from services.scoring.maths.points import DailyPoint
from services.scoring.maths.series import AccountSeries

WINDOW_MS: Final[dict[Window, int]] = {
    window: delta // timedelta(milliseconds=1) for window, delta in WINDOWS.items()
}


class Growth(NamedTuple):
    """``abs = F(t) - F(t - w)``; ``pct = 100 * abs / F(t - w)``, None when ``F(t - w) = 0``."""

    abs: int
    pct: float | None


def _observed_at(point: DailyPoint) -> int:
    return point.observed_at


def followers_at(points: Sequence[DailyPoint], t_ms: int, staleness_ms: int) -> DailyPoint | None:
    """The point in force at ``t_ms``: the latest with ``t_ms - staleness_ms < observed_at <= t_ms``.

    ``points`` are one account's daily points sorted by ``observed_at`` (an :class:`AccountSeries`
    answers from its columns). None when there is none: the account has no value at ``t_ms``.
    """
    if isinstance(points, AccountSeries):
        return points.followers_at(t_ms, staleness_ms)
    i = bisect_right(points, t_ms, key=_observed_at) - 1
    if i < 0:
        return None
    point = points[i]
    return point if point.observed_at > t_ms - staleness_ms else None


def baselines(series: Sequence[DailyPoint], staleness_ms: int) -> dict[Window, DailyPoint | None]:
    """For each window ``w``, the point in force at ``L - w``, ``L`` being the latest point.

    All None for an empty series. Within the default horizon every baseline of an
    :class:`AccountSeries` is exact (365 d + 45 d < 420 d).
    """
    if not series:
        return dict.fromkeys(Window)
    latest = series[-1].observed_at
    return {window: followers_at(series, latest - ms, staleness_ms) for window, ms in WINDOW_MS.items()}


def growth(now_followers: int, before_followers: int) -> Growth:
    """Growth from ``before_followers`` to ``now_followers``."""
    delta = now_followers - before_followers
    return Growth(delta, 100.0 * delta / before_followers if before_followers else None)


def growths(latest: DailyPoint, window_baselines: Mapping[Window, DailyPoint | None]) -> dict[Window, Growth]:
    """The growth of ``latest`` over each window that has a baseline (the others are left out)."""
    return {
        window: growth(latest.followers, base.followers)
        for window, base in window_baselines.items()
        if base is not None
    }


def entity_followers(
    accounts_points: Iterable[Sequence[DailyPoint]], t_ms: int, staleness_ms: int
) -> int | None:
    """An entity's followers on a platform at ``t_ms``: the sum over its accounts there with a value.

    None when none of them has one (the entity has no value, which is not 0 followers).
    """
    total: int | None = None
    for points in accounts_points:
        point = followers_at(points, t_ms, staleness_ms)
        if point is not None:
            total = point.followers if total is None else total + point.followers
    return total


def per_1000(followers: int | None, population: int | None) -> float | None:
    """Followers per 1,000 inhabitants; None without followers or without a positive population."""
    if followers is None or not population or population < 0:
        return None
    return 1000.0 * followers / population
