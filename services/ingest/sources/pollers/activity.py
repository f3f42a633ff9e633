"""An account's activity over the 30 days before a poll: how many posts, how many interactions on them,
how many replies to its public (contract: ``posts_30d``, ``interactions_30d``, ``replies_30d``).

Pure: the pollers turn their platform's items (Bluesky feed items, Mastodon statuses, Facebook page
posts, YouTube videos) into :class:`Post` values and page through their API until
:func:`reached_window_start` says the window is read; :func:`count` does the counting. What counts:

- the window is ``now - 30 days < published ≤ now``: an item published after ``now`` (during the poll)
  belongs to the next poll's window, so one round's snapshots describe the same instant;
- a reply to another account is a reply (``replies_30d``), not a post: the score's "conversation" is
  replies per post, and a reply is the account answering its public, not publishing. A post that
  continues the account's own thread is a post;
- interactions are those on the posts (likes, reposts or shares, replies or comments, quotes: what the
  platform shows on each), not on the replies, as the contract says ("on those posts");
- reposts (boosts) of other accounts' posts are neither: the pollers leave them out.

An item a platform sends malformed (no date, a negative count) raises :class:`ActivityError`: a
wrong activity figure is worse than none, and the poller keeps the account's audience without it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypedDict

WINDOW = timedelta(days=30)


class ActivityError(ValueError):
    """A platform's list of posts cannot be read (a malformed item); the audience is kept without it."""


@dataclass(frozen=True, slots=True)
class Post:
    """One item an account published: when, the interactions it got, and whether it answers someone.

    ``interactions`` is what the platform shows on the item: a figure it hides (a video's likes hidden,
    its comments off) counts 0, as the public sees no interaction there.
    """

    published: datetime
    interactions: int = 0
    reply_to_other: bool = False


class Figures(TypedDict, total=False):
    """The snapshot fields an :class:`Activity` gives (``replies_30d`` only where it is known)."""

    posts_30d: int
    interactions_30d: int
    replies_30d: int


@dataclass(frozen=True, slots=True)
class Activity:
    """The 30-day figures of one account, as :func:`count` made them.

    ``replies_30d`` is None where the platform's API does not tell replies cheaply (Facebook, YouTube).
    ``complete`` is False when paging stopped at its cap before the window's start: the figures then
    count the newest posts only (a lower bound), which the log says.
    """

    posts_30d: int
    interactions_30d: int
    replies_30d: int | None
    complete: bool = True

    def figures(self) -> Figures:
        """The snapshot fields, for ``Poller._record(**activity.figures())``."""
        out: Figures = {"posts_30d": self.posts_30d, "interactions_30d": self.interactions_30d}
        if self.replies_30d is not None:
            out["replies_30d"] = self.replies_30d
        return out


def figures_of(activity: Activity | None) -> Figures:
    """The snapshot fields of ``activity``; none when it could not be read."""
    return activity.figures() if activity is not None else Figures()


def window_start(now: datetime) -> datetime:
    """The instant the window opens (excluded): 30 days before ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return now - WINDOW


def in_window(published: datetime, now: datetime) -> bool:
    """Whether ``published`` falls in the 30 days before ``now``: ``now - 30 d < published ≤ now``."""
    return window_start(now) < published <= now


def reached_window_start(published: Iterable[datetime], now: datetime) -> bool:
    """Whether a page of items (sorted newest first) reaches back to the window's start, so that the
    next page can only hold older items and paging may stop."""
    start = window_start(now)
    return any(moment <= start for moment in published)


def count(posts: Iterable[Post], now: datetime, *, replies_known: bool, complete: bool = True) -> Activity:
    """Count ``posts`` published in the window; items outside it are ignored.

    ``replies_known`` False (a platform whose list does not show the account's replies) leaves
    ``replies_30d`` out rather than claiming 0.
    """
    posts_30d = interactions = replies = 0
    for post in posts:
        if not in_window(post.published, now):
            continue
        if post.reply_to_other:
            replies += 1
        else:
            posts_30d += 1
            interactions += post.interactions
    return Activity(posts_30d, interactions, replies if replies_known else None, complete)


def parse_time(value: object, what: str = "date") -> datetime:
    """An aware UTC datetime from the platforms' ISO 8601 forms (``...Z``, ``+00:00``, Graph's ``+0000``).

    Raises :class:`ActivityError` for anything else, naming ``what``.
    """
    if not isinstance(value, str) or not value:
        raise ActivityError(f"{what}: missing or not a string ({value!r})")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ActivityError(f"{what}: not an ISO 8601 date ({value!r})") from None
    if moment.tzinfo is None:
        raise ActivityError(f"{what}: no time zone ({value!r})")
    return moment.astimezone(UTC)


def parse_count(value: object, what: str) -> int:
    """A count ≥ 0 from an integer or a string of digits (Google APIs write 64-bit counts as strings);
    None, absent, counts as 0 (a hidden or disabled figure). Raises :class:`ActivityError` otherwise."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ActivityError(f"{what}: not a count ({value!r})")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ActivityError(f"{what}: not a count ({value!r})")
