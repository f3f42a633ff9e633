"""Scenario b: two scoring workers in one consumer group, one added and one SIGKILLed mid-stream.

Events arrive day by day while a first worker scores them; a second worker joins the group (the
partitions, and the account states on their changelogs, move to it), then the first is SIGKILLed (its
partitions move once its session expires). The same events are scored by one clean worker on an
instance of their own. Once both committed every offset, every table must hold exactly what the clean
run left: no event lost, none counted twice.

Slow (``make faults``). Ports: 42020-42022."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient

from services.common.settings import Settings
from services.ingest.wait import wait_until_consumed
from tests.faults.harness import (
    count,
    drop,
    eventually,
    instance,
    read_topic,
    record,
    scoring_tables,
    service,
)
from tests.integration.scoring.test_clickhouse_outage import committed
from tests.integration.scoring.test_dead_letters import Producer, Sent, end_offsets, good_records

pytestmark = [
    pytest.mark.faults,
    pytest.mark.slow,
    pytest.mark.slow_fault,
    pytest.mark.kafka,
    pytest.mark.clickhouse,
]

ACCOUNTS = 1000
DAYS = 30  # 30,000 events (2024-05-01..30), a day (1,000 events) every DAY_EVERY_S
DAY_EVERY_S = 1.3
SESSION_TIMEOUT_S = 10  # the workers' Kafka session (the default of BAROMETRE_SCORING_SESSION_TIMEOUT_S)
SESSION = {
    "BAROMETRE_SCORING_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S),
    # To look into a failure: BAROMETRE_FAULTS_LOG_LEVEL=DEBUG keeps the workers' logs in their workdirs.
    "BAROMETRE_LOG_LEVEL": os.environ.get("BAROMETRE_FAULTS_LOG_LEVEL", "WARNING"),
}


def members(settings: Settings) -> int:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap.split(","))
    try:
        group = settings.scoring_group()
        described = admin.describe_groups([group])[group]
        return len(described["members"]) if described["group_state"] == "Stable" else 0
    finally:
        admin.close()


def where_lost(settings: Settings, stored: set[tuple[str, object]]) -> list[str]:
    """The partition and offset of each record of the snapshots topic whose event no table holds."""
    lost = []
    for r in read_topic(settings):
        event = json.loads(r.value)
        if (event["account_id"], event["observed_at"][:10]) not in stored:
            lost.append(
                f"{event['account_id']} {event['observed_at']} at partition {r.partition} offset {r.offset}"
            )
    return lost


def test_a_worker_added_and_one_killed_mid_stream_lose_and_double_nothing(
    app_settings: Settings, tmp_path: Path
) -> None:
    clean = instance(app_settings, kafka_partitions=6)
    faulted = instance(app_settings, kafka_partitions=6)
    records = good_records("grp", ACCOUNTS, DAYS)
    clean_worker = service("scoring", clean, 42020, tmp_path / "clean", **SESSION)
    first = service("scoring", faulted, 42021, tmp_path / "first", **SESSION)
    second = service("scoring", faulted, 42022, tmp_path / "second", **SESSION)
    sent: list[Sent] = []
    stream_error: list[BaseException] = []

    def stream() -> None:  # a day of events every DAY_EVERY_S
        producer = Producer(faulted)
        try:
            for day in range(DAYS):
                sent.extend(producer.send(records[day * ACCOUNTS : (day + 1) * ACCOUNTS]))
                time.sleep(DAY_EVERY_S)
        except BaseException as exc:  # surfaced below
            stream_error.append(exc)
        finally:
            producer.close()

    try:
        producer = Producer(clean)
        clean_ends = end_offsets(producer.send(records))
        producer.close()
        clean_worker.start()
        first.start().wait_ready()
        feeder = threading.Thread(target=stream, daemon=True)
        feeder.start()

        eventually(lambda: len(sent) >= 5 * ACCOUNTS, "five days sent", 60)
        added_at_committed = sum(committed(faulted).values())
        second.start()
        rebalance_s = eventually(lambda: members(faulted) == 2, "two members in the group", 60, every=0.5)
        eventually(lambda: len(sent) >= 15 * ACCOUNTS, "fifteen days sent", 60)
        assert feeder.is_alive(), "the stream ended before the kill: make it longer"
        first.kill()
        killed = time.monotonic()
        killed_at = sum(committed(faulted).values())

        feeder.join(120)
        assert not stream_error, stream_error
        assert len(sent) == len(records)
        ends = end_offsets(sent)
        wait_until_consumed(faulted, ends, timeout=180, poll_s=0.2)
        kill_to_caught_up_s = time.monotonic() - killed
        wait_until_consumed(clean, clean_ends, timeout=180, poll_s=0.2)
        assert second.alive(), second.tail()
    finally:
        for worker in (first, second, clean_worker):
            worker.stop()

    try:
        expected, got = scoring_tables(clean), scoring_tables(faulted)
        keys = [(r[1], r[5]) for r in got["snapshots"]]  # (account_id, observed_at) of each stored row
        stored = len(set(keys))
        figures = {
            "events_sent": len(records),
            "committed_when_second_added": added_at_committed,
            "second_worker_in_group_s": round(rebalance_s, 1),
            "committed_at_kill": killed_at,
            "events_stored": stored,
            "duplicated": len(keys) - stored,
            "lost": len(records) - stored,
            "raw_rows_written_twice": count(faulted, "SELECT count() FROM {db}.snapshots") - stored,
            "kill_to_caught_up_s": round(kill_to_caught_up_s, 1),
            "consumer_session_timeout_s": SESSION_TIMEOUT_S,
            "tables_identical_to_clean_run": expected == got,
            "rows_compared": {name: len(rows) for name, rows in expected.items()},
        }
        if stored != len(records):
            figures["lost_records"] = where_lost(faulted, {(k[0], str(k[1])[:10]) for k in keys})
        record("b_worker_group_add_and_kill", figures)
        assert (stored, len(keys)) == (len(records), len(records))
        for name in expected:
            assert got[name] == expected[name], f"{name} differs from the clean run"
    finally:
        drop(clean)
        drop(faulted)
