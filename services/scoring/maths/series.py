"""AccountSeries: the daily points of one account over a retained horizon, as the stream worker keeps them.

Responsibilities:

- choosing each day's point by the tie rule whatever the arrival order (:meth:`AccountSeries.add` is
  idempotent and order-independent: the series is a function of the set of snapshots added);
- keeping only what the figures need: the points whose day is at least ``latest.day - horizon_days``,
  plus the last point before that (the *boundary point*), so that every point accepted into the horizon
  gets its true neighbours for the presence update (docs/SCORING.md, "Retained horizon");
- telling the caller what an event changed (:class:`Change`);
- a compact binary form (:meth:`AccountSeries.to_bytes`) for the Faust table changelog.

Storage is columnar: the points live in ``array`` columns, not as objects, so that a series of a year
of daily points costs 13 to 17 bytes a point, on the wire as in memory, serialising or restoring one is
a handful of C-level copies whatever its length, and binary searches run on plain integer arrays.
:class:`~services.scoring.maths.points.DailyPoint` objects are built only for the few points a caller
asks for.

Binary format, version 1 (little-endian; unsigned integers):

===========  =====================================================================================
``B``        format version (1)
``H`` + n    account_id, UTF-8 (derived event ids are recomputed from it, so it travels along)
``I``        number of points n
``5s``       type codes of the five value columns (``B``, ``H``, ``I`` or ``Q``)
n x ``H``    day (days since 1970-01-01)
n x ``I``    ms of the day (bits 0-26) | status code << 27 (bits 27-28) | explicit event id (bit 29)
n x w        followers, then posts_30d, interactions_30d, replies_30d, automated_posts_30d as
             value + 1 with 0 for "absent"; each column at the narrowest width its values need
``H``        number of explicit event ids, then for each: ``H`` day, ``H`` length, UTF-8 bytes
===========  =====================================================================================

An event id equal to the one derived from ``account_id|observed_at`` (every snapshot sent without an
id: files, pollers, the simulator) is not stored; other ids are, keyed by day.
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, overload

from services.common.names import AccountStatus
from services.scoring.maths.points import DAY_MS, DailyPoint, has_derived_id

# 365 days (the longest window) + 45 days (staleness) + a margin: every baseline is found in the horizon.
DEFAULT_HORIZON_DAYS: Final = 420

FORMAT_VERSION: Final = 1

# Part of the binary format: never renumber.
_STATUS_CODE: Final = {AccountStatus.ACTIVE: 0, AccountStatus.DELETED: 1, AccountStatus.SUSPENDED: 2}
_STATUS_OF_CODE: Final = (AccountStatus.ACTIVE, AccountStatus.DELETED, AccountStatus.SUSPENDED, None)
_MS_MASK: Final = (1 << 27) - 1  # a day has 86,400,000 ms < 2**27
_STATUS_SHIFT: Final = 27
_EXPLICIT_ID: Final = 1 << 29

_CAP: Final = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFF_FFFF, "Q": 0xFFFF_FFFF_FFFF_FFFF}
_SIZE: Final = {"B": 1, "H": 2, "I": 4, "Q": 8}  # bytes of each type code (checked below)
_NARROWER: Final = {"H": "B", "I": "H", "Q": "I"}
_LITTLE: Final = sys.byteorder == "little"
_HEADER: Final = struct.Struct("<BH")
_COUNTS: Final = struct.Struct("<I5s")
_U16: Final = struct.Struct("<H")
_ID_ENTRY: Final = struct.Struct("<HH")
_MAX_DAY: Final = 0xFFFF  # 2149-06-06: far beyond the contract's 2099
# Over the top byte of a packed ms-of-day (bits 24-31): 1 where the explicit-id bit (29) is set, and
# 1 where the status code (bits 27-28) is 3, which no status has.
_EXPLICIT_TOP_BYTE: Final = bytes(1 if b & (_EXPLICIT_ID >> 24) else 0 for b in range(256))
_BAD_TOP_BYTE: Final = bytes(1 if (b >> (_STATUS_SHIFT - 24)) & 3 == 3 else 0 for b in range(256))

for _code, _size in _SIZE.items():
    # The format fixes these widths; every mainstream platform has them.
    if array(_code).itemsize != _size:  # pragma: no cover - exotic platforms only
        raise ImportError(f"array type code {_code!r} is not {_size} bytes on this platform")


class ChangeKind(StrEnum):
    """What adding a point did."""

    NEW_DAY = "new_day"  # the first point of its day: inserted
    REPLACED = "replaced"  # newer than its day's point, which it replaced
    DUPLICATE = "duplicate"  # the same snapshot again (same observed_at and event_id): nothing changed
    OLDER = "older"  # older than its day's point: ignored
    TOO_OLD = "too_old"  # its day is before the horizon: see Change.changed


@dataclass(frozen=True, slots=True)
class Change:
    """The outcome of :meth:`AccountSeries.add`.

    For ``NEW_DAY`` and ``REPLACED``, ``prev`` and ``next`` are the points just before and after the
    new point (``None`` when there is none: these are exact, the horizon keeps the point before it),
    and ``replaced`` is the day's former point; feed them to :func:`~.presence.apply_point`.

    ``TOO_OLD``: the point is older than the horizon, so its neighbours are not all known and presence
    cannot be updated incrementally; the caller recomputes it from stored daily points (or leaves it to
    a rebuild). ``changed`` says whether the series changed anyway (it did when the point became the
    boundary point), i.e. whether its bytes must be written again.
    """

    kind: ChangeKind
    point: DailyPoint
    changed: bool
    replaced: DailyPoint | None = None
    prev: DailyPoint | None = None
    next: DailyPoint | None = None

    @property
    def too_old(self) -> bool:
        """Whether the point is older than the horizon (presence needs the account's whole history)."""
        return self.kind is ChangeKind.TOO_OLD

    @property
    def presence_applicable(self) -> bool:
        """Whether presence intervals should be updated with :func:`~.presence.apply_point`."""
        return self.kind is ChangeKind.NEW_DAY or self.kind is ChangeKind.REPLACED


class _Column:
    """An unsigned integer column kept at the narrowest array width its values need.

    Canonical widths make the bytes of a series a function of its points alone (equal series, equal
    bytes, whatever the history). ``_wide`` counts the values that need the current width (above the
    narrower width's maximum), so that a removal narrows the column only when the last of them goes;
    ``None`` means "not counted yet" (counted on demand, after a restore).
    """

    __slots__ = ("_wide", "values")

    def __init__(self, values: array[int] | None = None) -> None:
        self.values: array[int] = array("B") if values is None else values
        self._wide: int | None = None

    def insert(self, i: int, value: int) -> None:
        values = self.values
        code = values.typecode
        if value > _CAP[code]:
            self._widen(value)
        elif self._wide is not None and code != "B" and value > _CAP[_NARROWER[code]]:
            self._wide += 1
        self.values.insert(i, value)

    def set(self, i: int, value: int) -> None:
        old = self.values[i]
        if old == value:
            return
        self.insert(i + 1, value)
        self.delete(i, i + 1)

    def delete(self, lo: int, hi: int) -> None:
        values = self.values
        code = values.typecode
        if code != "B":
            narrower_cap = _CAP[_NARROWER[code]]
            gone = sum(1 for v in values[lo:hi] if v > narrower_cap)
            if gone:
                wide = self._count() - gone
                del values[lo:hi]
                if wide:
                    self._wide = wide
                else:
                    self._narrow()
                return
        del values[lo:hi]

    def _count(self) -> int:
        if self._wide is None:
            self._wide = _count_wide(self.values)
        return self._wide

    def _widen(self, value: int) -> None:
        # Every value already there fits the old width, i.e. the narrower one of the new: one is wide.
        self.values = array(_code_for(value), self.values.tolist())
        self._wide = 1

    def _narrow(self) -> None:
        values = self.values
        code = _code_for(max(values, default=0))
        if code != values.typecode:
            self.values = array(code, values.tolist())
        self._wide = None


def _code_for(value: int) -> str:
    if value <= 0xFF:
        return "B"
    if value <= 0xFFFF:
        return "H"
    if value <= 0xFFFF_FFFF:
        return "I"
    return "Q"


def _count_wide(values: array[int]) -> int:
    """How many values exceed the narrower width, in C: the high halves of the values, non-zero."""
    code = values.typecode
    if code == "B":
        return len(values)
    halves = array(_NARROWER[code])
    halves.frombytes(values.tobytes())
    high = halves[1::2] if _LITTLE else halves[0::2]
    return len(high) - high.count(0)


def _le(values: array[int]) -> bytes:
    if _LITTLE:
        return values.tobytes()
    swapped = array(values.typecode, values)  # pragma: no cover - big-endian platforms only
    swapped.byteswap()  # pragma: no cover
    return swapped.tobytes()  # pragma: no cover


def _from_le(code: str, data: bytes | memoryview) -> array[int]:
    values = array(code)
    values.frombytes(data)
    if not _LITTLE:  # pragma: no cover - big-endian platforms only
        values.byteswap()
    return values


def _count_code(value: int | None) -> int:
    if value is None:
        return 0
    if value < 0:
        raise ValueError(f"negative count {value}")
    return value + 1


class AccountSeries(Sequence[DailyPoint]):
    """The daily points of one account within the retained horizon, sorted by day.

    A sequence of :class:`DailyPoint` (built on access). Its content is a function of the set of
    points ever added, whatever their order: the daily point of each day by the tie rule, restricted to
    the days at least ``horizon_days`` before the latest day, plus the boundary point (the last point
    before those days).
    """

    __slots__ = ("_cols", "_days", "_ids", "_tods", "account_id", "horizon_days")

    def __init__(self, account_id: str, horizon_days: int = DEFAULT_HORIZON_DAYS) -> None:
        if horizon_days < 1:
            raise ValueError(f"horizon_days must be at least 1, not {horizon_days}")
        self.account_id: Final = account_id
        self.horizon_days: Final = horizon_days
        self._days: array[int] = array("H")
        self._tods: array[int] = array("I")
        # followers, posts_30d, interactions_30d, replies_30d, automated_posts_30d (counts as value + 1)
        self._cols = (_Column(), _Column(), _Column(), _Column(), _Column())
        self._ids: dict[int, str] = {}  # explicit (non-derived) event ids by day

    @classmethod
    def from_points(
        cls, account_id: str, points: Iterable[DailyPoint], horizon_days: int = DEFAULT_HORIZON_DAYS
    ) -> AccountSeries:
        """The series of ``points`` (any order)."""
        series = cls(account_id, horizon_days)
        for point in points:
            series.add(point)
        return series

    # --- Sequence of DailyPoint.

    def __len__(self) -> int:
        return len(self._days)

    @overload
    def __getitem__(self, index: int) -> DailyPoint: ...

    @overload
    def __getitem__(self, index: slice) -> list[DailyPoint]: ...

    def __getitem__(self, index: int | slice) -> DailyPoint | list[DailyPoint]:
        if isinstance(index, slice):
            return [self._point(i) for i in range(*index.indices(len(self._days)))]
        n = len(self._days)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("AccountSeries index out of range")
        return self._point(index)

    def __iter__(self) -> Iterator[DailyPoint]:
        return (self._point(i) for i in range(len(self._days)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AccountSeries):
            return NotImplemented
        return (
            self.account_id == other.account_id
            and self._days == other._days
            and self._tods == other._tods
            and all(a.values == b.values for a, b in zip(self._cols, other._cols, strict=True))
            and self._ids == other._ids
        )

    def __repr__(self) -> str:
        return f"AccountSeries({self.account_id!r}, {len(self)} points, horizon_days={self.horizon_days})"

    @property
    def latest(self) -> DailyPoint | None:
        """The latest daily point, if any."""
        return self._point(len(self._days) - 1) if self._days else None

    @property
    def last_day(self) -> int | None:
        """The day of the latest point (days since the epoch), if any; cheaper than ``latest.day``."""
        return self._days[-1] if self._days else None

    @property
    def points(self) -> list[DailyPoint]:
        """Every point, oldest first."""
        return [self._point(i) for i in range(len(self._days))]

    def since(self, t_ms: int) -> list[DailyPoint]:
        """The points observed at or after ``t_ms``, oldest first (built for those only)."""
        days = self._days
        i = bisect_left(days, t_ms // DAY_MS)
        if i < len(days) and days[i] * DAY_MS + (self._tods[i] & _MS_MASK) < t_ms:
            i += 1  # that day's point is earlier in the day than t_ms
        return [self._point(j) for j in range(i, len(days))]

    def followers_at(self, t_ms: int, staleness_ms: int) -> DailyPoint | None:
        """The point in force at ``t_ms``: the latest with ``t_ms - staleness_ms < observed_at <= t_ms``.

        Exact for any ``t_ms`` after the boundary point (older points are no longer known).
        """
        i = self._index_at(t_ms, staleness_ms)
        return None if i < 0 else self._point(i)

    def followers_count_at(self, t_ms: int, staleness_ms: int) -> int | None:
        """The followers of :meth:`followers_at`'s point, without building the point (what the
        worker's baselines and scores need, several times an event)."""
        i = self._index_at(t_ms, staleness_ms)
        return None if i < 0 else self._cols[0].values[i]

    def _index_at(self, t_ms: int, staleness_ms: int) -> int:
        """The index of the point in force at ``t_ms`` (see :meth:`followers_at`), -1 when none is."""
        days = self._days
        i = bisect_right(days, t_ms // DAY_MS) - 1
        if i < 0:
            return -1
        observed_at = days[i] * DAY_MS + (self._tods[i] & _MS_MASK)
        if observed_at > t_ms:  # that day's point is later in the day than t_ms
            i -= 1
            if i < 0:
                return -1
            observed_at = days[i] * DAY_MS + (self._tods[i] & _MS_MASK)
        if observed_at <= t_ms - staleness_ms:
            return -1
        return i

    # --- Adding a point.

    def add(self, point: DailyPoint) -> Change:
        """Offer ``point`` to its day; see :class:`ChangeKind` for the possible outcomes."""
        day = point.day
        days = self._days
        n = len(days)
        if n == 0 or day > days[-1]:
            # The live case: a new latest day.
            prev = self._point(n - 1) if n else None
            self._store(n, point, insert=True)
            self._prune()
            return Change(ChangeKind.NEW_DAY, point, True, None, prev, None)
        cutoff = days[-1] - self.horizon_days
        i = bisect_left(days, day)
        if days[i] == day:
            verdict = self._compare(i, point)
            if verdict <= 0:
                kind = ChangeKind.DUPLICATE if verdict == 0 else ChangeKind.OLDER
                return Change(kind, point, False)
            replaced = self._point(i)
            self._store(i, point, insert=False)
            if day < cutoff:  # the boundary point, replaced by a newer one of its day
                return Change(ChangeKind.TOO_OLD, point, True)
            prev = self._point(i - 1) if i > 0 else None
            after = self._point(i + 1) if i + 1 < n else None
            return Change(ChangeKind.REPLACED, point, True, replaced, prev, after)
        if day < cutoff:
            # At most one point is kept before the cutoff, the boundary point, at index 0.
            if days[0] < cutoff:
                if day < days[0]:
                    return Change(ChangeKind.TOO_OLD, point, False)
                self._store(0, point, insert=False)  # a later day than the boundary point's
            else:
                self._store(0, point, insert=True)
            return Change(ChangeKind.TOO_OLD, point, True)
        prev = self._point(i - 1) if i > 0 else None
        after = self._point(i)
        self._store(i, point, insert=True)
        return Change(ChangeKind.NEW_DAY, point, True, None, prev, after)

    def _compare(self, i: int, point: DailyPoint) -> int:
        """1 when ``point`` is newer than point ``i`` (same day), 0 when it is the same, -1 when older."""
        stored = self._days[i] * DAY_MS + (self._tods[i] & _MS_MASK)
        if point.observed_at != stored:
            return 1 if point.observed_at > stored else -1
        # A tie on the instant: rare, the only case where a stored event id is needed.
        stored_id = self._point(i).event_id
        event_id = point.event_id
        if event_id == stored_id:
            return 0
        return 1 if event_id > stored_id else -1

    def _store(self, i: int, point: DailyPoint, *, insert: bool) -> None:
        day = point.day
        if not 0 <= day <= _MAX_DAY:
            raise ValueError(f"observed_at {point.observed_at} is outside 1970-2149")
        counts = (
            _count_code(point.posts_30d),
            _count_code(point.interactions_30d),
            _count_code(point.replies_30d),
            _count_code(point.automated_posts_30d),
        )
        if point.followers < 0:
            raise ValueError(f"negative followers {point.followers}")
        explicit = not has_derived_id(point, self.account_id)
        tod = (
            (point.observed_at - day * DAY_MS)
            | (_STATUS_CODE[point.status] << _STATUS_SHIFT)
            | (_EXPLICIT_ID if explicit else 0)
        )
        cols = self._cols
        if insert:
            self._days.insert(i, day)
            self._tods.insert(i, tod)
            cols[0].insert(i, point.followers)
            for col, value in zip(cols[1:], counts, strict=True):
                col.insert(i, value)
        else:
            if self._tods[i] & _EXPLICIT_ID:
                del self._ids[self._days[i]]
            self._days[i] = day
            self._tods[i] = tod
            cols[0].set(i, point.followers)
            for col, value in zip(cols[1:], counts, strict=True):
                col.set(i, value)
        if explicit:
            self._ids[day] = point.event_id

    def _prune(self) -> None:
        """Drop the points before the cutoff except the last of them (the boundary point)."""
        days = self._days
        cutoff = days[-1] - self.horizon_days
        if days[0] >= cutoff or len(days) < 2 or days[1] >= cutoff:
            return
        drop = bisect_left(days, cutoff) - 1
        if self._ids:
            tods = self._tods
            for j in range(drop):
                if tods[j] & _EXPLICIT_ID:
                    del self._ids[days[j]]
        del days[:drop]
        del self._tods[:drop]
        for col in self._cols:
            col.delete(0, drop)

    def _point(self, i: int) -> DailyPoint:
        day = self._days[i]
        tod = self._tods[i]
        observed_at = day * DAY_MS + (tod & _MS_MASK)
        status = _STATUS_OF_CODE[(tod >> _STATUS_SHIFT) & 3]
        assert status is not None  # code 3 is refused when restoring
        cols = self._cols
        followers = cols[0].values[i]
        posts = cols[1].values[i]
        interactions = cols[2].values[i]
        replies = cols[3].values[i]
        automated = cols[4].values[i]
        if tod & _EXPLICIT_ID:
            return DailyPoint(
                observed_at,
                self._ids[day],
                followers,
                status,
                posts - 1 if posts else None,
                interactions - 1 if interactions else None,
                replies - 1 if replies else None,
                automated - 1 if automated else None,
            )
        return DailyPoint.with_derived_id(
            self.account_id,
            observed_at,
            followers,
            status,
            posts - 1 if posts else None,
            interactions - 1 if interactions else None,
            replies - 1 if replies else None,
            automated - 1 if automated else None,
        )

    # --- Binary form.

    def to_bytes(self) -> bytes:
        """The compact binary form (format version 1, described in the module docstring)."""
        account = self.account_id.encode()
        cols = self._cols
        parts = [
            _HEADER.pack(FORMAT_VERSION, len(account)),
            account,
            _COUNTS.pack(len(self._days), "".join(col.values.typecode for col in cols).encode()),
            _le(self._days),
            _le(self._tods),
            *(_le(col.values) for col in cols),
            _U16.pack(len(self._ids)),
        ]
        for day in sorted(self._ids):
            event_id = self._ids[day].encode()
            parts.append(_ID_ENTRY.pack(day, len(event_id)))
            parts.append(event_id)
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes | memoryview, horizon_days: int = DEFAULT_HORIZON_DAYS) -> AccountSeries:
        """Restore a series written by :meth:`to_bytes`; ValueError when ``data`` is not one.

        A different ``horizon_days`` than the writer's applies at once (a shorter one drops points).
        """
        view = memoryview(data)
        try:
            version, account_length = _HEADER.unpack_from(view, 0)
            if version != FORMAT_VERSION:
                raise ValueError(f"unknown format version {version}")
            pos = _HEADER.size
            account_id = bytes(view[pos : pos + account_length]).decode()
            pos += account_length
            n, codes = _COUNTS.unpack_from(view, pos)
            pos += _COUNTS.size
            series = cls(account_id, horizon_days)
            series._days = _from_le("H", view[pos : pos + 2 * n])
            pos += 2 * n
            series._tods = _from_le("I", view[pos : pos + 4 * n])
            pos += 4 * n
            for col, code in zip(series._cols, codes.decode(), strict=True):
                if code not in _CAP:
                    raise ValueError(f"unknown column type code {code!r}")
                size = n * _SIZE[code]
                col.values = _from_le(code, view[pos : pos + size])
                pos += size
            (id_count,) = _U16.unpack_from(view, pos)
            pos += _U16.size
            for _ in range(id_count):
                day, length = _ID_ENTRY.unpack_from(view, pos)
                pos += _ID_ENTRY.size
                series._ids[day] = bytes(view[pos : pos + length]).decode()
                pos += length
        except (struct.error, ValueError) as exc:  # UnicodeDecodeError and array's errors included
            raise ValueError(f"not an AccountSeries: {exc}") from exc
        series._check(n, pos, len(data))
        if n:
            series._prune()
        return series

    def _check(self, n: int, end: int, size: int) -> None:
        # Structural checks in C-level operations only (from_bytes may run for every event when the
        # table keeps bytes): lengths, flags and explicit ids agree. The order of days is trusted.
        if end != size or len(self._days) != n or len(self._tods) != n:
            raise ValueError("not an AccountSeries: wrong length")
        for col in self._cols:
            if len(col.values) != n:
                raise ValueError("not an AccountSeries: truncated column")
        top = _le(self._tods)[3::4]  # bits 24-31 of each packed ms-of-day
        if top.translate(_BAD_TOP_BYTE).count(1):
            raise ValueError("not an AccountSeries: unknown status code")
        if top.translate(_EXPLICIT_TOP_BYTE).count(1) != len(self._ids):
            raise ValueError("not an AccountSeries: event ids do not match their flags")
        for day in self._ids:
            i = bisect_left(self._days, day)
            if i == n or self._days[i] != day or not self._tods[i] & _EXPLICIT_ID:
                raise ValueError("not an AccountSeries: event ids do not match their flags")
