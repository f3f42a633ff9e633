"""Scenario a: the scoring worker SIGKILLed mid-batch and started again.

The same events go to two instances of their own (database and topic prefix each): a clean worker
scores one; on the other a worker is SIGKILLed while it is writing batches (offsets partly committed,
rows of the batch in flight already in ClickHouse), then started again. Once both committed every
offset, every table the worker writes must hold exactly what the clean run left: the rows written
twice collapse, nothing is lost, no count is doubled.

Quick (part of ``make test``): 24,000 events, about 40 s.
Ports: 42010-42011."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from services.common.settings import Settings
from services.ingest.wait import wait_until_consumed
from tests.faults.harness import count, drop, instance, record, scoring_tables, service
from tests.integration.scoring.test_clickhouse_outage import committed
from tests.integration.scoring.test_dead_letters import Producer, end_offsets, good_records

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.kafka, pytest.mark.clickhouse]

ACCOUNTS = 800
DAYS = 30  # 24,000 events, day by day: every batch touches many accounts
# The workers' Kafka session (BAROMETRE_SCORING_SESSION_TIMEOUT_S, 10 s by default): the restarted
# worker's partitions are assigned once the killed member's session has expired.
SESSION_TIMEOUT_S = 10
SESSION = {"BAROMETRE_SCORING_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S)}


def test_a_worker_killed_mid_batch_leaves_the_tables_of_a_clean_run(
    app_settings: Settings, tmp_path: Path
) -> None:
    clean = instance(app_settings)
    faulted = instance(app_settings)
    records = good_records("kill", ACCOUNTS, DAYS)
    clean_worker = service("scoring", clean, 42010, tmp_path / "clean", **SESSION)
    worker = service("scoring", faulted, 42011, tmp_path / "faulted", **SESSION)
    try:
        ends = {}
        for settings in (clean, faulted):
            producer = Producer(settings)
            ends[settings.kafka_topic_prefix] = end_offsets(producer.send(records))
            producer.close()
        total = sum(ends[faulted.kafka_topic_prefix].values())
        assert total == len(records)
        clean_worker.start()
        worker.start()

        # SIGKILL mid-batch: a batch's rows are in ClickHouse, its offsets not committed yet (the worker
        # commits every second), and more batches to come.
        deadline = time.monotonic() + 120
        while True:
            done = sum(committed(faulted).values())
            rows = count(faulted, "SELECT count() FROM {db}.snapshots")
            if 0 < done < rows < total:
                break
            assert done < total, "the worker finished before it could be killed: send more events"
            assert time.monotonic() < deadline, worker.tail()
            time.sleep(0.02)
        worker.kill()
        at_kill = sum(committed(faulted).values())
        rows_at_kill = count(faulted, "SELECT count() FROM {db}.snapshots")
        assert rows_at_kill > at_kill, "killed between batches"

        restarted = time.monotonic()
        worker.start()
        wait_until_consumed(faulted, ends[faulted.kafka_topic_prefix], timeout=180, poll_s=0.2)
        recovery_s = time.monotonic() - restarted
        wait_until_consumed(clean, ends[clean.kafka_topic_prefix], timeout=180, poll_s=0.2)
    finally:
        worker.stop()
        clean_worker.stop()

    try:
        expected, got = scoring_tables(clean), scoring_tables(faulted)
        raw_rows = count(faulted, "SELECT count() FROM {db}.snapshots")
        keys = [(r[1], r[5]) for r in got["snapshots"]]  # (account_id, observed_at) of each stored row
        stored = len(set(keys))
        figures = {
            "events_sent": len(records),
            "offsets_committed_at_kill": at_kill,
            "snapshot_rows_at_kill": rows_at_kill,
            "events_stored": stored,
            "duplicated": len(keys) - stored,
            "lost": len(records) - stored,
            "raw_rows_written_twice": raw_rows - stored,
            "restart_to_caught_up_s": round(recovery_s, 1),
            "consumer_session_timeout_s": SESSION_TIMEOUT_S,
            "tables_identical_to_clean_run": expected == got,
            "rows_compared": {name: len(rows) for name, rows in expected.items()},
        }
        record("a_worker_sigkill", figures)
        assert (stored, len(keys)) == (len(records), len(records))
        for name in expected:
            assert got[name] == expected[name], f"{name} differs from the clean run"
    finally:
        drop(clean)
        drop(faulted)
