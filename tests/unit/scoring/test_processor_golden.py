"""Every output of ``Processor.process`` on a few thousand realistic snapshots, against golden values.

The golden digests were computed by the processor of commit 73ab69e: a change of the processor or of
the maths it calls (a speed-up, say) must give the same rows (values, types and order), the same state
bytes, the same alert candidates and the same statements, batch after batch. A change of the figures
on purpose means new digests, and a reason for them in the commit.

The snapshots are drawn from a seeded ``random.Random`` (stable across Python versions for ``random()``),
not from the simulator, so that a change of the simulator's model leaves this test alone. They cover:
accounts of 10 to 450 days (past the 420-day horizon: pruning and the boundary point), followers past
each column width, absent counts, explicit and derived event ids, several snapshots a day (newer,
older, duplicated, tied to the millisecond, with microseconds), late points, points before the
horizon (the history read back), changes of owner and handle, an account without owner, deletions
and suspensions, a drop, a spike, an account falling silent and new accounts on a watched platform,
all in shuffled batches with repeats. The stream is processed twice: with the default horizon and
with a 40-day one (many points beyond it).
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.common.events import AccountSnapshot
from services.common.names import Platform
from services.common.settings import Settings
from services.scoring.maths import DAY_MS, DailyPoint, from_ms, point_from_snapshot, to_ms
from services.scoring.processor import BatchOutput, Processor, detector_params

START = datetime(2025, 6, 2, tzinfo=UTC)  # the first day of the longest histories
DAYS = 470
WALL = to_ms(START) + DAYS * DAY_MS + 3_600_000
EPOCH_DAY = date(1970, 1, 1)
PARTS = ("snapshots", "account_daily", "account_latest", "presence", "states", "candidates", "after")

# Computed with the processor of commit 73ab69e (see the module docstring); "after" since the rollup
# statement reads its (platform, entity) pairs as "platform:entity_id" keys from an external table (the
# same rows in ClickHouse: tests/integration/scoring/test_rebuild.py, test_stale_rollups.py); the table
# digests since rows are compared as ClickHouse stores them (_as_written), recomputed with the processor
# of commit bc44729, whose rows held datetimes and dates; "candidates" since the alert floor scales with
# the audience (docs/ALERTS.md: 2 % of a small audience, at least 5 followers): 9 more candidates on
# small accounts, every other part unchanged.
GOLDEN: dict[int, dict[str, str]] = {  # horizon_days -> part -> digest
    420: {
        "snapshots": "96c5f9863c8290fd",
        "account_daily": "fce17d07152da169",
        "account_latest": "d5433f5d0bf2e663",
        "presence": "f3be3e9dbe3a372a",
        "states": "868159c89d2cfd99",
        "candidates": "643dafb902034ad2",
        "after": "4f3f71664b19b2de",
    },
    40: {
        "snapshots": "96c5f9863c8290fd",
        "account_daily": "3e037fc8bb134057",
        "account_latest": "892441429f804cf6",
        "presence": "6c1ed0054235bb4b",
        "states": "7d18d9c31e484531",
        "candidates": "9a2c0591c8deb06d",
        "after": "4f3f71664b19b2de",
    },
}
GOLDEN_COUNTS: dict[int, dict[str, int]] = {  # rows, states, candidates and statements
    420: {
        "snapshots": 6053,
        "account_daily": 11115,
        "account_latest": 193,
        "presence": 193,
        "states": 193,
        "candidates": 180,
        "after": 7,
    },
    40: {
        "snapshots": 6053,
        "account_daily": 9441,
        "account_latest": 193,
        "presence": 193,
        "states": 193,
        "candidates": 153,
        "after": 7,
    },
}


class Account:
    """A random account: followers drifting, posting at its own rate, counts sometimes unread."""

    def __init__(self, rng: random.Random, n: int, platform: str, followers: int, days: int) -> None:
        self.rng = rng
        self.account_id = f"{platform}:acc{n:03d}"
        self.platform = platform
        self.entity = None if n % 17 == 5 else f"COM:{38000 + n % 23:05d}"
        self.handle = None if n % 17 == 5 else f"acc{n:03d}"
        self.followers = followers
        self.rate = followers * (rng.random() - 0.2) * 0.004
        self.posts = int(rng.random() * 40)
        self.explicit_ids = n % 5 == 3
        self.first_day = DAYS - days
        self.status = "active"

    def snapshot(self, day: int, hour: float, **overrides: Any) -> AccountSnapshot:
        rng = self.rng
        observed = START + timedelta(days=day, hours=hour)
        if rng.random() < 0.05:
            observed += timedelta(microseconds=int(rng.random() * 1_000_000))
        row: dict[str, Any] = {
            "account_id": self.account_id,
            "platform": self.platform,
            "observed_at": observed.isoformat(),
            "followers": max(0, int(self.followers)),
            "status": self.status,
            "source": "simulator",
        }
        if self.entity is not None:
            row["entity_id"] = self.entity
        if self.handle is not None:
            row["handle"] = self.handle
        if self.explicit_ids:
            row["event_id"] = _uuid(rng)
        if self.status == "active" and rng.random() < 0.9:
            posts = self.posts
            row["posts_30d"] = posts
            row["posts_total"] = 1000 + day
            row["following"] = 100 + day % 7
            if rng.random() < 0.9:
                row["interactions_30d"] = int(posts * self.followers * rng.random() * 0.02)
            if rng.random() < 0.9:
                row["replies_30d"] = int(posts * rng.random() * 0.8)
            if rng.random() < 0.9:
                row["automated_posts_30d"] = int(posts * rng.random() * 0.5)
        row.update(overrides)
        return AccountSnapshot.model_validate(row)

    def step(self) -> None:
        rng = self.rng
        self.followers += self.rate * (0.5 + rng.random()) + (rng.random() - 0.5) * 3
        self.posts = max(0, self.posts + int((rng.random() - 0.5) * 6))


def _uuid(rng: random.Random) -> str:
    h = "".join("0123456789abcdef"[int(rng.random() * 16)] for _ in range(32))
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def stream(seed: int = 7) -> list[list[AccountSnapshot]]:
    """Batches of snapshots: roughly chronological, shuffled within a batch, with repeats and stragglers."""
    rng = random.Random(seed)
    timeline: list[tuple[int, AccountSnapshot]] = []  # (day, snapshot)
    widths = (40, 800, 70_000, 5_000_000_000)  # followers: each column width of the series
    for n in range(36):
        platform = ("x", "facebook", "instagram")[n % 3]
        days = (450, 120, 60, 25, 10)[n % 5] if n >= 3 else 450
        account = Account(rng, n, platform, widths[n % 4] + int(rng.random() * 50), days)
        for day in range(account.first_day, DAYS):
            account.step()
            if n == 6 and day == DAYS - 3:
                account.followers *= 0.6  # a drop after a steady history
            if n == 10 and day == DAYS - 2:
                account.followers += 4000  # a spike
            if n == 12 and day >= DAYS - 20:
                account.posts = 0  # falls silent
            if n == 16 and day == DAYS - 5:
                account.status = "deleted"
            if n == 21 and day == DAYS - 30:
                account.status = "suspended"
            if n == 21 and day == DAYS - 20:
                account.status = "active"
            if n == 25 and day == DAYS - 40:
                account.entity, account.handle = "COM:38999", "renamed"
            if rng.random() < 0.08:
                continue  # a missed day
            hour = 6 + rng.random() * 12
            snap = account.snapshot(day, hour)
            timeline.append((day, snap))
            r = rng.random()
            if r < 0.06:  # a later snapshot of the same day
                timeline.append((day, account.snapshot(day, hour + 2, followers=int(account.followers) + 3)))
            elif r < 0.09:  # an earlier one of the same day (arrives later, loses)
                timeline.append((day + 1, account.snapshot(day, hour - 3)))
            elif r < 0.11:  # the same instant, another event id (the greater wins)
                timeline.append((day, snap.model_copy(update={"event_id": _uuid(rng), "followers": 1})))
            elif r < 0.13:  # received again
                timeline.append((day + int(rng.random() * 30), snap))
    for n in range(36, 40):  # new accounts on watched platforms, in the last week
        account = Account(rng, n, ("x", "facebook")[n % 2], 300, 5)
        for day in range(DAYS - 5, DAYS):
            account.step()
            timeline.append((day, account.snapshot(day, 10.0)))
    # Stragglers: a few snapshots arrive much later than their day (inside and beyond the horizon).
    moved = []
    for i in range(len(timeline)):
        r = rng.random()
        if r < 0.01:
            moved.append((i, DAYS - int(rng.random() * 3)))
        elif r < 0.02:
            moved.append((i, timeline[i][0] + 2 + int(rng.random() * 40)))
    for i, arrival in moved:
        timeline[i] = (arrival, timeline[i][1])
    for i, (day, snap) in enumerate(timeline):
        if day >= DAYS - 10 and rng.random() < 0.15:
            timeline[i] = (day + 2, snap)  # late by a day or two: judged as late points
        elif day < 40 and rng.random() < 0.02:
            timeline[i] = (DAYS - 1, snap)  # before the 420-day horizon when it arrives
    timeline.sort(key=lambda item: item[0])
    cuts = [0, 300, 380, 430, 455, 465, 468, DAYS + 1]
    batches = []
    for lo, hi in itertools.pairwise(cuts):
        batch = [snap for day, snap in timeline if lo <= day < hi]
        rng.shuffle(batch)
        batches.append(batch)
    return batches


def _canonical(value: object) -> str:
    return repr(value)


def _as_written(value: object) -> object:
    """A row value as ClickHouse stores it: a DateTime64(3) as epoch milliseconds, a Date as days since
    the epoch (rows may carry either form; the sink writes both the same)."""
    if isinstance(value, datetime):
        return to_ms(value)
    if isinstance(value, date):
        return (value - EPOCH_DAY).days
    if isinstance(value, list):
        return [_as_written(v) for v in value]
    return value


def digest(parts: Sequence[object]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(_canonical(part).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def _without_version(rows: list[list[object]]) -> list[list[object]]:
    """Rows with their last column (the write time, ``time.time_ns()`` of the batch) replaced."""
    versions = {row[-1] for row in rows}
    assert len(versions) <= 1 and all(type(v) is int for v in versions)
    return [[*row[:-1], "version"] for row in rows]


def run(horizon_days: int) -> tuple[dict[str, str], dict[str, int]]:
    """Digests of every output part over the whole stream, and counts (readable when they differ)."""
    # The figures the digests were computed with, whatever BAROMETRE_* variables the tests run with.
    settings = Settings(staleness_days=45, clickhouse_database="barometre")
    history: dict[str, dict[int, DailyPoint]] = {}

    def fetch_history(ids: Sequence[str]) -> Mapping[str, list[DailyPoint]]:
        return {a: sorted(history[a].values(), key=lambda p: p.day) for a in ids if a in history}

    processor = Processor(
        settings,
        fetch_history,
        horizon_days,
        alerts=detector_params(settings),
        clock=lambda: WALL,
    )
    states: dict[bytes, bytes | None] = {}
    collected: dict[str, list[object]] = {part: [] for part in PARTS}
    counts = dict.fromkeys(PARTS, 0)
    rng = random.Random(horizon_days)
    for batch in stream():
        received = {s.event_id: to_ms(s.observed_at) + 60_000 for s in batch if rng.random() < 0.9}
        out: BatchOutput = processor.process(batch, states, received)
        assert list(out.tables) == ["snapshots", "account_daily", "account_latest", "presence"]
        for name, table in out.tables.items():
            rows = table.rows if name in ("snapshots", "account_daily") else _without_version(table.rows)
            rows = [_as_written(row) for row in rows]
            collected[name].append((tuple(table.columns), rows))
            counts[name] += len(rows)
        collected["states"].append(list(out.states.items()))
        collected["candidates"].append(out.candidates)
        collected["after"].append([(s.sql, s.parameters, s.sets) for s in out.after])
        counts["states"] += len(out.states)
        counts["candidates"] += len(out.candidates)
        counts["after"] += len(out.after)
        states.update(out.states)
        for s in batch:  # what ClickHouse's account_daily then holds, for the history reads
            point = point_from_snapshot(s)
            days = history.setdefault(s.account_id, {})
            current = days.get(point.day)
            if current is None or (point.observed_at, point.event_id) > (
                current.observed_at,
                current.event_id,
            ):
                days[point.day] = point
    return {part: digest(collected[part]) for part in PARTS}, counts


def test_outputs_are_the_golden_ones() -> None:
    for horizon_days in (420, 40):
        digests, counts = run(horizon_days)
        assert counts == GOLDEN_COUNTS[horizon_days]
        assert digests == GOLDEN[horizon_days]


def test_the_stream_covers_what_it_says() -> None:
    batches = stream()
    snapshots = [s for batch in batches for s in batch]
    assert 3000 < len(snapshots) < 12_000
    assert len({s.event_id for s in snapshots}) < len(snapshots)  # repeats
    assert {s.status.value for s in snapshots} == {"active", "deleted", "suspended"}
    assert any(s.observed_at.microsecond % 1000 for s in snapshots)
    assert max(s.followers for s in snapshots) > 2**32
    assert from_ms(WALL) > max(s.observed_at for s in snapshots)


def test_rollup_keys_name_one_pair_each() -> None:
    """The rollup statement finds its pairs by ``platform:entity_id``; that is one pair only while no
    platform has a colon (entity ids do: ``COM:75056``)."""
    assert all(":" not in platform.value for platform in Platform)
