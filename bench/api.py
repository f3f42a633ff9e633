"""Benchmark of the api service on 300,000 accounts: req/s and latency of live rankings, live presence
and as-of rankings through one api process, against the bare ClickHouse time of the same SQL.

Data: the simulator's accounts at scale 9.4 (about 300,000 visible accounts), a fifth of them with 60
days of daily history, the others with one snapshot, all ending an hour ago; written without Kafka by
the real scoring Processor and ClickHouseSink (the worker minus its consumer), then the entity rollups.
Seeding takes a while (15 to 20 minutes on 2 cores); the database is kept in the endpoint's data
directory and reused by the next runs while its data is less than 7 days old (``--reseed`` forces it).

Measured, with N concurrent clients (threads, one httpx client each, keep-alive) against one
``python -m services.api`` process for ``--duration`` seconds per scenario:
- live rankings: a rotation of 8 queries (platforms, categories, metrics, by entity and by account);
- live presence: a rotation of 8 queries (platforms, categories);
- as-of rankings: every request at a different instant of the last 50 days (so the answer cache never
  helps), facebook communes, 7-day growth, fewer clients (``--asof-clients``);
- the baseline: the same SQL through services.api.queries in this process, one query at a time.

Targets (from the brief): live rankings p99 <= 50 ms and >= 300 req/s per api process; as-of rankings
p99 <= 500 ms. Prints met/MISSED and exits 1 when one is missed.

    .venv/bin/python bench/api.py [--clients 8] [--asof-clients 2] [--duration 15] [--reseed]

Uses its own ClickHouse endpoint on port 18194 (data in .cache/bench-api unless --data-dir), or
BAROMETRE_BENCH_CLICKHOUSE when set; the api process listens on 18800.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from clickhouse_connect.driver.client import Client

from bench._servers import NO_RATE_LIMITS
from infra.clickhouse import ClickHouseEndpoint
from services.api import queries
from services.api.queries import RankBy, Scope
from services.common.bootstrap import prepare_database
from services.common.clickhouse import make_client
from services.common.events import AccountSnapshot
from services.common.names import Category, Platform, Table, Window
from services.common.reference import load_entities
from services.common.settings import REPO_ROOT, Settings
from services.ingest.sources.simulator import Batch, Simulator, SimulatorParams
from services.scoring.processor import Processor
from services.scoring.sink import ClickHouseSink

CH_PORT, API_PORT = 18194, 18800
DATABASE = "bench_api"
SCALE = 9.4  # about 300,000 visible accounts
HISTORY_SHARE = 5  # one account in 5 has daily history
DAYS = 60
REUSE_DAYS = 7
LIVE_P99_MS, LIVE_RPS, ASOF_P99_MS = 50.0, 300.0, 500.0

LIVE_RANKINGS = [
    "platform=facebook&category=commune&window=30d&metric=growth_abs",
    "platform=facebook&category=commune&window=7d&metric=growth_pct&by=account",
    "platform=x&category=departement&window=30d&metric=followers",
    "platform=instagram&category=commune&window=1d&metric=growth_abs&region=84",
    "platform=facebook&category=epci&window=30d&metric=per_1000_inhabitants",
    "platform=youtube&window=7d&metric=growth_abs&by=account&limit=100",
    "platform=twitter&category=commune&window=30d&metric=growth_abs&departement=38",
    "platform=linkedin&category=region&window=30d&metric=followers",
]
LIVE_PRESENCE = [
    f"platform={p}&category={c}"
    for p in ("facebook", "x", "instagram", "bluesky")
    for c in ("commune", "departement")
]
ASOF_RANKING = "platform=facebook&category=commune&window=7d&metric=growth_abs&at={at}"


# --- Data.


def seed(settings: Settings, now: datetime) -> int:
    """Write the bench data (see the module docstring); return the number of snapshots."""
    db = settings.clickhouse_database
    start = now - timedelta(days=DAYS - 1, hours=1)
    sim = Simulator(load_entities(), SimulatorParams(scale=SCALE), origin=start - timedelta(days=400))
    sink = ClickHouseSink(lambda: make_client(settings), db)
    processor = Processor(settings, fetch_history=sink.fetch_history)
    states: dict[bytes, bytes | None] = {}
    touched: set[tuple[str, str]] = set()
    written = 0
    began = time.perf_counter()
    for day, batch in enumerate(sim.run(start, now, timedelta(days=1))):
        if day < DAYS - 1:  # history for a fifth of the accounts; everyone on the last day
            keep = batch.index % HISTORY_SHARE == 0
            columns = ("followers", "posts_total", "posts_30d", "interactions_30d", "replies_30d",
                       "automated_posts_30d")  # fmt: skip
            batch = Batch(
                sim,
                batch.t,
                batch.index[keep],
                {c: getattr(batch, c)[keep] for c in columns},
                batch.status[keep],
            )
        snapshots = [AccountSnapshot.model_validate(d) for d in batch.dicts()]
        out = processor.process(snapshots, states)
        # The worker recomputes entity rollups after each batch; here once, at the end.
        sink.write(out.tables, {0: (day, day)}, [])
        states.update(out.states)
        touched.update((str(r[0]), str(r[2])) for r in out.tables[Table.ACCOUNT_LATEST].rows)
        written += len(snapshots)
        print(f"  seeding day {day + 1}/{DAYS}: {written:,} snapshots, {time.perf_counter() - began:.0f} s",
              flush=True)  # fmt: skip
    client = make_client(settings)
    pairs = sorted(touched)
    for statement in processor.rollups(pairs):
        statement.run(client)
    client.close()
    print(f"  seeded {written:,} snapshots and {len(pairs):,} entity rollups in "
          f"{time.perf_counter() - began:.0f} s", flush=True)  # fmt: skip
    return written


def ensure_data(settings: Settings, reseed: bool) -> dict[str, int]:
    """Seed unless a recent enough copy of the bench data is there; return table sizes."""
    client = make_client(settings, database=None)
    db = settings.clickhouse_database
    latest = None
    if not reseed and client.command(f"EXISTS DATABASE {db}") == 1:
        try:
            sql = f"SELECT max(observed_at), count() FROM {db}.{Table.ENTITY_LATEST}"
            latest = client.query(sql).result_rows[0]
        except Exception:  # a half-made database: start again
            latest = None
    fresh = (
        latest is not None
        and latest[1] > 0
        and latest[0] > datetime.now(UTC).replace(tzinfo=None) - timedelta(days=REUSE_DAYS)
    )
    if not fresh:
        client.command(f"DROP DATABASE IF EXISTS {db}")
        prepare_database(settings)
        seed(settings, datetime.now(UTC).replace(microsecond=0))
    sizes = {
        table.value: int(client.command(f"SELECT count() FROM {db}.{table} FINAL"))  # type: ignore[arg-type]
        for table in (Table.ACCOUNT_LATEST, Table.ACCOUNT_DAILY, Table.SNAPSHOTS, Table.ENTITY_LATEST)
    }
    client.close()
    return sizes


# --- Load.


@dataclass
class Result:
    clients: int
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: list[str]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def load(base: str, make_url: Callable[[int, int], str], clients: int, duration: float) -> Result:
    """``clients`` threads asking ``make_url(client, n)`` in a loop for ``duration`` seconds."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    start_line = threading.Barrier(clients + 1)
    deadline = [0.0]

    def worker(k: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            http.get("/healthz")
            start_line.wait()
            n = 0
            while (now := time.perf_counter()) < deadline[0]:
                r = http.get(make_url(k, n))
                latencies[k].append((time.perf_counter() - now) * 1000)
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                n += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + duration
    began = time.perf_counter()
    start_line.wait()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - began
    flat = [x for per in latencies for x in per]
    return Result(clients, len(flat), seconds, flat, errors)


def bare(fn: Callable[[], Any], n: int) -> tuple[float, float]:
    """p50 and p99 (ms) of ``fn`` run ``n`` times in a row, after one warm-up."""
    fn()
    times = []
    for _ in range(n):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), percentile(times, 99)


def asof_instants(now: datetime, count: int, seed: int) -> list[datetime]:
    rng = random.Random(seed)
    return [now - timedelta(days=1, seconds=rng.randrange(49 * 86_400)) for _ in range(count)]


def start_api(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        BAROMETRE_CLICKHOUSE_URL=settings.clickhouse_url,
        BAROMETRE_CLICKHOUSE_DATABASE=settings.clickhouse_database,
        BAROMETRE_API_PORT=str(port),
        BAROMETRE_LOG_LEVEL="WARNING",
    )
    env.update(NO_RATE_LIMITS)
    proc = subprocess.Popen([sys.executable, "-m", "services.api"], env=env, cwd=REPO_ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"the api process exited with {proc.returncode}")
        time.sleep(0.3)
    proc.terminate()
    raise SystemExit("the api process did not become ready in 60 s")


def baselines(client: Client, settings: Settings, runs: int) -> dict[str, tuple[float, float]]:
    db, staleness = settings.clickhouse_database, timedelta(days=settings.staleness_days)
    now = datetime.now(UTC)
    communes = Scope(Category.COMMUNE)
    instants = iter(asof_instants(now, runs + 1, seed=2))
    return {
        "live ranking, by entity (entity_latest)": bare(
            lambda: queries.rankings_live(client, db, Platform.FACEBOOK, communes, Window.D30, "growth_abs",
                                          datetime.now(UTC), staleness, 20),
            runs,
        ),
        "live ranking, by account (account_latest)": bare(
            lambda: queries.rankings_live(client, db, Platform.FACEBOOK, communes, Window.D7, "growth_pct",
                                          datetime.now(UTC), staleness, 20, by=RankBy.ACCOUNT),
            runs,
        ),
        "presence (presence intervals)": bare(
            lambda: queries.presence(client, db, [Platform.FACEBOOK], communes, datetime.now(UTC)), runs
        ),
        "as-of ranking (account_daily)": bare(
            lambda: queries.rankings_at(client, db, Platform.FACEBOOK, communes, Window.D7, "growth_abs",
                                        next(instants), staleness, 20),
            runs,
        ),
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients for live queries")
    parser.add_argument("--asof-clients", type=int, default=2, help="concurrent clients for as-of rankings")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per scenario")
    parser.add_argument("--baseline-runs", type=int, default=30)
    parser.add_argument("--reseed", action="store_true", help="seed again even if recent data is there")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / ".cache" / "bench-api")
    parser.add_argument("--database", default=DATABASE, help="ClickHouse database of the bench data")
    args = parser.parse_args()

    with ExitStack() as stack:
        url = os.environ.get("BAROMETRE_BENCH_CLICKHOUSE")
        if not url:
            endpoint = ClickHouseEndpoint(args.data_dir / "clickhouse", port=CH_PORT)
            endpoint.start(timeout=60)
            stack.callback(endpoint.stop)
            url = endpoint.url
        settings = Settings(clickhouse_url=url, clickhouse_database=args.database)
        print(f"ClickHouse {url}, database {args.database}")
        sizes = ensure_data(settings, args.reseed)
        print("data: " + ", ".join(f"{table} {rows:,} rows" for table, rows in sizes.items()))

        client = make_client(settings, autogenerate_session_id=False, compress=False)
        base_times = baselines(client, settings, args.baseline_runs)
        client.close()

        api = start_api(settings, API_PORT)
        stack.callback(api.wait, 10)
        stack.callback(api.terminate)
        base = f"http://127.0.0.1:{API_PORT}"
        instants = asof_instants(datetime.now(UTC), 100_000, seed=1)

        def live_rankings(k: int, n: int) -> str:
            return "/v1/rankings?" + LIVE_RANKINGS[(k + n) % len(LIVE_RANKINGS)]

        def live_presence(k: int, n: int) -> str:
            return "/v1/presence?" + LIVE_PRESENCE[(k + n) % len(LIVE_PRESENCE)]

        def asof(k: int, n: int) -> str:
            at = instants[(k * 7919 + n) % len(instants)].strftime("%Y-%m-%dT%H:%M:%SZ")
            return "/v1/rankings?" + ASOF_RANKING.format(at=at)

        load(base, live_rankings, 2, 2.0)  # warm-up: connections, answer cache
        results = {
            "live rankings": load(base, live_rankings, args.clients, args.duration),
            "live presence": load(base, live_presence, args.clients, args.duration),
            "as-of rankings": load(base, asof, args.asof_clients, args.duration),
        }

    load_avg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nmachine: {os.cpu_count()} cores, load average {load_avg} (other processes skew the figures)")
    print(f"\n{'through one api process':<44}{'clients':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for name, r in results.items():
        print(f"{name:<44}{r.clients:>8}{r.rps:>9.0f}{r.percentile(50):>9.1f}{r.percentile(99):>9.1f}")
        if r.errors:
            print(f"  {len(r.errors)} errors, first: {r.errors[0]}")
    print(f"\n{'bare ClickHouse, same SQL, one at a time':<61}{'p50 ms':>9}{'p99 ms':>9}")
    for name, (p50, p99) in base_times.items():
        print(f"{name:<61}{p50:>9.1f}{p99:>9.1f}")

    live, asof_result = results["live rankings"], results["as-of rankings"]
    checks = [
        (f"live rankings p99 <= {LIVE_P99_MS:g} ms", live.percentile(99) <= LIVE_P99_MS),
        (f"live rankings >= {LIVE_RPS:g} req/s", live.rps >= LIVE_RPS),
        (f"as-of rankings p99 <= {ASOF_P99_MS:g} ms", asof_result.percentile(99) <= ASOF_P99_MS),
        ("no errors", not any(r.errors for r in results.values())),
    ]
    print("\ntargets: " + ", ".join(f"{label} {'met' if ok else 'MISSED'}" for label, ok in checks))
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
