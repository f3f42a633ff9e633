"""ClickHouse goes away under a running scoring worker and comes back: the worker waits (alive, /healthz
ok, /readyz not ready), commits no offset past rows it could not write, and once ClickHouse answers
again every event is in ClickHouse exactly once and the worker is ready again."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient
from kafka.structs import TopicPartition

from infra.clickhouse import ClickHouseEndpoint
from services.common.bootstrap import prepare_database
from services.common.clickhouse import make_client
from services.common.names import Topic
from services.common.settings import Settings
from tests.integration.scoring.test_dead_letters import Producer, Worker, end_offsets, good_records

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.slow]

CLICKHOUSE_PORT = 18160
SCORING_PORT = 18741
ACCOUNTS = 20


def committed(settings: Settings) -> dict[int, int]:
    """The worker's committed offsets on the snapshots topic, by partition."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap.split(","))
    try:
        group = settings.scoring_group()
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    topic = settings.topic(Topic.ACCOUNT_SNAPSHOTS)
    return {
        tp.partition: meta.offset
        for tp, meta in offsets.items()
        if isinstance(tp, TopicPartition) and tp.topic == topic and meta.offset >= 0
    }


def wait_for(what: str, check: Callable[[], bool], timeout: float, worker: Worker) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} not seen in {timeout:g}s\n{worker.log_tail()}"
        time.sleep(0.2)


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[ClickHouseEndpoint]:
    ch = ClickHouseEndpoint(tmp_path / "clickhouse", port=CLICKHOUSE_PORT)
    ch.start(timeout=60)
    try:
        yield ch
    finally:
        ch.stop()


def test_the_worker_waits_out_a_clickhouse_outage_and_loses_nothing(
    app_settings: Settings, endpoint: ClickHouseEndpoint, tmp_path: Path
) -> None:
    settings = app_settings.model_copy(
        update={
            "clickhouse_url": endpoint.url,
            "clickhouse_database": f"t_{uuid.uuid4().hex[:12]}",
            "scoring_port": SCORING_PORT,
            "data_dir": tmp_path / "worker",
        }
    )
    prepare_database(settings)
    worker = Worker(settings)
    worker.start()
    producer = Producer(settings)
    try:
        # Days 1-2 while ClickHouse is up.
        before = producer.send(good_records("out", ACCOUNTS, days=2))
        worker.wait(end_offsets(before))
        written = committed(settings)
        assert written == end_offsets(before)

        endpoint.stop()
        # Days 3-5 while it is down, and days 1-2 again (at-least-once delivery: the same events twice).
        during = producer.send(good_records("out", ACCOUNTS, days=5))
        wait_for("/readyz saying not ready", lambda: worker.get("/readyz").status_code == 503, 20, worker)
        body = worker.get("/readyz").json()
        assert body["status"] == "not_ready" and body["checks"]["clickhouse"] != "ok"
        assert worker.get("/healthz").status_code == 200
        # The worker holds the batch; nothing past the written rows gets committed.
        for _ in range(6):
            assert worker.alive(), worker.log_tail()
            assert committed(settings) == written
            time.sleep(0.5)

        endpoint.start(timeout=60)  # same port, same data directory
        worker.wait(end_offsets(during), timeout=45)
        wait_for("/readyz saying ready", lambda: worker.get("/readyz").status_code == 200, 10, worker)
        assert worker.alive()
    finally:
        producer.close()
        worker.stop()

    ch = make_client(settings)
    db = settings.clickhouse_database
    # Every distinct event once (the days 1-2 sent twice collapse to one row each) ...
    assert ch.command(f"SELECT count() FROM {db}.snapshots FINAL") == ACCOUNTS * 5
    # ... and no batch was written twice: the retried inserts were not duplicated.
    assert ch.command(f"SELECT count() FROM {db}.snapshots") == len(before) + len(during)
    daily = ch.query(
        f"SELECT account_id, toDayOfMonth(day), followers FROM {db}.account_daily FINAL"
    ).result_rows
    assert sorted(tuple(row) for row in daily) == sorted(
        (f"x:out{i}", day, 1000 + 10 * i + day) for i in range(ACCOUNTS) for day in range(1, 6)
    )
    latest = ch.query(f"SELECT account_id, followers FROM {db}.account_latest FINAL").result_rows
    assert {row[0]: row[1] for row in latest} == {f"x:out{i}": 1000 + 10 * i + 5 for i in range(ACCOUNTS)}
    ch.close()
