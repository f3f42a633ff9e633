"""The pure maths of scoring (docs/SCORING.md): daily points, the per-account series, followers and
growth over windows, presence intervals, the good-practice score.

Functions of values only: no Kafka, no ClickHouse, no clock. The stream worker, ``barometre rebuild``
and the tests all call these, so that live and recomputed figures agree by construction.
"""

from services.scoring.maths.points import (
    DAY_MS,
    DEFAULT_STALENESS_DAYS,
    DEFAULT_STALENESS_MS,
    DailyPoint,
    day_of,
    derived_event_id,
    from_ms,
    newer,
    point_from_snapshot,
    to_ms,
)
from services.scoring.maths.presence import (
    Interval,
    Intervals,
    PresenceChange,
    any_present_at,
    apply_change,
    apply_point,
    difference,
    intervals_from_points,
    present_at,
    transitions,
)
from services.scoring.maths.score import COMPONENTS, Score, good_practice
from services.scoring.maths.series import DEFAULT_HORIZON_DAYS, AccountSeries, Change, ChangeKind
from services.scoring.maths.windows import (
    WINDOW_MS,
    Growth,
    baselines,
    entity_followers,
    followers_at,
    growth,
    growths,
    per_1000,
)

__all__ = [
    "COMPONENTS",
    "DAY_MS",
    "DEFAULT_HORIZON_DAYS",
    "DEFAULT_STALENESS_DAYS",
    "DEFAULT_STALENESS_MS",
    "WINDOW_MS",
    "AccountSeries",
    "Change",
    "ChangeKind",
    "DailyPoint",
    "Growth",
    "Interval",
    "Intervals",
    "PresenceChange",
    "Score",
    "any_present_at",
    "apply_change",
    "apply_point",
    "baselines",
    "day_of",
    "derived_event_id",
    "difference",
    "entity_followers",
    "followers_at",
    "from_ms",
    "good_practice",
    "growth",
    "growths",
    "intervals_from_points",
    "newer",
    "per_1000",
    "point_from_snapshot",
    "present_at",
    "to_ms",
    "transitions",
]
