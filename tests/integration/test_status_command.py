"""``barometre status`` against the test Kafka and ClickHouse, with the api running as its own process
and the other services down: what answers is reported, what does not is "unreachable", the exit code
says so; with nothing reachable at all, every part says so. (All parts up: tests/e2e/test_prometheus.py.)

Ports: api 42020; 42021-42023 and 42096-42098, where nothing listens."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.api.alert_store import insert_ack
from services.common.clickhouse import make_client
from services.common.kafka import ensure_topics
from services.common.settings import Settings
from tests.e2e.processes import Service, service_env
from tests.integration.api.alerting import alert, store_alerts
from tests.integration.api.seed import seed

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

PORTS = {"api": 42020, "ingest": 42021, "scoring": 42022, "poller": 42023}


def status(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "status", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture
def api_only(app_settings: Settings, tmp_path: Path) -> Iterator[dict[str, str]]:
    now = datetime.now(UTC).replace(microsecond=0)
    seed(app_settings, now)
    ensure_topics(app_settings)
    alerts = [alert(observed_at=now - timedelta(hours=h)) for h in (1, 2, 3)]
    store_alerts(app_settings, alerts[:2])
    store_alerts(app_settings, alerts[2:], inhibited_by="incident-1")  # inside an incident: not counted
    client = make_client(app_settings)
    insert_ack(client, app_settings.clickhouse_database, alerts[0]["alert_id"], now, "ops", "seen")
    client.close()
    env = service_env(app_settings, tmp_path, PORTS)
    api = Service("api", PORTS["api"], env, tmp_path).start()
    try:
        api.wait_ready()
        yield env
    finally:
        api.stop()


def test_the_api_up_and_the_others_down(api_only: dict[str, str]) -> None:
    out = status(api_only, "--json")
    assert out.returncode == 1, out.stdout + out.stderr
    report: dict[str, Any] = json.loads(out.stdout)
    assert report["ok"] is False
    services = report["services"]
    assert services["api"]["state"] == "ready"
    assert services["api"]["url"] == f"http://127.0.0.1:{PORTS['api']}"
    for name in ("ingest", "scoring", "poller"):
        assert services[name]["state"] == "unreachable", services[name]
        assert "connection refused" in services[name]["detail"]
    scoring = report["scoring"]
    assert scoring["state"] == "ok"
    assert (scoring["partitions"], scoring["events_behind"], scoring["seconds_to_catch_up"]) == (3, 0, 0.0)
    clickhouse = report["clickhouse"]
    assert clickhouse["state"] == "ok"
    assert clickhouse["open_alerts"] == 1  # one acknowledged, one inhibited
    assert clickhouse["last_snapshot_at"] is not None and clickhouse["last_snapshot_age_s"] < 3 * 3600
    facebook = clickhouse["coverage"]["platforms"]["facebook"]
    assert facebook["with_account"] >= 1 and facebook["observed"] >= 1
    assert facebook["observed"] + facebook["stale"] + facebook["never_observed"] == facebook["with_account"]

    text = status(api_only)
    assert text.returncode == 1
    lines = text.stdout.splitlines()
    assert lines[0].endswith(": PROBLEMS")
    assert any(ln.split()[:2] == ["api", "ready"] for ln in lines), text.stdout
    assert any(ln.split()[:2] == ["poller", "UNREACHABLE"] for ln in lines), text.stdout
    assert "open alerts    1" in text.stdout
    assert any(ln.strip().startswith("facebook") for ln in lines), text.stdout


def test_nothing_reachable(app_settings: Settings, tmp_path: Path) -> None:
    env = {
        **service_env(app_settings, tmp_path, {**PORTS, "api": 42096}),
        "BAROMETRE_KAFKA_BOOTSTRAP": "127.0.0.1:42097",
        "BAROMETRE_CLICKHOUSE_URL": "http://127.0.0.1:42098",
    }
    out = status(env, "--json")
    assert out.returncode == 1, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert {s["state"] for s in report["services"].values()} == {"unreachable"}
    assert report["scoring"]["state"] == "unreachable" and "42097" in report["scoring"]["detail"]
    assert report["clickhouse"] == {"state": "unreachable", "detail": "OperationalError: connection refused"}
    text = status(env)
    assert "scoring    UNREACHABLE (Kafka:" in text.stdout
    assert "clickhouse UNREACHABLE" in text.stdout
    assert text.stderr == ""  # what is down is reported, not logged


def test_clickhouse_answers_but_the_database_is_missing(app_settings: Settings, tmp_path: Path) -> None:
    env = {**service_env(app_settings, tmp_path, PORTS), "BAROMETRE_CLICKHOUSE_DATABASE": "not_migrated_yet"}
    report = json.loads(status(env, "--json").stdout)
    assert report["clickhouse"]["state"] == "error"
    assert "not_migrated_yet does not exist" in report["clickhouse"]["detail"]
    assert "clickhouse ERROR (Database not_migrated_yet does not exist" in status(env).stdout
