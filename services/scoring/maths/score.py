"""The good-practice score, formula ``score/1`` (docs/SCORING.md, "Good-practice score").

Five components between 0 and 1, from an account's latest daily point and its 30-day growth; the score
is ``5 * mean`` of those that can be computed, and there is none with fewer than three. A change of
formula is a new version with a new function beside this one, never an edit of this one: stored scores
name the formula that made them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

from services.common.names import SCORE_FORMULA
from services.scoring.maths.points import DailyPoint

COMPONENTS: Final = ("regularity", "engagement", "conversation", "human", "growth")
MIN_COMPONENTS: Final = 3
MAX_SCORE: Final = 5.0

REGULAR_POSTS_30D: Final = 12  # about 3 a week
ENGAGEMENT_FLOOR: Final = 1e-4  # 0.01 % interactions per post and follower: 0
ENGAGEMENT_FULL: Final = 1e-2  # 1 %: 1
REPLIES_PER_POST_FULL: Final = 0.5
GROWTH_PCT_FULL: Final = 2.0  # +2 % a month

_LOG_FLOOR: Final = math.log10(ENGAGEMENT_FLOOR)
_LOG_SPAN: Final = math.log10(ENGAGEMENT_FULL) - _LOG_FLOOR


@dataclass(frozen=True, slots=True)
class Score:
    """A score (None when fewer than three components could be computed) and what it is made of."""

    value: float | None
    components: dict[str, float] = field(default_factory=dict)  # name → 0..1, in COMPONENTS order
    formula: str = SCORE_FORMULA


def _clamp(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def regularity(posts_30d: int) -> float:
    """Linear from 0 posts to ``REGULAR_POSTS_30D`` posts in 30 days."""
    return _clamp(posts_30d / REGULAR_POSTS_30D)


def engagement(interactions_30d: int, posts_30d: int, followers: int) -> float:
    """Interactions per post and per follower, on a log scale from 0.01 % (0) to 1 % (1)."""
    rate = interactions_30d / (posts_30d * followers)
    if rate <= ENGAGEMENT_FLOOR:  # 0 interactions included: the log scale has no bottom
        return 0.0
    return _clamp((math.log10(rate) - _LOG_FLOOR) / _LOG_SPAN)


def conversation(replies_30d: int, posts_30d: int) -> float:
    """Replies per post, linear up to ``REPLIES_PER_POST_FULL``."""
    return _clamp(replies_30d / posts_30d / REPLIES_PER_POST_FULL)


def human(automated_posts_30d: int, posts_30d: int) -> float:
    """The share of posts not published by automation (0 when the counts say more than all)."""
    return _clamp(1.0 - automated_posts_30d / posts_30d)


def growth_component(growth_pct_30d: float) -> float:
    """0 at or below 0 %, linear up to ``GROWTH_PCT_FULL`` % in 30 days."""
    return _clamp(growth_pct_30d / GROWTH_PCT_FULL)


def good_practice(point: DailyPoint, growth_pct_30d: float | None) -> Score:
    """The ``score/1`` of an account whose latest daily point is ``point``.

    ``growth_pct_30d``: its 30-day growth in percent (None when undefined). A component is left out
    when what it is made of is unknown; an account that did not post in 30 days gets 0 for
    regularity and no engagement, conversation or human component (they are per post). The status of
    the point plays no part.
    """
    components: dict[str, float] = {}
    posts = point.posts_30d
    if posts is not None:
        components["regularity"] = regularity(posts)
        if posts > 0:
            if point.interactions_30d is not None and point.followers > 0:
                components["engagement"] = engagement(point.interactions_30d, posts, point.followers)
            if point.replies_30d is not None:
                components["conversation"] = conversation(point.replies_30d, posts)
            if point.automated_posts_30d is not None:
                components["human"] = human(point.automated_posts_30d, posts)
    if growth_pct_30d is not None:
        components["growth"] = growth_component(growth_pct_30d)
    if len(components) < MIN_COMPONENTS:
        return Score(None, components)
    return Score(MAX_SCORE * math.fsum(components.values()) / len(components), components)
