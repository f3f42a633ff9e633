"""Daily points: the one figure set per account and UTC day that every barometer figure is computed on.

A daily point is the snapshot of its day with the latest ``observed_at``, ties broken by the greater
``event_id`` (docs/SCORING.md, "Daily points"). This module holds the value type, its construction from
an :class:`~services.common.events.AccountSnapshot`, and the tie rule (:func:`newer`).

Times are integers: epoch milliseconds UTC for instants, days since 1970-01-01 for days. Integer
arithmetic keeps comparisons exact and cheap in the stream worker, where this runs for every event.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from services.common.names import EVENT_ID_NAMESPACE, AccountStatus

if TYPE_CHECKING:
    from services.common.events import AccountSnapshot

DAY_MS: Final = 86_400_000
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_UNIX_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()

# docs/SCORING.md, "Staleness": BAROMETRE_STALENESS_DAYS defaults to 45.
DEFAULT_STALENESS_DAYS: Final = 45
DEFAULT_STALENESS_MS: Final = DEFAULT_STALENESS_DAYS * DAY_MS

_ACTIVE = AccountStatus.ACTIVE


class DailyPoint:
    """The figures of one account on one UTC day, as the snapshot chosen for that day gave them.

    Immutable (attributes cannot be set after construction). ``day`` is derived from ``observed_at``.
    Points restored from an :class:`~services.scoring.maths.series.AccountSeries` whose event id was
    the one derived from ``account_id|observed_at`` compute :attr:`event_id` when it is first read: the
    series does not store those ids, and most uses never read them.
    """

    __slots__ = (
        "_account_id",
        "_event_id",
        "automated_posts_30d",
        "day",
        "followers",
        "interactions_30d",
        "observed_at",
        "posts_30d",
        "replies_30d",
        "status",
    )

    day: int
    observed_at: int
    followers: int
    status: AccountStatus
    posts_30d: int | None
    interactions_30d: int | None
    replies_30d: int | None
    automated_posts_30d: int | None
    _event_id: str | None
    _account_id: str | None

    def __init__(
        self,
        observed_at: int,
        event_id: str,
        followers: int,
        status: AccountStatus = _ACTIVE,
        posts_30d: int | None = None,
        interactions_30d: int | None = None,
        replies_30d: int | None = None,
        automated_posts_30d: int | None = None,
    ) -> None:
        _init(
            self,
            observed_at,
            event_id,
            None,
            followers,
            status,
            posts_30d,
            interactions_30d,
            replies_30d,
            automated_posts_30d,
        )

    @classmethod
    def with_derived_id(
        cls,
        account_id: str,
        observed_at: int,
        followers: int,
        status: AccountStatus = _ACTIVE,
        posts_30d: int | None = None,
        interactions_30d: int | None = None,
        replies_30d: int | None = None,
        automated_posts_30d: int | None = None,
    ) -> DailyPoint:
        """A point whose event id is the one derived from ``account_id`` and ``observed_at``."""
        point = cls.__new__(cls)
        _init(
            point,
            observed_at,
            None,
            account_id,
            followers,
            status,
            posts_30d,
            interactions_30d,
            replies_30d,
            automated_posts_30d,
        )
        return point

    @property
    def event_id(self) -> str:
        """The id of the snapshot this point comes from."""
        event_id = self._event_id
        if event_id is None:
            assert self._account_id is not None  # one of the two is always set by _init
            event_id = derived_event_id(self._account_id, self.observed_at)
            # A cache of a value the point already stands for, so immutability is not broken.
            object.__setattr__(self, "_event_id", event_id)
        return event_id

    @property
    def active(self) -> bool:
        """Whether the account was active at this point (what presence counts)."""
        return self.status == _ACTIVE

    def counts(self) -> tuple[int | None, int | None, int | None, int | None]:
        """posts_30d, interactions_30d, replies_30d, automated_posts_30d."""
        return (self.posts_30d, self.interactions_30d, self.replies_30d, self.automated_posts_30d)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickling and copy go through here: the default would set the slots, which __setattr__ refuses.
        return (
            _restore,
            (self.observed_at, self._event_id, self._account_id, self.followers, self.status, *self.counts()),
        )

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"DailyPoint is immutable (cannot set {name})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"DailyPoint is immutable (cannot delete {name})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DailyPoint):
            return NotImplemented
        # Cheap fields first: event_id may have to be derived.
        return (
            self.observed_at == other.observed_at
            and self.followers == other.followers
            and self.status == other.status
            and self.counts() == other.counts()
            and self.event_id == other.event_id
        )

    def __hash__(self) -> int:
        return hash((self.observed_at, self.followers, self.status))

    def __repr__(self) -> str:
        return (
            f"DailyPoint(observed_at={self.observed_at}, event_id={self.event_id!r}, "
            f"followers={self.followers}, status={self.status.value!r}, posts_30d={self.posts_30d}, "
            f"interactions_30d={self.interactions_30d}, replies_30d={self.replies_30d}, "
            f"automated_posts_30d={self.automated_posts_30d})"
        )


_set = object.__setattr__


def _init(
    point: DailyPoint,
    observed_at: int,
    event_id: str | None,
    account_id: str | None,
    followers: int,
    status: AccountStatus,
    posts_30d: int | None,
    interactions_30d: int | None,
    replies_30d: int | None,
    automated_posts_30d: int | None,
) -> None:
    _set(point, "day", observed_at // DAY_MS)
    _set(point, "observed_at", observed_at)
    _set(point, "_event_id", event_id)
    _set(point, "_account_id", account_id)
    _set(point, "followers", followers)
    _set(point, "status", status)
    _set(point, "posts_30d", posts_30d)
    _set(point, "interactions_30d", interactions_30d)
    _set(point, "replies_30d", replies_30d)
    _set(point, "automated_posts_30d", automated_posts_30d)


def _restore(
    observed_at: int,
    event_id: str | None,
    account_id: str | None,
    followers: int,
    status: AccountStatus,
    posts_30d: int | None,
    interactions_30d: int | None,
    replies_30d: int | None,
    automated_posts_30d: int | None,
) -> DailyPoint:
    point = DailyPoint.__new__(DailyPoint)
    _init(
        point,
        observed_at,
        event_id,
        account_id,
        followers,
        status,
        posts_30d,
        interactions_30d,
        replies_30d,
        automated_posts_30d,
    )
    return point


def newer(a: DailyPoint, b: DailyPoint) -> bool:
    """Whether ``a`` wins over ``b`` as its day's point: later ``observed_at``, then greater ``event_id``.

    Strict: a point is never newer than itself, so a snapshot received twice changes nothing.
    """
    if a.observed_at != b.observed_at:
        return a.observed_at > b.observed_at
    return a.event_id > b.event_id


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime; digits below the millisecond are dropped (floor)."""
    return (moment - EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    """The aware UTC datetime of epoch milliseconds."""
    # Whole seconds and microseconds: the same instant as timedelta(milliseconds=ms), built faster
    # (rows convert several instants per event).
    return EPOCH + timedelta(0, ms // 1000, ms % 1000 * 1000)


def day_of(ms: int) -> int:
    """The UTC day (days since 1970-01-01) of an instant in epoch milliseconds."""
    return ms // DAY_MS


def point_from_snapshot(snapshot: AccountSnapshot) -> DailyPoint:
    """The candidate daily point of a validated snapshot (whether it wins its day is the series' call)."""
    return DailyPoint(
        to_ms(snapshot.observed_at),
        snapshot.event_id,
        snapshot.followers,
        snapshot.status,
        snapshot.posts_30d,
        snapshot.interactions_30d,
        snapshot.replies_30d,
        snapshot.automated_posts_30d,
    )


# --- Derived event ids, at millisecond precision.

_NAMESPACE_BYTES: Final = EVENT_ID_NAMESPACE.bytes


def derived_event_id(account_id: str, observed_at: int) -> str:
    """The id ``derive_event_id`` gives a snapshot of ``account_id`` observed at ``observed_at`` (ms).

    The same UUIDv5 as :func:`services.common.events.derive_event_id` (a unit test checks it), written
    with integer arithmetic: the series calls this for every new point, and the datetime route costs
    three times as much.
    """
    days, ms_of_day = divmod(observed_at, DAY_MS)
    seconds, millis = divmod(ms_of_day, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    day_text = date.fromordinal(days + _UNIX_EPOCH_ORDINAL).isoformat()
    # format_timestamp writes microseconds only when there are some.
    fraction = f".{millis:03d}000" if millis else ""
    name = f"{account_id}|{day_text}T{hour:02d}:{minute:02d}:{second:02d}{fraction}Z"
    raw = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def has_derived_id(point: DailyPoint, account_id: str) -> bool:
    """Whether ``point``'s event id is the one derived from ``account_id`` and its ``observed_at``."""
    event_id = point._event_id
    if event_id is None:  # restored from a series: known without hashing
        return point._account_id == account_id or point.event_id == derived_event_id(
            account_id, point.observed_at
        )
    # Only a 36-character UUID of version 5 can be one: most explicit ids are rejected without hashing.
    if len(event_id) != 36 or event_id[14] != "5":
        return False
    return event_id == derived_event_id(account_id, point.observed_at)
