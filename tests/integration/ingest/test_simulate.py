"""`barometre simulate` on the real broker: accounts registered, history back-filled, then live steps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata, TopicPartition

from services.common.clickhouse import make_client
from services.common.events import AccountSnapshot
from services.common.kafka import ensure_topics
from services.common.names import Topic
from services.common.settings import Settings
from services.ingest.simulate import SimulateOptions, run_simulator
from tests.integration.ingest.helpers import consume_all

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]


def test_back_fill_then_live_steps(app_settings: Settings) -> None:
    now = datetime(2026, 3, 10, 12, 7, tzinfo=UTC)
    options = SimulateOptions(
        scale=0.02, days_back=3, step=timedelta(minutes=30), until=now + timedelta(minutes=1)
    )
    total = run_simulator(app_settings, options, now=lambda: now)
    assert total > 0
    records = consume_all(app_settings, total, timeout_ms=20000)
    assert len(records) == total
    events = [AccountSnapshot.model_validate(value) for _, value in records]
    days = sorted({e.observed_at.date().isoformat() for e in events})
    assert days == ["2026-03-07", "2026-03-08", "2026-03-09", "2026-03-10"]
    # The days the figures read (1 and 3 back), then the live step, then the rest of the history: the
    # order of publication, as each partition keeps it.
    assert _days_in_order(app_settings) == ["2026-03-09", "2026-03-07", "2026-03-10", "2026-03-08"]
    live = {e.observed_at for e in events if e.observed_at.date().isoformat() == "2026-03-10"}
    assert live == {datetime(2026, 3, 10, 12, 0, tzinfo=UTC)}
    assert all(e.source == "simulator" and e.entity_id for e in events)
    ch = make_client(app_settings)
    registered = ch.command(f"SELECT count() FROM {app_settings.clickhouse_database}.accounts")
    ch.close()
    assert int(str(registered)) >= len({e.account_id for e in events})


def _days_in_order(settings: Settings) -> list[str]:
    """The days of the snapshots on the partition holding the most, in the order they were written."""
    name = settings.topic(Topic.ACCOUNT_SNAPSHOTS)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    parts = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or [])]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    by_partition: dict[int, list[str]] = {}
    while batch := consumer.poll(timeout_ms=2000):
        for tp, records in batch.items():
            for r in records:
                snapshot = AccountSnapshot.model_validate_json(r.value)
                if snapshot.status != "active":
                    continue  # the gone accounts of the other days come with the first ones
                day = snapshot.observed_at.date().isoformat()
                seen = by_partition.setdefault(tp.partition, [])
                if not seen or seen[-1] != day:
                    seen.append(day)
    consumer.close()
    return max(by_partition.values(), key=len)


def _commit_start(settings: Settings) -> None:
    """The scoring group has committed (offset 0 everywhere): a worker is there, and behind."""
    name = settings.topic(Topic.ACCOUNT_SNAPSHOTS)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.scoring_group(),
        enable_auto_commit=False,
    )
    parts = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or [])]
    consumer.assign(parts)
    consumer.commit({tp: OffsetAndMetadata(0, "", -1) for tp in parts})
    consumer.close()


def test_the_rest_of_the_history_waits_for_the_worker(app_settings: Settings) -> None:
    now = datetime(2026, 3, 10, 12, 7, tzinfo=UTC)
    ensure_topics(app_settings)
    _commit_start(app_settings)  # a worker that consumes nothing: every record stays behind
    calls = 0

    def stop() -> bool:
        nonlocal calls
        calls += 1
        return calls > 8  # a few half-second waits for room, then Ctrl-C

    options = SimulateOptions(
        scale=0.02,
        days_back=3,
        step=timedelta(minutes=30),
        until=now + timedelta(minutes=1),
        fill_max_behind=1,
    )
    total = run_simulator(app_settings, options, now=lambda: now, stop=stop)
    records = consume_all(app_settings, total, timeout_ms=5000)
    snapshots = [AccountSnapshot.model_validate(v) for _, v in records]
    days = {s.observed_at.date().isoformat() for s in snapshots if s.status == "active"}
    assert days == {"2026-03-07", "2026-03-09", "2026-03-10"}  # day 2 back held while the worker is behind
