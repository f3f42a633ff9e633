"""From a batch of snapshots and each account's state to rows: the scoring worker minus its plumbing.

For each account of a batch: its state (daily points in the retained horizon, presence intervals,
owner) is read, every snapshot is added as a daily point (idempotent, order-independent), and what
changed becomes rows — the raw snapshot, the daily point with the score then, the account's latest
row with its window baselines, its presence intervals — plus the new state. A point older than the
retained horizon (a 2012 import after 2026 data) cannot be placed from the state alone: the account's
presence is then recomputed from its whole daily history, read back from ClickHouse.

Entity rollups are recomputed by ClickHouse from ``account_latest`` after the batch's inserts (see
``entity_rollup``), so they sum accounts handled by any worker. ``table_suffix`` points the rollup at
``account_latest<suffix>`` and ``entity_latest<suffix>`` (the fresh tables of ``barometre rebuild``).

Given detector parameters (``alerts``, the live worker), each point that becomes part of an account's
series (a new day, or a newer snapshot of its day) also goes through the alert detectors, with the
wall clock as ``now`` so that history (older than 7 days) raises nothing; what they find is returned
as ``Candidate`` s for the alert stage (docs/ALERTS.md, "What the worker does"). ``barometre rebuild``
passes none: a replay detects nothing.
"""

from __future__ import annotations

import struct
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from services.common.events import SNAPSHOT_ATTRIBUTES, SNAPSHOT_FIELDS, AccountSnapshot
from services.common.names import AccountStatus, Platform, Table, Window
from services.common.settings import Settings
from services.scoring.alerts.detection import DetectorParams, detect_point, detect_silence
from services.scoring.alerts.noise import Candidate
from services.scoring.maths import (
    DAY_MS,
    DEFAULT_HORIZON_DAYS,
    WINDOW_MS,
    AccountSeries,
    DailyPoint,
    Score,
    apply_change,
    followers_at,
    good_practice,
    growth,
    intervals_from_points,
    newer,
    point_from_snapshot,
    to_ms,
)
from services.scoring.sink import Statement, TableRows

Intervals = tuple[tuple[int, int], ...]

# Rows carry instants (DateTime64(3) columns) as epoch milliseconds and days (Date columns) as days since
# the epoch: what ClickHouse stores, and clickhouse-connect writes integers as they are. Converting to
# datetime objects and back was a visible share of the worker's time.
# The snapshots table holds every field of the event, named as published, in its order, but for the
# event's type tag ("schema": one topic holds one type); it has no column that is not a field.
NOT_STORED_SNAPSHOT_FIELDS = ("schema",)


def snapshot_columns(fields: Sequence[str]) -> tuple[str, ...]:
    """The columns of the snapshots table for the event's ``fields``."""
    return tuple(name for name in fields if name not in NOT_STORED_SNAPSHOT_FIELDS)


SNAPSHOT_COLUMNS = snapshot_columns(SNAPSHOT_FIELDS)
DAILY_COLUMNS = (
    "account_id",
    "day",
    "platform",
    "entity_id",
    "observed_at",
    "event_id",
    "followers",
    "status",
    "posts_30d",
    "interactions_30d",
    "replies_30d",
    "automated_posts_30d",
    "score",
    "version",
)
LATEST_COLUMNS = (
    "platform",
    "account_id",
    "entity_id",
    "handle",
    "observed_at",
    "followers",
    "status",
    "before_1d",
    "before_7d",
    "before_30d",
    "before_90d",
    "before_365d",
    "posts_30d",
    "interactions_30d",
    "replies_30d",
    "automated_posts_30d",
    "score",
    "score_regularity",
    "score_engagement",
    "score_conversation",
    "score_human",
    "score_growth",
    "score_formula",
    "first_seen",
    "version",
)
PRESENCE_COLUMNS = ("platform", "account_id", "entity_id", "starts", "ends", "version")
# (platform, entity) pairs per rollup statement: one statement for a whole worker batch (each statement
# reads account_latest once), so at least the worker's BATCH.
ROLLUP_CHUNK = 20_000
WINDOW_COLUMN = {w: f"before_{w.value}" for w in Window}
# The values of the enums written in rows: a dict lookup costs a quarter of the enum's ``.value`` property.
_PLATFORM_TEXT: dict[Platform, str] = {p: p.value for p in Platform}
_STATUS_TEXT: dict[AccountStatus, str] = {s: s.value for s in AccountStatus}


@dataclass
class AccountState:
    """What the worker remembers of one account between batches (a Faust table value)."""

    entity_id: str
    handle: str | None
    first_seen: int
    series: AccountSeries
    intervals: Intervals

    _HEADER = struct.Struct("<BqHHI")  # format, first_seen, len(entity_id), len(handle) (+1), n_intervals

    def to_bytes(self) -> bytes:
        entity = self.entity_id.encode()
        handle = b"" if self.handle is None else self.handle.encode()
        head = self._HEADER.pack(
            1,
            self.first_seen,
            len(entity),
            0 if self.handle is None else len(handle) + 1,
            len(self.intervals),
        )
        spans = struct.pack(f"<{2 * len(self.intervals)}q", *(v for span in self.intervals for v in span))
        return b"".join((head, entity, handle, spans, self.series.to_bytes()))

    @classmethod
    def from_bytes(cls, data: bytes, horizon_days: int = DEFAULT_HORIZON_DAYS) -> AccountState:
        version, first_seen, n_entity, n_handle, n_spans = cls._HEADER.unpack_from(data)
        if version != 1:
            raise ValueError(f"unknown account state format {version}")
        at = cls._HEADER.size
        entity = data[at : at + n_entity].decode()
        at += n_entity
        handle = None if n_handle == 0 else data[at : at + n_handle - 1].decode()
        at += max(0, n_handle - 1)
        flat = struct.unpack_from(f"<{2 * n_spans}q", data, at)
        at += 16 * n_spans
        spans = tuple(zip(flat[::2], flat[1::2], strict=True))
        series = AccountSeries.from_bytes(memoryview(data)[at:], horizon_days)
        return cls(entity, handle, first_seen, series, spans)


@dataclass
class BatchOutput:
    """What one batch produces: rows per table, statements to run after them, new states by key, and
    the alert candidates its points raised (always empty without detector parameters)."""

    tables: dict[Table, TableRows]
    after: list[Statement]
    states: dict[bytes, bytes] = field(default_factory=dict)
    candidates: list[Candidate] = field(default_factory=list)


def wall_ms() -> int:
    """The wall clock, in epoch milliseconds (the detectors' ``now``)."""
    return time.time_ns() // 1_000_000


def detector_params(settings: Settings) -> DetectorParams:
    """The alert detectors' parameters of this worker: the defaults, with its staleness window."""
    return DetectorParams(staleness_ms=settings.staleness_days * DAY_MS)


def silent_accounts(
    states: Iterable[tuple[bytes, bytes]],
    wall: int,
    params: DetectorParams,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
) -> list[Candidate]:
    """``account_gone`` candidates of the accounts in ``states`` (key, AccountState bytes) that have
    been silent past the staleness window (``detect_silence``).

    ``now`` is event time: the wall clock, but never later than the latest point of these accounts, so
    that during a back-fill the accounts whose later points are still queued do not look silent. A
    silence that began more than ``max_alert_age_ms`` before the wall clock is history all the same
    (during an import of 2013 figures, ``now`` is in 2013).
    """
    latest: list[tuple[str, str | None, DailyPoint]] = []
    for key, value in states:
        state = AccountState.from_bytes(value, horizon_days)
        point = state.series.latest
        if point is not None:
            latest.append((key.decode(), state.entity_id or None, point))
    if not latest:
        return []
    now = min(wall, max(point.observed_at for _, _, point in latest))
    age = params.max_alert_age_ms
    out: list[Candidate] = []
    for account_id, entity_id, point in latest:
        detection = detect_silence((point,), now, params)
        if detection is not None and (age is None or wall - detection.observed_at <= age):
            out.append(Candidate(account_id, entity_id, detection))
    return out


# A first point is an ``account_new`` alert only on a platform watched for at least this long before it.
NEW_ACCOUNT_AFTER_MS = 7 * DAY_MS

# Reads an account's whole daily history from ClickHouse: account_id -> points.
HistoryFetcher = Callable[[Sequence[str]], Mapping[str, list[DailyPoint]]]


class Processor:
    """Turns batches of snapshots into rows and new per-account states (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        fetch_history: HistoryFetcher,
        horizon_days: int = DEFAULT_HORIZON_DAYS,
        *,
        table_suffix: str = "",
        alerts: DetectorParams | None = None,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.staleness_ms = settings.staleness_days * DAY_MS
        self.alerts = alerts
        self.clock = clock
        self.horizon_days = horizon_days
        self.fetch_history = fetch_history
        self.db = settings.clickhouse_database
        self.table_suffix = table_suffix
        # platform -> the earliest first_seen of its accounts known here (see watched_since).
        self.platform_since: dict[str, int] = {}

    def watched_since(self, since: Mapping[str, int]) -> None:
        """Learn since when each platform has been watched (the worker reads the earliest ``first_seen``
        of ``account_latest`` at start; the processor also learns it from every state it reads)."""
        for platform, first_seen in since.items():
            self._seen(platform, first_seen)

    def _seen(self, platform: str, first_seen: int) -> None:
        known = self.platform_since.get(platform)
        if known is None or first_seen < known:
            self.platform_since[platform] = first_seen

    def _established(self, platform: str, observed_at: int) -> bool:
        """Whether ``platform`` was watched at least ``NEW_ACCOUNT_AFTER_MS`` before ``observed_at``: a
        first point is news (``account_new``) only then. When monitoring starts, or a platform is added,
        every account is seen for the first time at once; none of them is a new account."""
        since = self.platform_since.get(platform)
        return since is not None and since <= observed_at - NEW_ACCOUNT_AFTER_MS

    def process(
        self,
        snapshots: Iterable[AccountSnapshot],
        states: Mapping[bytes, bytes | None],
        received: Mapping[str, int] | None = None,
    ) -> BatchOutput:
        """Rows and new states for ``snapshots`` given the ``states`` of their accounts.

        ``received`` (event_id -> epoch ms) says when barometre received each snapshot (the Kafka
        record's timestamp): the detectors judge a point as of then, never later than the clock, so
        that a worker catching up on a backlog, or re-processing the log, takes the same decisions as
        one that kept up (docs/ALERTS.md, "Clocks"). Absent: the clock.
        """
        by_account: dict[str, list[AccountSnapshot]] = defaultdict(list)
        raw = TableRows(SNAPSHOT_COLUMNS)
        for s in snapshots:
            by_account[s.account_id].append(s)
            raw.rows.append(_snapshot_row(s))
        daily = TableRows(DAILY_COLUMNS)
        latest = TableRows(LATEST_COLUMNS)
        presence = TableRows(PRESENCE_COLUMNS)
        out = BatchOutput(
            {
                Table.SNAPSHOTS: raw,
                Table.ACCOUNT_DAILY: daily,
                Table.ACCOUNT_LATEST: latest,
                Table.PRESENCE: presence,
            },
            [],
        )
        version = time.time_ns()
        detector = self.alerts
        now = self.clock() if detector is not None else 0
        touched: set[tuple[str, str]] = set()
        needs_history: dict[str, tuple[AccountState, list[DailyPoint]]] = {}
        for account_id, items in by_account.items():
            key = account_id.encode()
            stored = states.get(key)
            first = items[0]
            state = (
                AccountState.from_bytes(stored, self.horizon_days)
                if stored
                else AccountState(
                    first.entity_id or "",
                    first.handle,
                    _ms_of(first),
                    AccountSeries(account_id, self.horizon_days),
                    (),
                )
            )
            too_old: list[DailyPoint] = []
            changed = False
            scored: set[int] = set()
            earliest_change: int | None = None
            # The latest point with its score, while the series has not changed since it was scored:
            # the account_latest row then needs neither to build the point again nor to score it.
            latest_scored: tuple[DailyPoint, Score] | None = None
            platform = _PLATFORM_TEXT[first.platform]
            for s in sorted(items, key=lambda x: (x.observed_at, x.event_id)):
                point = point_from_snapshot(s)
                state.first_seen = min(state.first_seen, point.observed_at)
                self._seen(platform, state.first_seen)
                change = state.series.add(point)
                if change.changed:
                    latest_scored = None
                if (change.changed and point.day == state.series.last_day) or not state.entity_id:
                    # Owner and handle follow the latest snapshot, whatever the arrival order (the point
                    # was stored on the latest day: it is the latest).
                    state.entity_id = s.entity_id or state.entity_id
                    state.handle = s.handle or state.handle
                if change.too_old:
                    too_old.append(point)
                    daily.rows.append(self._daily_row(account_id, platform, state, point, None, version))
                    continue
                if not change.changed:
                    continue
                changed = True
                state.intervals = apply_change(state.intervals, change, self.staleness_ms)
                score = self._score_at(state.series, point)
                daily.rows.append(self._daily_row(account_id, platform, state, point, score.value, version))
                scored.add(point.day)
                if point.day == state.series.last_day:
                    latest_scored = (point, score)
                if detector is not None:  # a new day or a newer snapshot of its day (changed)
                    at = now if received is None else min(now, received.get(s.event_id, now))
                    for detection in detect_point(
                        state.series,
                        point,
                        replaced=change.replaced,
                        now=at,
                        params=detector,
                        new_account=self._established(platform, point.observed_at),
                    ):
                        out.candidates.append(Candidate(account_id, state.entity_id or None, detection))
                if earliest_change is None or point.observed_at < earliest_change:
                    earliest_change = point.observed_at
            if earliest_change is not None:
                # A late point can be the 30-day baseline of later points: rescore those, so that a
                # day's score does not depend on the order or batching of the events (docs/SCORING.md).
                for later in state.series.since(earliest_change + WINDOW_MS[Window.D30]):
                    if later.day in scored:
                        continue
                    score = self._score_at(state.series, later)
                    daily.rows.append(
                        self._daily_row(account_id, platform, state, later, score.value, version)
                    )
                    if later.day == state.series.last_day:
                        latest_scored = (later, score)
            if too_old:
                needs_history[account_id] = (state, too_old)
            if changed or too_old:
                latest.rows.append(self._latest_row(account_id, platform, state, version, latest_scored))
                presence.rows.append(_presence_row(account_id, platform, state, version))
                touched.add((platform, state.entity_id))
            out.states[key] = state.to_bytes()
        if needs_history:
            self._recompute_from_history(needs_history, presence, daily, out, version)
        out.after.extend(self.rollups(touched))
        return out

    def _recompute_from_history(
        self,
        needs: Mapping[str, tuple[AccountState, list[DailyPoint]]],
        presence: TableRows,
        daily: TableRows,
        out: BatchOutput,
        version: int,
    ) -> None:
        history = self.fetch_history(sorted(needs))
        presence.rows[:] = [r for r in presence.rows if r[1] not in needs]
        for account_id, (state, old_points) in needs.items():
            points: dict[int, DailyPoint] = {p.day: p for p in history.get(account_id, [])}
            for p in [*old_points, *state.series.points]:
                current = points.get(p.day)
                if current is None or newer(p, current):
                    points[p.day] = p
            ordered = sorted(points.values(), key=lambda p: p.day)
            state.intervals = intervals_from_points(ordered, self.staleness_ms)
            platform = account_id.partition(":")[0]
            presence.rows.append(_presence_row(account_id, platform, state, version))
            out.states[account_id.encode()] = state.to_bytes()
            # Score the old points, and the later points they are the 30-day baseline of, on the whole
            # history: the same scores as if the events had come in order.
            old_days = {p.day for p in old_points}
            first_old = min(p.observed_at for p in old_points)
            for p in ordered:
                if p.day in old_days or p.observed_at >= first_old + WINDOW_MS[Window.D30]:
                    daily.rows.append(
                        self._daily_row(
                            account_id, platform, state, p, self._score_at(ordered, p).value, version
                        )
                    )

    def _score_at(self, points: Sequence[DailyPoint], point: DailyPoint) -> Score:
        """The score of ``point`` among ``points`` (its 30-day growth from them)."""
        t = point.observed_at - WINDOW_MS[Window.D30]
        if isinstance(points, AccountSeries):
            before = points.followers_count_at(t, self.staleness_ms)
        else:
            base = followers_at(points, t, self.staleness_ms)
            before = None if base is None else base.followers
        pct = None if before is None else growth(point.followers, before)[1]
        return good_practice(point, pct)

    def _daily_row(
        self,
        account_id: str,
        platform: str,
        state: AccountState,
        p: DailyPoint,
        score: float | None,
        version: int,
    ) -> list[object]:
        return [
            account_id,
            p.day,
            platform,
            state.entity_id,
            p.observed_at,
            p.event_id,
            p.followers,
            _STATUS_TEXT[p.status],
            p.posts_30d,
            p.interactions_30d,
            p.replies_30d,
            p.automated_posts_30d,
            score,
            p.observed_at,
        ]

    def _latest_row(
        self,
        account_id: str,
        platform: str,
        state: AccountState,
        version: int,
        scored: tuple[DailyPoint, Score] | None = None,
    ) -> list[object]:
        """The account_latest row; ``scored``: the latest point and its score, when already known."""
        series = state.series
        latest = series.latest if scored is None else scored[0]
        assert latest is not None
        # The followers in force at L - w for each window (windows.baselines, without building points).
        before = {
            w: series.followers_count_at(latest.observed_at - ms, self.staleness_ms)
            for w, ms in WINDOW_MS.items()
        }
        if scored is not None:
            score = scored[1]
        else:
            b30 = before[Window.D30]
            score = good_practice(latest, None if b30 is None else growth(latest.followers, b30)[1])
        comps = score.components
        return [
            platform,
            account_id,
            state.entity_id,
            state.handle,
            latest.observed_at,
            latest.followers,
            _STATUS_TEXT[latest.status],
            *[before[w] for w in Window],
            latest.posts_30d,
            latest.interactions_30d,
            latest.replies_30d,
            latest.automated_posts_30d,
            score.value,
            comps.get("regularity"),
            comps.get("engagement"),
            comps.get("conversation"),
            comps.get("human"),
            comps.get("growth"),
            score.formula,
            state.first_seen,
            version,
        ]

    def entity_rollup(self, touched: Sequence[tuple[str, str]]) -> Statement:
        """Recompute the live sums of the touched (platform, entity) pairs from account_latest.

        Only accounts observed within the staleness window count; an entity left with none gets a row
        with ``accounts = 0`` (the api leaves those out), so a stale sum never lingers.

        The pairs go as ``platform:entity_id`` keys (a platform has no colon, so a key names one pair)
        in an external table (``Statement.sets``). Over 300,000 accounts and 6,000 pairs, the statement
        took 117 ms with the pairs as an array parameter of tuples, 74 as an array of keys, 60 as an
        external table of keys (69 for 15,000 pairs); and a server refuses such parameters past 128 KiB.
        """
        fresh = "a.observed_at > now64(3) - toIntervalDay({staleness:UInt32})"
        windows = ", ".join(
            f"if(countIf({fresh} AND a.{c} IS NOT NULL) = 0, NULL, "
            f"sumIf(assumeNotNull(a.{c}), {fresh} AND a.{c} IS NOT NULL)) AS {c}"
            for c in WINDOW_COLUMN.values()
        )
        sql = f"""
            INSERT INTO {self.db}.{Table.ENTITY_LATEST}{self.table_suffix}
            SELECT a.platform AS platform, any(e.category) AS category, a.entity_id AS entity_id,
                   countIf({fresh}) AS accounts, max({fresh} AND a.status = 'active') AS present,
                   max(a.observed_at) AS observed_at, sumIf(a.followers, {fresh}) AS followers, {windows},
                   avgIf(a.score, {fresh}) AS score, toUnixTimestamp64Nano(now64(9)) AS version
            FROM (
                SELECT * FROM {self.db}.{Table.ACCOUNT_LATEST}{self.table_suffix} FINAL
                WHERE concat(platform, ':', entity_id) IN touched
            ) AS a
            LEFT JOIN (SELECT entity_id, argMax(category, version) AS category FROM {self.db}.{Table.ENTITIES}
                       GROUP BY entity_id) AS e ON e.entity_id = a.entity_id
            GROUP BY a.platform, a.entity_id
        """
        keys = [f"{platform}:{entity_id}" for platform, entity_id in touched]
        return Statement(sql, {"staleness": self.staleness_ms // DAY_MS}, {"touched": keys})

    def rollups(self, pairs: Iterable[tuple[str, str]]) -> list[Statement]:
        """:meth:`entity_rollup` of ``pairs``, ``ROLLUP_CHUNK`` pairs a statement (one for a whole batch:
        each statement reads ``account_latest`` once; the sink sends large parameters in the body)."""
        ordered = sorted(pairs)
        return [
            self.entity_rollup(ordered[start : start + ROLLUP_CHUNK])
            for start in range(0, len(ordered), ROLLUP_CHUNK)
        ]

    def stale_rollups(self) -> Statement:
        """The (platform, entity) pairs whose ``entity_latest`` row was computed before one of their
        accounts went stale (its latest point left the staleness window): their sums still count it.

        Batches recompute the rollups of the entities they touch, and an account going stale touches
        nothing: the worker recomputes these periodically (``app.refresh_stale_rollups``).
        """
        sql = f"""
            SELECT DISTINCT a.platform, a.entity_id
            FROM (
                SELECT platform, entity_id, observed_at
                FROM {self.db}.{Table.ACCOUNT_LATEST}{self.table_suffix} FINAL
                WHERE observed_at <= now64(3) - toIntervalDay({{staleness:UInt32}})
            ) AS a
            INNER JOIN (
                SELECT platform, entity_id, max(version) AS computed
                FROM {self.db}.{Table.ENTITY_LATEST}{self.table_suffix} GROUP BY platform, entity_id
            ) AS e ON e.platform = a.platform AND e.entity_id = a.entity_id
            WHERE toUnixTimestamp64Nano(a.observed_at + toIntervalDay({{staleness:UInt32}})) > e.computed
        """
        return Statement(sql, {"staleness": self.staleness_ms // DAY_MS})


def _ms_of(s: AccountSnapshot) -> int:
    return to_ms(s.observed_at)


# A snapshot row is the model's attributes in column order, but for these columns: enums as their text,
# the instant in epoch ms, an absent owner or source as "" (the columns are not Nullable).
_SNAPSHOT_CONVERSIONS = {
    "platform": "_PLATFORM_TEXT[s.platform]",
    "entity_id": 's.entity_id or ""',
    "observed_at": "to_ms(s.observed_at)",
    "status": "_STATUS_TEXT[s.status]",
    "source": 's.source or ""',
}


def _row_function(columns: Sequence[str]) -> Callable[[AccountSnapshot], list[object]]:
    """``row(s)``: the values of ``columns`` for snapshot ``s``, as one list display generated from the
    columns (a loop over them, or ``operator.attrgetter``, costs a third more a row in the worker)."""
    values = (_SNAPSHOT_CONVERSIONS.get(name, f"s.{SNAPSHOT_ATTRIBUTES[name]}") for name in columns)
    namespace: dict[str, object] = {
        "_PLATFORM_TEXT": _PLATFORM_TEXT,
        "_STATUS_TEXT": _STATUS_TEXT,
        "to_ms": to_ms,
    }
    # Built from this module's constants and the model's attribute names only.
    exec(f"def row(s):\n    return [{', '.join(values)}]\n", namespace)  # noqa: S102
    row: Callable[[AccountSnapshot], list[object]] = namespace["row"]  # type: ignore[assignment]
    return row


_snapshot_row = _row_function(SNAPSHOT_COLUMNS)


def _presence_row(account_id: str, platform: str, state: AccountState, version: int) -> list[object]:
    return [
        platform,
        account_id,
        state.entity_id,
        [a for a, _ in state.intervals],
        [b for _, b in state.intervals],
        version,
    ]
