"""How fast and how small are the scoring maths per event? Prints figures, passes or fails nothing.

The per-event path of the stream worker for one account: ``AccountSeries.add`` + ``baselines`` + the
presence update + the good-practice score (+ ``to_bytes``, since the state is written back after a
batch), measured on a realistic account holding a year of daily points, for three kinds of events:
- live: each event is the account's next day (the series appends and drops its oldest day);
- intraday: a newer snapshot of the latest day (replaces it);
- late: a snapshot of a random past day within the horizon (inserted or replacing, in the middle).

The baseline is the obvious implementation on plain dicts (day -> dict of figures, sorted keys and a
binary search for the baselines, presence recomputed from all points, JSON for the state), with the
ratio. Also printed: bytes per point of ``to_bytes`` and memory per account held in a process.

Target from the brief: the whole per-event path well under 50 µs.

    .venv/bin/python bench/scoring_maths.py [--events 20000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import time
import tracemalloc
from bisect import bisect_right
from collections.abc import Callable
from typing import Any

from services.common.names import AccountStatus, Window
from services.scoring.maths import (
    DAY_MS,
    DEFAULT_STALENESS_MS,
    WINDOW_MS,
    AccountSeries,
    DailyPoint,
    Intervals,
    apply_change,
    baselines,
    derived_event_id,
    good_practice,
    growth,
    intervals_from_points,
)

ACCOUNT = "facebook:villedegrenoble"
S = DEFAULT_STALENESS_MS
START_DAY = 19_000  # 2022-01-08
HOUR = 3_600_000


class Account:
    """A random but plausible account: followers drifting up, a few posts a week, some automation."""

    def __init__(self, rng: random.Random, followers: int, explicit_ids: bool = False) -> None:
        self.rng = rng
        self.followers = followers
        self.posts = 15
        self.explicit_ids = explicit_ids

    def snapshot(self, day: int, hour: float = 6.0) -> DailyPoint:
        rng = self.rng
        self.followers = max(
            0, self.followers + rng.randint(-self.followers // 2000 - 2, self.followers // 500 + 5)
        )
        self.posts = max(0, self.posts + rng.randint(-2, 2))
        observed_at = day * DAY_MS + int(hour * HOUR) + rng.randrange(900_000)
        event_id = (
            f"push-{rng.getrandbits(64):016x}"
            if self.explicit_ids
            else derived_event_id(ACCOUNT, observed_at)
        )
        status = AccountStatus.ACTIVE if rng.random() > 0.002 else AccountStatus.SUSPENDED
        return DailyPoint(
            observed_at,
            event_id,
            self.followers,
            status,
            self.posts,
            self.posts * rng.randint(3, 60),
            rng.randint(0, self.posts),
            rng.randint(0, min(3, self.posts)),
        )


# --- The per-event path with barometre's maths.


def maths_event(series: AccountSeries, intervals: Intervals, point: DailyPoint) -> tuple[Intervals, bytes]:
    change = series.add(point)
    intervals = apply_change(intervals, change, S)
    latest = series[-1]
    before = baselines(series, S)
    base_30d = before[Window.D30]
    pct = None if base_30d is None else growth(latest.followers, base_30d.followers).pct
    good_practice(latest, pct)
    return intervals, series.to_bytes()


# --- The same with plain dicts: the baseline.


def dict_event(state: dict[int, dict[str, Any]], point: DailyPoint) -> tuple[Intervals, bytes]:
    current = state.get(point.day)
    if current is None or (point.observed_at, point.event_id) > (current["observed_at"], current["event_id"]):
        state[point.day] = {
            "observed_at": point.observed_at,
            "event_id": point.event_id,
            "followers": point.followers,
            "status": point.status.value,
            "posts_30d": point.posts_30d,
            "interactions_30d": point.interactions_30d,
            "replies_30d": point.replies_30d,
            "automated_posts_30d": point.automated_posts_30d,
        }
    days = sorted(state)
    latest_day = days[-1]
    for day in days:
        if day >= latest_day - 420:
            break
        del state[day]
    days = [d for d in days if d in state]
    points = [_dict_point(state[d]) for d in days]
    observed = [p.observed_at for p in points]
    latest = points[-1]
    before: dict[Window, DailyPoint | None] = {}
    for window, ms in WINDOW_MS.items():
        t = latest.observed_at - ms
        i = bisect_right(observed, t) - 1
        before[window] = points[i] if i >= 0 and points[i].observed_at > t - S else None
    intervals = intervals_from_points(points, S)
    base_30d = before[Window.D30]
    pct = None if base_30d is None else growth(latest.followers, base_30d.followers).pct
    good_practice(latest, pct)
    return intervals, json.dumps(state).encode()


def _dict_point(d: dict[str, Any]) -> DailyPoint:
    return DailyPoint(
        d["observed_at"],
        d["event_id"],
        d["followers"],
        AccountStatus(d["status"]),
        d["posts_30d"],
        d["interactions_30d"],
        d["replies_30d"],
        d["automated_posts_30d"],
    )


# --- Measuring.


def events_of(kind: str, account: Account, n: int, rng: random.Random) -> list[DailyPoint]:
    last_day = START_DAY + 364
    if kind == "live":
        return [account.snapshot(last_day + 1 + i) for i in range(n)]
    if kind == "intraday":
        return [account.snapshot(last_day, 7 + 16 * i / n) for i in range(n)]
    return [account.snapshot(last_day - rng.randrange(1, 400), rng.uniform(0, 23.9)) for _ in range(n)]


def per_event_us(run: Callable[[DailyPoint], object], events: list[DailyPoint]) -> float:
    start = time.perf_counter()
    for point in events:
        run(point)
    return (time.perf_counter() - start) / len(events) * 1e6


def fresh(
    account_followers: int, seed: int
) -> tuple[Account, AccountSeries, Intervals, dict[int, dict[str, Any]]]:
    account = Account(random.Random(seed), account_followers)
    series = AccountSeries(ACCOUNT)
    state: dict[int, dict[str, Any]] = {}
    year = [account.snapshot(day) for day in range(START_DAY, START_DAY + 365)]
    for p in year:
        series.add(p)
        dict_event(state, p)
    return account, series, intervals_from_points(series.points, S), state


def timed_parts(series: AccountSeries, intervals: Intervals, events: list[DailyPoint]) -> dict[str, float]:
    """µs of each step of the maths path, on live events (each step timed on its own series copy)."""
    out: dict[str, float] = {}
    data = series.to_bytes()

    copy = AccountSeries.from_bytes(data)
    changes = []
    start = time.perf_counter()
    for p in events:
        changes.append(copy.add(p))
    out["AccountSeries.add"] = (time.perf_counter() - start) / len(events) * 1e6

    start = time.perf_counter()
    for _ in events:
        baselines(copy, S)
    out["baselines (5 windows)"] = (time.perf_counter() - start) / len(events) * 1e6

    iv = intervals
    start = time.perf_counter()
    for change in changes:
        iv = apply_change(iv, change, S)
    out["presence apply_change"] = (time.perf_counter() - start) / len(events) * 1e6

    latest = copy[-1]
    start = time.perf_counter()
    for _ in events:
        good_practice(latest, 1.2)
    out["good_practice"] = (time.perf_counter() - start) / len(events) * 1e6

    start = time.perf_counter()
    for _ in events:
        copy.to_bytes()
    out["to_bytes"] = (time.perf_counter() - start) / len(events) * 1e6

    data = copy.to_bytes()
    start = time.perf_counter()
    for _ in events:
        AccountSeries.from_bytes(data)
    out["from_bytes"] = (time.perf_counter() - start) / len(events) * 1e6
    return out


def memory_per_account(n_accounts: int, seed: int) -> float:
    """Bytes held per AccountSeries of a year of daily points (tracemalloc, restored from bytes)."""
    account = Account(random.Random(seed), 20_000)
    data = AccountSeries.from_points(
        ACCOUNT, [account.snapshot(d) for d in range(START_DAY, START_DAY + 365)]
    ).to_bytes()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [AccountSeries.from_bytes(data) for _ in range(n_accounts)]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(kept) == n_accounts
    return (after - before) / n_accounts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    print("Bytes per point of AccountSeries.to_bytes (a year of daily points, 365 points + header):")
    for label, followers, explicit in [
        ("commune, 3,000 followers, derived ids", 3_000, False),
        ("region, 250,000 followers, derived ids", 250_000, False),
        ("commune, explicit event ids (push)", 3_000, True),
    ]:
        account = Account(random.Random(args.seed), followers, explicit)
        series = AccountSeries.from_points(
            ACCOUNT, [account.snapshot(d) for d in range(START_DAY, START_DAY + 365)]
        )
        data = series.to_bytes()
        state: dict[int, dict[str, Any]] = {}
        for p in series:
            dict_event(state, p)
        as_json = json.dumps(state).encode()
        print(
            f"  {label:<40} {len(data) / len(series):5.1f} B/point ({len(data):,} B;"
            f" plain dicts as JSON: {len(as_json) / len(series):.0f} B/point)"
        )

    print(f"\nPer event (µs), account with a year of daily points, {args.events:,} events each:")
    print(f"  {'event kind':<10} {'maths':>9} {'plain dicts':>12} {'ratio':>7}")
    for kind in ("live", "intraday", "late"):
        account, series, intervals, state = fresh(20_000, args.seed)
        events = events_of(kind, account, args.events, rng)
        holder = [intervals]

        def run_maths(
            p: DailyPoint, series: AccountSeries = series, holder: list[Intervals] = holder
        ) -> None:
            holder[0], _ = maths_event(series, holder[0], p)

        def run_dict(p: DailyPoint, state: dict[int, dict[str, Any]] = state) -> None:
            dict_event(state, p)

        maths_us = per_event_us(run_maths, events)
        dict_us = per_event_us(run_dict, events[: max(1, len(events) // 10)])
        print(f"  {kind:<10} {maths_us:9.1f} {dict_us:12.1f} {dict_us / maths_us:6.1f}x")

    account, series, intervals, _ = fresh(20_000, args.seed)
    parts = timed_parts(series, intervals, events_of("live", account, args.events, rng))
    print("\nSteps of the live path (µs per event):")
    for name, us in parts.items():
        print(f"  {name:<28} {us:6.2f}")

    per_account = memory_per_account(2_000, args.seed)
    print(
        f"\nMemory per account held in a process (a year of daily points): {per_account / 1024:.1f} KiB"
        f" -> {per_account * 300_000 / 2**30:.2f} GiB for 300,000 accounts"
    )


if __name__ == "__main__":
    main()
