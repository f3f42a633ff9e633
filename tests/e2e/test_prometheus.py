"""Debian's real Prometheus scrapes the local stack: ingest, scoring, api and the poller as their own
processes on the test Kafka and ClickHouse, Prometheus with the jobs of infra/prometheus/prometheus.yml
(local addresses, a 1 s scrape interval) and the alerting rules of infra/prometheus/rules/. Every
target is up, the series the rules and the Grafana dashboard read are there, and every rule evaluates
without error. The services log in JSON (BAROMETRE_LOG_FORMAT=json): every line they write parses.
Last, ``barometre status`` reports the running stack as ready.

Ports: Prometheus 42000-42004, services 42010-42029 (the first free of a block each), an address
where no platform answers 42097."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from services.common.settings import Settings
from tests.e2e.processes import Service, service_env
from tests.faults.harness import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = Path("/usr/bin/prometheus")
# Each takes the first free port of its block (tests.faults.harness.free_port: these lie in Linux's
# ephemeral range, where a client socket of the run may hold one).
PORT_BLOCKS = {"prometheus": 42000, "api": 42010, "ingest": 42015, "scoring": 42020, "poller": 42025}
PORTS = dict.fromkeys(["api", "ingest", "scoring", "poller"], 0)  # the services, by name


def free_ports() -> dict[str, int]:
    return {name: free_port(range(first, first + 5)) for name, first in PORT_BLOCKS.items()}


NOWHERE = "http://127.0.0.1:42097"  # no platform answers here: the poller's requests fail, locally
TOKEN = "test-bootstrap-token-0123456789abcdef"  # app_settings' bootstrap token
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# The series the alerting rules and the dashboard are built on, by the job that exports them. Counters
# with labels appear at their first increment: the test makes each happen (snapshots accepted and
# rejected, events scored, an alert stream opened, accounts polled against platforms that do not answer).
KEY_SERIES = {
    "api": [
        "barometre_http_requests_total",
        "barometre_http_request_duration_seconds_bucket",
        "barometre_api_sse_clients",
        "barometre_api_sse_clients_max",
        "barometre_webhook_deliveries_total",
    ],
    "ingest": [
        "barometre_http_requests_total",
        "barometre_ingest_snapshots_total",
    ],
    "scoring": [
        "barometre_scoring_events_total",
        "barometre_scoring_consumer_lag",
        "barometre_scoring_last_batch_timestamp_seconds",
        "barometre_scoring_rows_written_total",
        "barometre_scoring_write_seconds_bucket",
    ],
    "poller": [
        "barometre_http_requests_total",
        "barometre_poller_accounts",
        "barometre_poller_accounts_polled_total",
        "barometre_poller_requests_total",
        "barometre_poller_failures_total",
        "barometre_poller_lag_seconds",
    ],
}


def eventually(probe: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def prometheus_config(tmp_path: Path, ports: dict[str, int]) -> Path:
    """infra/prometheus/prometheus.yml with the local addresses, a short interval and absolute rules."""
    shipped = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in shipped["scrape_configs"]}
    assert set(jobs) == {*PORTS, "prometheus"}, "a job was added: scrape it here too"
    scrape_configs = []
    for name, job in jobs.items():
        port = ports[name]
        scrape_configs.append(
            {
                "job_name": name,
                "metrics_path": job.get("metrics_path", "/metrics"),
                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
            }
        )
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ROOT / "infra/prometheus" / pattern) for pattern in shipped["rule_files"]],
        "scrape_configs": scrape_configs,
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def stack(app_settings: Settings, tmp_path: Path) -> Iterator[tuple[dict[str, Service], str]]:
    if not PROMETHEUS.exists():
        pytest.skip("Debian's prometheus is not installed (/usr/bin/prometheus)")
    ports = free_ports()
    services = {name: ports[name] for name in PORTS}
    env = {
        **service_env(app_settings, tmp_path, services),
        "BAROMETRE_LOG_FORMAT": "json",
        "BAROMETRE_LOG_LEVEL": "INFO",
        "BAROMETRE_BLUESKY_API_URL": NOWHERE,
        "BAROMETRE_MASTODON_URL_TEMPLATE": NOWHERE + "/{instance}",
        "BAROMETRE_POLLER_MAX_ATTEMPTS": "1",
        "BAROMETRE_POLLER_TIMEOUT_SECONDS": "1",
    }
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(
        "entity_id,platform,handle\nCOM:38185,bluesky,grenoble.fr\nCOM:35238,mastodon,rennes@mastodon.example\n"
    )
    imported = subprocess.run(
        [sys.executable, "-m", "services.cli", "import", "accounts", str(accounts)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stdout + imported.stderr

    running = {name: Service(name, port, env, tmp_path) for name, port in services.items()}
    prometheus: subprocess.Popen[bytes] | None = None
    try:
        for service in running.values():
            service.start()
        with (tmp_path / "prometheus.log").open("wb") as log:
            prometheus = subprocess.Popen(
                [
                    str(PROMETHEUS),
                    f"--config.file={prometheus_config(tmp_path, ports)}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        for service in running.values():
            service.wait_ready()
        yield running, f"http://127.0.0.1:{ports['prometheus']}"
    finally:
        if prometheus is not None:
            prometheus.terminate()
            try:
                prometheus.wait(20)
            except subprocess.TimeoutExpired:
                prometheus.kill()
                prometheus.wait()
        for service in running.values():
            service.stop()


def query(base: str, promql: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5)
    assert r.status_code == 200, r.text
    result: list[dict[str, Any]] = r.json()["data"]["result"]
    return result


def snapshot(account: str, entity: str, followers: int, minutes_ago: int) -> dict[str, Any]:
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes_ago)
    return {
        "account_id": account,
        "platform": account.split(":")[0],
        "entity_id": entity,
        "observed_at": at.isoformat().replace("+00:00", "Z"),
        "followers": followers,
    }


def test_prometheus_scrapes_every_service_and_evaluates_the_rules(
    stack: tuple[dict[str, Service], str], tmp_path: Path
) -> None:
    services, prom = stack
    api, ingest = services["api"], services["ingest"]

    # --- Traffic: snapshots accepted and one rejected, scored by the worker; an alert stream open.
    good = [snapshot("facebook:prom-grenoble", "COM:38185", 7000 + i, 30 - i) for i in range(20)]
    r = httpx.post(f"{ingest.url}/v1/snapshots", json=good, headers=AUTH, timeout=30)
    assert r.status_code == 200 and r.json()["accepted"] == 20, r.text
    bad = httpx.post(
        f"{ingest.url}/v1/snapshots", json=[{**good[0], "followers": -1}], headers=AUTH, timeout=30
    )
    assert bad.status_code in (200, 422), bad.text
    httpx.get(f"{api.url}/v1/status", timeout=10)

    with httpx.stream("GET", f"{api.url}/v1/alerts/stream", timeout=30) as stream:
        assert stream.status_code == 200
        eventually(
            lambda: [s for s in query(prom, "barometre_api_sse_clients") if s["value"][1] == "1"],
            "Prometheus to see the open alert stream",
        )

    # --- Every target up, in every job of the shipped configuration.
    def all_up() -> dict[str, str] | None:
        found = {s["metric"]["job"]: s["value"][1] for s in query(prom, "up")}
        return found if found == dict.fromkeys([*PORTS, "prometheus"], "1") else None

    eventually(all_up, "every target up")
    targets = httpx.get(f"{prom}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
    assert {(t["labels"]["job"], t["health"]) for t in targets} == {
        (job, "up") for job in [*PORTS, "prometheus"]
    }

    # --- The key series, each from the job that exports it.
    def missing() -> list[str]:
        gone = []
        for job, names in KEY_SERIES.items():
            for name in names:
                if not query(prom, f'{name}{{job="{job}"}}'):
                    gone.append(f"{job}: {name}")
        return gone

    try:
        eventually(lambda: not missing(), "the key series", timeout=60)
    except AssertionError:
        raise AssertionError(f"series never scraped: {missing()}") from None
    scored = query(prom, 'sum(barometre_scoring_events_total{job="scoring"})')
    assert float(scored[0]["value"][1]) >= 20
    accepted = query(prom, 'barometre_ingest_snapshots_total{result="accepted"}')
    assert float(accepted[0]["value"][1]) == 20
    cap = query(prom, "barometre_api_sse_clients_max")
    assert cap[0]["value"][1] == str(Settings().api_max_sse_clients)
    lag = query(prom, "barometre_scoring_consumer_lag")
    assert {s["metric"]["partition"] for s in lag} <= {"0", "1", "2"}

    # --- Every rule of infra/prometheus/rules loaded and evaluated without an error.
    shipped = {
        rule["alert"]
        for path in (ROOT / "infra/prometheus/rules").glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }

    def rules() -> list[dict[str, Any]] | None:
        groups = httpx.get(f"{prom}/api/v1/rules", timeout=5).json()["data"]["groups"]
        found = [rule for group in groups for rule in group["rules"]]
        evaluated = all(rule["health"] != "unknown" for rule in found)
        return found if found and evaluated else None

    loaded = eventually(rules, "every rule evaluated")
    assert {rule["name"] for rule in loaded} == shipped
    broken = {rule["name"]: rule.get("lastError") for rule in loaded if rule["health"] != "ok"}
    assert broken == {}
    # With every target up, nothing says a target is down or missing.
    firing = {
        a["labels"]["alertname"]
        for a in httpx.get(f"{prom}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    }
    assert not firing & {"BarometreTargetDown", "BarometreTargetMissing"}

    # --- JSON logs: every line each service wrote is one JSON object naming its service.
    for name, service in services.items():
        lines = [ln for ln in service.log_path.read_text().splitlines() if ln.strip()]
        assert lines, f"{name} logged nothing"
        for line in lines:
            try:
                body = json.loads(line)
            except ValueError:
                raise AssertionError(f"{name} wrote a line that is not JSON: {line!r}") from None
            assert {"ts", "level", "logger", "message"} <= set(body), line
            assert body["service"] == name, line

    # --- `barometre status` on the running stack: every part answers, exit 0.
    out = subprocess.run(
        [sys.executable, "-m", "services.cli", "status", "--json"],
        env=services["api"].env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert {name: s["state"] for name, s in report["services"].items()} == dict.fromkeys(PORTS, "ready")
    assert report["scoring"]["state"] == "ok" and report["scoring"]["events_scored"] >= 20
    assert report["clickhouse"]["last_snapshot_at"] is not None
    text = subprocess.run(
        [sys.executable, "-m", "services.cli", "status"],
        env=services["api"].env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert text.returncode == 0 and ": ok" in text.stdout.splitlines()[0], text.stdout
