"""Benchmark of the local ClickHouse endpoint against chDB used in-process.

Prints, in one run (well under two minutes on the 2-core machines):

* insert throughput (rows/s) for 10,000-row batches of a snapshot-like table (12 columns: strings, a
  LowCardinality, two DateTime64, UInt64s), through the endpoint with clickhouse-connect (default settings,
  so lz4-compressed Native bodies and one DESCRIBE per insert, as a service would do it) and through chDB in
  the bench process, from the same Python rows; and the same from a ready-made pandas DataFrame (sent to
  the endpoint as Arrow, which is how chDB reads it in-process too);
* latency p50/p99 of a small ``SELECT ... WHERE ... LIMIT 20`` through the endpoint (clickhouse-connect
  ``query()``, result as Python rows) and in-process (chDB ``query()``, result as raw bytes: the cheapest
  possible in-process call, so the measured overhead is an upper bound);
* the ratios, and whether the targets are met: endpoint insert throughput >= 50% of in-process, query
  overhead <= 2 ms at p50.

chDB locks a data directory to one process, so the in-process baseline uses its own temporary directory
while the endpoint runs as a child process on another. Usage: ``python bench/clickhouse_endpoint.py``.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import chdb
import clickhouse_connect
import pandas as pd
import pyarrow as pa

from infra.clickhouse import ClickHouseEndpoint

PORT = 18190
BATCH = 10_000
BATCHES = 30  # per measured variant, after one warm-up batch
ROUNDS = 5
QUERIES = 1000
INSERT_TARGET = 0.5
OVERHEAD_TARGET_MS = 2.0

DDL = """
CREATE TABLE IF NOT EXISTS snapshots (
    event_id String,
    account_id String,
    platform LowCardinality(String),
    entity_id String,
    handle String,
    observed_at DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC'),
    followers UInt64,
    following UInt64,
    posts UInt64,
    likes UInt64,
    version UInt64
) ENGINE = MergeTree ORDER BY (account_id, observed_at)
"""
COLUMNS = [
    "event_id", "account_id", "platform", "entity_id", "handle", "observed_at", "ingested_at",
    "followers", "following", "posts", "likes", "version",
]  # fmt: skip
PLATFORMS = ["facebook", "x", "instagram", "youtube", "linkedin", "tiktok", "mastodon", "bluesky"]
QUERY = (
    "SELECT account_id, platform, handle, followers, observed_at FROM snapshots "
    "WHERE account_id = '{account}' ORDER BY observed_at DESC LIMIT 20"
)


def make_batches(n_batches: int, seed: int = 7) -> list[list[tuple[Any, ...]]]:
    rng = random.Random(seed)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    batches = []
    for b in range(n_batches):
        rows = []
        for i in range(BATCH):
            n = b * BATCH + i
            observed = start + dt.timedelta(seconds=n * 7)
            rows.append(
                (
                    f"evt-{n:012d}",
                    f"acc-{rng.randrange(20_000):05d}",
                    PLATFORMS[n % len(PLATFORMS)],
                    f"{rng.randrange(1000, 99999):05d}",
                    f"@commune{rng.randrange(40_000)}",
                    observed,
                    observed + dt.timedelta(seconds=rng.randrange(60)),
                    rng.randrange(10**6),
                    rng.randrange(5000),
                    rng.randrange(10**5),
                    rng.randrange(10**7),
                    n,
                )
            )
        batches.append(rows)
    return batches


def throughput(insert: Callable[[Any], object], batches: list[Any]) -> float:
    """Median rows/s over ROUNDS rounds of the batches (after one warm-up batch): background merges make
    single rounds noisy on two cores."""
    insert(batches[0])
    per_round = (len(batches) - 1) // ROUNDS
    rates = []
    for r in range(ROUNDS):
        t0 = time.perf_counter()
        for batch in batches[1 + r * per_round : 1 + (r + 1) * per_round]:
            insert(batch)
        rates.append(per_round * BATCH / (time.perf_counter() - t0))
    return statistics.median(rates)


def latencies(run: Callable[[str], object], n: int) -> tuple[float, float]:
    """p50 and p99 in milliseconds of ``run`` over n queries for random accounts (after a warm-up)."""
    rng = random.Random(3)
    for _ in range(30):
        run(QUERY.format(account=f"acc-{rng.randrange(20_000):05d}"))
    samples = []
    for _ in range(n):
        q = QUERY.format(account=f"acc-{rng.randrange(20_000):05d}")
        t0 = time.perf_counter()
        run(q)
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main() -> int:
    t_start = time.perf_counter()
    row_batches = make_batches(BATCHES + 1, seed=7)
    df_batches = [pd.DataFrame(rows, columns=COLUMNS) for rows in make_batches(BATCHES + 1, seed=8)]

    with tempfile.TemporaryDirectory(prefix="bench-ch-") as tmp:
        # In-process baseline, on its own directory.
        conn = chdb.connect(str(Path(tmp) / "inproc"))
        conn.query(DDL)

        def inproc_rows(rows: list[tuple[Any, ...]]) -> None:
            frame = pd.DataFrame(rows, columns=COLUMNS)  # noqa: F841 - read by chDB's Python() table function
            conn.query("INSERT INTO snapshots SELECT * FROM Python(frame)")

        def inproc_df(frame: pd.DataFrame) -> None:
            conn.query("INSERT INTO snapshots SELECT * FROM Python(frame)")

        in_rows = throughput(inproc_rows, row_batches)
        in_df = throughput(inproc_df, df_batches)
        # Queries run on settled tables on both sides (one part, no merge running in the background).
        conn.query("OPTIMIZE TABLE snapshots FINAL")
        in_p50, in_p99 = latencies(lambda q: conn.query(q, "CSV").bytes(), QUERIES)
        conn.close()

        with ClickHouseEndpoint(Path(tmp) / "endpoint", port=PORT) as endpoint:
            client = clickhouse_connect.get_client(host=endpoint.host, port=endpoint.port)
            client.command(DDL)
            ep_rows = throughput(
                lambda rows: client.insert("snapshots", rows, column_names=COLUMNS), row_batches
            )
            # The frame goes as Arrow (as chDB's in-process path reads it): what is measured is the
            # endpoint, not clickhouse-connect's pure-Python DataFrame-to-Native conversion (insert_df).
            ep_df = throughput(
                lambda frame: client.insert_arrow(
                    "snapshots", pa.Table.from_pandas(frame, preserve_index=False)
                ),
                df_batches,
            )
            client.command("OPTIMIZE TABLE snapshots FINAL")
            ep_p50, ep_p99 = latencies(lambda q: client.query(q).result_rows, QUERIES)
            count = client.command("SELECT count() FROM snapshots")
            client.close()
        expected = 2 * (BATCHES + 1) * BATCH
        if count != expected:
            print(f"ERROR: endpoint holds {count} rows, expected {expected}")
            return 1

    ratio_rows, ratio_df = ep_rows / in_rows, ep_df / in_df
    overhead = ep_p50 - in_p50
    insert_ok = min(ratio_rows, ratio_df) >= INSERT_TARGET
    latency_ok = overhead <= OVERHEAD_TARGET_MS

    print(f"ClickHouse endpoint vs chDB in-process ({BATCHES} x {BATCH:,}-row batches, 12 columns)")
    print()
    print(f"{'insert':<34}{'in-process':>14}{'endpoint':>14}{'ratio':>9}")
    print(f"{'  from Python rows (rows/s)':<34}{in_rows:>14,.0f}{ep_rows:>14,.0f}{ratio_rows:>9.2f}")
    print(f"{'  from a DataFrame (rows/s)':<34}{in_df:>14,.0f}{ep_df:>14,.0f}{ratio_df:>9.2f}")
    print()
    print(f"{'query (LIMIT 20), ms':<34}{'in-process':>14}{'endpoint':>14}{'overhead':>9}")
    print(f"{'  p50':<34}{in_p50:>14.2f}{ep_p50:>14.2f}{overhead:>9.2f}")
    print(f"{'  p99':<34}{in_p99:>14.2f}{ep_p99:>14.2f}{ep_p99 - in_p99:>9.2f}")
    print()
    print(
        f"target insert >= {INSERT_TARGET:.0%} of in-process: "
        f"{'MET' if insert_ok else 'NOT MET'} (worst ratio {min(ratio_rows, ratio_df):.2f})"
    )
    print(
        f"target query overhead <= {OVERHEAD_TARGET_MS:.1f} ms at p50: "
        f"{'MET' if latency_ok else 'NOT MET'} ({overhead:.2f} ms)"
    )
    print(f"(bench took {time.perf_counter() - t_start:.0f} s)")
    return 0 if insert_ok and latency_ok else 2


if __name__ == "__main__":
    sys.exit(main())
