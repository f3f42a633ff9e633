"""SIGTERM reaches a scoring worker whose batch cannot be written (ClickHouse down, the sink backing off
between retries): the worker ends within seconds, commits nothing for that batch, and once ClickHouse
is back a new worker processes its events."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from infra.clickhouse import ClickHouseEndpoint
from services.common.bootstrap import prepare_database
from services.common.clickhouse import make_client
from services.common.settings import Settings
from tests.integration.scoring.test_clickhouse_outage import committed, wait_for
from tests.integration.scoring.test_dead_letters import Producer, Worker, end_offsets, good_records

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.slow]

CLICKHOUSE_PORT = 18162
SCORING_PORT = 18743
ACCOUNTS = 20
STOP_WITHIN_S = 8.0  # Faust's own shutdown takes a second or two; the back-off had reached 8 s


def test_sigterm_while_clickhouse_is_down_stops_the_worker_without_committing(
    app_settings: Settings, tmp_path: Path
) -> None:
    endpoint = ClickHouseEndpoint(tmp_path / "clickhouse", port=CLICKHOUSE_PORT)
    endpoint.start(timeout=60)
    try:
        run(app_settings, endpoint, tmp_path)
    finally:
        endpoint.stop()


def run(app_settings: Settings, endpoint: ClickHouseEndpoint, tmp_path: Path) -> None:
    own = {"clickhouse_url": endpoint.url, "clickhouse_database": f"t_{uuid.uuid4().hex[:12]}"}
    settings = app_settings.model_copy(
        update={**own, "scoring_port": SCORING_PORT, "data_dir": tmp_path / "w"}
    )
    prepare_database(settings)
    worker = Worker(settings)
    worker.start()
    producer = Producer(settings)
    try:
        before = producer.send(good_records("stop", ACCOUNTS, days=2))
        worker.wait(end_offsets(before))
        written = committed(settings)

        endpoint.stop()
        during = producer.send(good_records("stop", ACCOUNTS, days=4)[len(before) :])
        wait_for("/readyz saying not ready", lambda: worker.get("/readyz").status_code == 503, 20, worker)
        time.sleep(8)  # retries at 0.5, 1, 2 and 4 s: the sink now waits 8 s before the next one

        assert worker.proc is not None
        worker.proc.terminate()
        started = time.monotonic()
        try:
            worker.proc.wait(STOP_WITHIN_S)
        except Exception:
            raise AssertionError(
                f"the worker still runs {STOP_WITHIN_S:g}s after SIGTERM\n{worker.log_tail()}"
            ) from None
        print(f"stopped {time.monotonic() - started:.1f}s after SIGTERM")
        assert committed(settings) == written, "offsets of the unwritten batch were committed"
        assert "unwritten" in worker.log_tail()

        endpoint.start(timeout=60)  # same port, same data directory
        worker.start()
        worker.wait(end_offsets(during), timeout=60)
    finally:
        producer.close()
        worker.stop()

    ch = make_client(settings)
    db = settings.clickhouse_database
    latest = ch.query(f"SELECT account_id, followers FROM {db}.account_latest FINAL").result_rows
    assert {row[0]: row[1] for row in latest} == {f"x:stop{i}": 1000 + 10 * i + 4 for i in range(ACCOUNTS)}
    assert ch.command(f"SELECT count() FROM {db}.snapshots FINAL") == ACCOUNTS * 4
    ch.close()
