"""The sizing table of docs/OPERATIONS.md ("Sizing for N accounts at a cadence"): arithmetic on the
planning figures below, which come from the benches (bench/scoring.py, bench/ingest.py, bench/storage.py,
bench/clickhouse_endpoint.py; what each measured, and how, is in that section). Change a figure and run
``python bench/sizing.py`` to print the table again. No server needed, nothing measured here."""

from __future__ import annotations

import math
from dataclasses import dataclass

W_RATE = 5_000  # events/s a scoring worker on a core (measured: 5,848 on 2 shared cores)
INGEST_RATE = 10_000  # snapshots/s an ingest process (measured: 16,875 on 2 shared cores)
HEADROOM = 3  # capacity / steady rate: a one-hour outage drained in 30 minutes
CH_SNAPSHOT_B = 52.3  # compressed bytes a row of `snapshots` (one a snapshot, kept)
CH_DAILY_B = 49.8  # compressed bytes a row of `account_daily` (one an account and day, kept)
CH_LATEST_B = 110.0  # account_latest + presence + entity_latest + entities, an account (replaced)
KAFKA_B = 100  # bytes a snapshot on the log: lz4 in batches of 200 records
KAFKA_REPLICAS = 3
MEASURED_RSS = 0.56 * 2**30  # a worker's peak RSS holding MEASURED_ACCOUNTS accounts (one day)
MEASURED_ACCOUNTS = 315_040
WORKER_RSS = 2 * 2**30  # memory planned a worker
SHARD_BYTES = 2e12  # compressed data planned a shard (judgement)
SHARD_ACCOUNTS = 1_500_000  # accounts a shard's live queries are planned for (judgement)
REPLAY_H = 48  # a replay of one year of the log (`barometre rebuild`, a back-fill) within this
PARTITION_STEPS = (12, 24, 48, 96, 192, 384)
ACCOUNTS = (50_000, 300_000, 1_000_000, 5_000_000)
CADENCES = (("hourly", 24), ("6-hourly", 4), ("daily", 1))  # snapshots an account a day


@dataclass(frozen=True)
class Size:
    accounts: int
    cadence: str
    rate: float  # steady snapshots/s
    capacity: float
    workers: int
    worker_rss: float
    partitions: int
    replay_workers: int  # workers that replay a year in REPLAY_H hours
    replay_h: float  # hours a year's replay takes with `workers`
    ingest: int
    clickhouse_year: float  # bytes, one replica
    kafka_year: float  # bytes, every replica
    shards: int


def size(n: int, cadence: str, k: int) -> Size:
    rate = n * k / 86_400
    capacity = HEADROOM * rate
    rss_per_account = MEASURED_RSS / MEASURED_ACCOUNTS
    workers = max(2, math.ceil(capacity / W_RATE), math.ceil(n * rss_per_account / WORKER_RSS))
    events_year = n * k * 365
    replay_workers = math.ceil(events_year / (W_RATE * REPLAY_H * 3600))
    partitions = next(p for p in PARTITION_STEPS if p >= max(2 * workers, replay_workers))
    clickhouse_year = n * 365 * (k * CH_SNAPSHOT_B + CH_DAILY_B) + n * CH_LATEST_B
    return Size(
        accounts=n,
        cadence=cadence,
        rate=rate,
        capacity=capacity,
        workers=workers,
        # The measured point, scaled linearly with the accounts a worker holds above it.
        worker_rss=max(1.0, n / workers / MEASURED_ACCOUNTS) * MEASURED_RSS,
        partitions=partitions,
        replay_workers=replay_workers,
        replay_h=events_year / (W_RATE * workers) / 3600,
        ingest=max(2, math.ceil(capacity / INGEST_RATE)),
        clickhouse_year=clickhouse_year,
        kafka_year=events_year * KAFKA_B * KAFKA_REPLICAS,
        shards=max(math.ceil(3 * clickhouse_year / SHARD_BYTES), math.ceil(n / SHARD_ACCOUNTS)),
    )


def human(b: float) -> str:
    if b >= 1e12:
        return f"{b / 1e12:.1f} TB"
    return f"{b / 1e9:.1f} GB" if b >= 1e9 else f"{b / 1e6:.0f} MB"


def main() -> None:
    print(
        "| accounts | cadence | steady snapshots/s | capacity (x3) | scoring workers (peak RSS each) "
        "| partitions | ingest processes | ClickHouse a year (1 replica) | Kafka log a year (3 replicas) "
        "| ClickHouse shards (x2 replicas) | workers to replay a year in 48 h (hours with W) |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in ACCOUNTS:
        for cadence, k in CADENCES:
            s = size(n, cadence, k)
            print(
                f"| {n:,} | {cadence} | {s.rate:,.0f} | {s.capacity:,.0f} | {s.workers} "
                f"({s.worker_rss / 2**30:.1f} GiB) | {s.partitions} | {s.ingest} "
                f"| {human(s.clickhouse_year)} | {human(s.kafka_year)} | {s.shards} "
                f"| {s.replay_workers} ({s.replay_h:,.0f} h) |"
            )


if __name__ == "__main__":
    main()
