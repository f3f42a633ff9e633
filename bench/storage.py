"""Bytes a row and rows a snapshot of barometre's ClickHouse tables (the sizing of docs/OPERATIONS.md).

The simulator's accounts (scale 1, ~33,000) observed for ``--days`` days, ``--every-hours`` apart (24: a
daily cadence, 1: hourly), are scored by the real Processor and written by the real ClickHouseSink (as
tests/integration/api/seed.py does: no Kafka), into a database of its own; after ``OPTIMIZE ... FINAL``,
``system.parts`` gives each table's rows and compressed bytes. Also prints the size of a snapshot on the
Kafka log (key + JSON value, and lz4 in batches of 200 records as the producers batch them). Runs against
BAROMETRE_BENCH_CLICKHOUSE when set, else an endpoint of its own. Usage: ``python bench/storage.py
[--days 7] [--every-hours 24]`` (about a minute for 7 daily observations on the 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lz4.frame

from infra.clickhouse import ClickHouseEndpoint
from services.common.bootstrap import prepare_database
from services.common.clickhouse import make_client
from services.common.reference import load_entities
from services.common.settings import Settings
from services.ingest.sources.simulator import Simulator, SimulatorParams
from services.scoring.processor import Processor
from services.scoring.sink import ClickHouseSink

CH_PORT = 18392
CHUNK = 20_000  # snapshots a Processor batch and a sink write, as the worker's BATCH


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--every-hours", type=int, default=24, help="hours between two observations")
    args = parser.parse_args()
    with ExitStack() as stack:
        url = os.environ.get("BAROMETRE_BENCH_CLICKHOUSE")
        if not url:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            endpoint = ClickHouseEndpoint(tmp / "ch", port=CH_PORT)
            endpoint.start()
            stack.callback(endpoint.stop)
            url = endpoint.url
        settings = Settings(clickhouse_url=url, clickhouse_database=f"bench_storage_{uuid.uuid4().hex[:8]}")
        prepare_database(settings)
        client = make_client(settings)
        stack.callback(client.close)
        stack.callback(client.command, f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        measure(settings, client, args.days, args.every_hours)


def measure(settings: Settings, client: object, days: int, every_hours: int) -> None:
    from clickhouse_connect.driver.client import Client

    assert isinstance(client, Client)
    db = settings.clickhouse_database
    origin = datetime(2026, 11, 1, tzinfo=UTC)
    sim = Simulator(load_entities(), params=SimulatorParams(), seed=0, origin=origin)
    sink = ClickHouseSink(lambda: make_client(settings), db)
    processor = Processor(settings, fetch_history=sink.fetch_history)
    states: dict[bytes, bytes | None] = {}
    snapshots, raw, packed = 0, 0, 0
    started = time.perf_counter()
    ticks = days * 24 // every_hours
    for tick in range(ticks):
        observed = sim.observe(origin + timedelta(hours=12 + tick * every_hours))
        if tick == 0:
            records = observed.records()
            raw = sum(len(k) + len(v) for k, v in records)
            packed = sum(
                len(lz4.frame.compress(b"".join(k + v for k, v in records[i : i + 200])))
                for i in range(0, len(records), 200)
            )
            per_record = (raw / len(records), packed / len(records))
        batch = observed.models()
        for i in range(0, len(batch), CHUNK):
            part = batch[i : i + CHUNK]
            out = processor.process(part, states)
            sink.write(out.tables, {0: (snapshots + i, snapshots + i + len(part))}, out.after)
            states.update(out.states)
        snapshots += len(batch)
    elapsed = time.perf_counter() - started
    for (table,) in client.query(f"SELECT name FROM system.tables WHERE database = '{db}'").result_rows:
        client.command(f"OPTIMIZE TABLE {db}.`{table}` FINAL")
    rows = client.query(
        "SELECT table, sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes) FROM system.parts "
        "WHERE active AND database = {db:String} GROUP BY table ORDER BY 3 DESC",
        parameters={"db": db},
    ).result_rows
    print(
        f"{snapshots:,} snapshots ({snapshots // ticks:,} accounts x {ticks} observations "
        f"{every_hours} h apart) scored and written in "
        f"{elapsed:.1f} s: {snapshots / elapsed:,.0f} snapshots/s (Processor + sink, one process)"
    )
    print("| table | rows | rows a snapshot | compressed bytes | bytes a row | uncompressed bytes a row |")
    print("|---|---:|---:|---:|---:|---:|")
    total = 0
    for table, n, compressed, uncompressed in rows:
        if n:
            total += compressed
            print(
                f"| {table} | {n:,} | {n / snapshots:.3f} | {compressed:,} | {compressed / n:.1f} "
                f"| {uncompressed / n:.1f} |"
            )
    print(f"all tables: {total:,} bytes compressed, {total / snapshots:.1f} bytes a snapshot")
    print(
        f"a snapshot on the Kafka log: {per_record[0]:.0f} B (key + JSON), "
        f"{per_record[1]:.0f} B lz4 in batches of 200"
    )


if __name__ == "__main__":
    main()
