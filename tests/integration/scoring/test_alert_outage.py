"""The alert stage of a real scoring worker through ClickHouse outages: an alert that cannot be written
is held (the worker says it is not ready, nothing is published) and published exactly once when
ClickHouse is back; a SIGTERM meanwhile stops the worker within seconds, and the next worker publishes
the held alert."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaProducer

from infra.clickhouse import ClickHouseEndpoint
from services.common.bootstrap import prepare_database
from services.common.clickhouse import make_client
from services.common.names import AlertSeverity, AlertType, Topic
from services.common.settings import Settings
from services.scoring.alerts.codec import candidate_key, encode_candidate
from services.scoring.alerts.detection import Detection
from services.scoring.alerts.noise import Candidate
from services.scoring.maths import to_ms
from tests.integration.scoring.test_alerts import alerts_on_topic, eventually, worker_of
from tests.integration.scoring.test_dead_letters import Worker

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.slow]

CLICKHOUSE_PORT = 18164
SCORING_PORT = 18782
STOP_WITHIN_S = 15.0  # Faust's own shutdown takes a few seconds; the back-off would be 30 s


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[ClickHouseEndpoint]:
    ch = ClickHouseEndpoint(tmp_path / "clickhouse", port=CLICKHOUSE_PORT)
    ch.start(timeout=60)
    try:
        yield ch
    finally:
        ch.stop()


def drop(account_id: str) -> Candidate:
    observed = to_ms(datetime.now(UTC) - timedelta(hours=1))
    detection = Detection(
        AlertType.AUDIENCE_DROP, observed, 900.0, 1500.0, 40.0, AlertSeverity.WARNING, {"flags": []}, observed
    )
    return Candidate(account_id, "COM:38185", detection)


def published(settings: Settings) -> list[str]:
    return sorted(alert["account_id"] for _, alert in alerts_on_topic(settings))


def test_alerts_wait_out_a_clickhouse_outage_and_a_shutdown(
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
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap.split(","), acks="all")

    def inject(candidate: Candidate) -> None:
        # What the scoring agent sends for a detection (the snapshot side has its own outage test).
        topic = settings.topic(Topic.ALERT_CANDIDATES)
        producer.send(topic, key=candidate_key(candidate), value=encode_candidate(candidate)).get(30)

    worker: Worker = worker_of(settings)
    worker.start()
    try:
        inject(drop("x:first"))
        eventually(lambda: published(settings) == ["x:first"], "the first alert", worker)

        endpoint.stop()
        inject(drop("x:during"))
        eventually(
            lambda: worker.get("/readyz").json()["checks"]["alerts"] != "ok",
            "/readyz saying not ready",
            worker,
        )
        assert worker.get("/readyz").status_code == 503
        for _ in range(4):  # held, not published, not dropped
            assert worker.alive() and published(settings) == ["x:first"], worker.log_tail()
            time.sleep(0.5)
        endpoint.start(timeout=60)
        eventually(lambda: published(settings) == ["x:during", "x:first"], "the held alert", worker)
        eventually(lambda: worker.get("/readyz").status_code == 200, "/readyz saying ready", worker)

        endpoint.stop()
        inject(drop("x:shutdown"))
        eventually(lambda: worker.get("/readyz").status_code == 503, "/readyz saying not ready", worker)
        started = time.monotonic()
        worker.stop()
        assert time.monotonic() - started < STOP_WITHIN_S, worker.log_tail()
        assert worker.proc is not None and worker.proc.returncode is not None
        assert published(settings) == ["x:during", "x:first"]
    finally:
        worker.stop()

    endpoint.start(timeout=60)
    again = worker_of(settings)
    again.start()
    try:
        eventually(
            lambda: published(settings) == ["x:during", "x:first", "x:shutdown"], "the last alert", again
        )
        time.sleep(3)  # and nothing published twice
        assert published(settings) == ["x:during", "x:first", "x:shutdown"]
    finally:
        again.stop()
        producer.close()
    ch = make_client(settings)
    rows = ch.query(
        f"SELECT account_id, count() FROM {settings.clickhouse_database}.alerts GROUP BY account_id"
    )
    assert sorted(tuple(r) for r in rows.result_rows) == [("x:during", 1), ("x:first", 1), ("x:shutdown", 1)]
    ch.close()
