"""Builders of daily points for the scoring maths tests: days and hours instead of epoch milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime

from services.common.names import AccountStatus
from services.scoring.maths import DAY_MS, DailyPoint, derived_event_id, to_ms

ACCOUNT = "x:grenoble"
HOUR_MS = 3_600_000
STALENESS_MS = 45 * DAY_MS


def ms(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, milli: int = 0
) -> int:
    """Epoch milliseconds of a UTC instant."""
    return to_ms(datetime(year, month, day, hour, minute, second, milli * 1000, tzinfo=UTC))


def point(
    observed_at: int,
    followers: int = 1000,
    status: AccountStatus = AccountStatus.ACTIVE,
    *,
    event_id: str | None = None,
    posts_30d: int | None = None,
    interactions_30d: int | None = None,
    replies_30d: int | None = None,
    automated_posts_30d: int | None = None,
) -> DailyPoint:
    """A point of ACCOUNT; its event id is the derived one unless given."""
    return DailyPoint(
        observed_at,
        event_id if event_id is not None else derived_event_id(ACCOUNT, observed_at),
        followers,
        status,
        posts_30d,
        interactions_30d,
        replies_30d,
        automated_posts_30d,
    )


def on_day(
    day: int,
    hour: float = 9.0,
    followers: int = 1000,
    status: AccountStatus = AccountStatus.ACTIVE,
    event_id: str | None = None,
) -> DailyPoint:
    """A point observed ``hour`` hours into day ``day`` (days since 1970-01-01)."""
    return point(day * DAY_MS + round(hour * HOUR_MS), followers, status, event_id=event_id)
