"""Scenario d: the ClickHouse endpoint down for 30 s while snapshots keep arriving.

A scoring worker and an api run as their own processes on a ClickHouse endpoint of their own; events
arrive at a steady rate the whole time. The endpoint is stopped for 30 s, then started again on the same
data. Meanwhile the worker stays alive and commits nothing past what it wrote (it pauses), its /readyz
says not ready, and the api answers 503 with ``Retry-After`` (never a 500); afterwards the worker
catches up and every event sent is stored exactly once.

Slow (``make faults``). Ports: 42040-42042."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from infra.clickhouse import ClickHouseEndpoint
from services.common.settings import Settings
from services.ingest.wait import wait_until_consumed
from tests.faults.harness import count, eventually, instance, record, service
from tests.integration.scoring.test_clickhouse_outage import committed
from tests.integration.scoring.test_dead_letters import Producer, Sent, end_offsets

pytestmark = [
    pytest.mark.faults,
    pytest.mark.slow,
    pytest.mark.slow_fault,
    pytest.mark.kafka,
    pytest.mark.clickhouse,
]

CLICKHOUSE_PORT = 42040
OUTAGE_S = 30.0
ACCOUNTS = 100
TICK_S = 0.5  # ACCOUNTS events a tick: 200 events/s
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def tick(k: int) -> list[tuple[bytes | None, bytes | None]]:
    """One snapshot of every account, ``k`` minutes after T0."""
    observed = (T0 + timedelta(minutes=k)).isoformat().replace("+00:00", "Z")
    out: list[tuple[bytes | None, bytes | None]] = []
    for i in range(ACCOUNTS):
        document = {"account_id": f"x:ch{i}", "platform": "x", "entity_id": "COM:38185",
                    "observed_at": observed, "followers": 1000 + i + k}  # fmt: skip
        out.append((f"x:ch{i}".encode(), json.dumps(document).encode()))
    return out


def start(endpoint: ClickHouseEndpoint) -> None:
    """Start the endpoint; again if its port was taken for a moment (it is in Linux's ephemeral range,
    where any client socket may hold it briefly)."""
    for attempt in range(3):
        try:
            endpoint.start(timeout=60)
            return
        except RuntimeError as exc:
            if "already in use" not in str(exc) or attempt == 2:
                raise
            time.sleep(2)


def test_a_30_s_clickhouse_outage_under_load_loses_nothing(app_settings: Settings, tmp_path: Path) -> None:
    endpoint = ClickHouseEndpoint(tmp_path / "clickhouse", port=CLICKHOUSE_PORT)
    start(endpoint)
    try:
        run(app_settings, endpoint, tmp_path)
    finally:
        endpoint.stop()


def run(app_settings: Settings, endpoint: ClickHouseEndpoint, tmp_path: Path) -> None:
    settings = instance(app_settings, clickhouse_url=endpoint.url)
    worker = service("scoring", settings, 42041, tmp_path / "scoring")
    api = service("api", settings, 42042, tmp_path / "api")
    sent: list[Sent] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def load() -> None:
        producer = Producer(settings)
        k = 0
        try:
            while not stop.is_set():
                started = time.monotonic()
                sent.extend(producer.send(tick(k)))
                k += 1
                time.sleep(max(0.0, TICK_S - (time.monotonic() - started)))
        except BaseException as exc:
            errors.append(exc)
        finally:
            producer.close()

    answers: Counter[str] = Counter()
    try:
        worker.start().wait_ready()
        api.start().wait_ready()
        feeder = threading.Thread(target=load, daemon=True)
        feeder.start()
        eventually(lambda: sum(committed(settings).values()) >= 10 * ACCOUNTS, "the worker scoring", 60)

        endpoint.stop()
        down = time.monotonic()
        sent_at_down = len(sent)
        paused_s = eventually(lambda: worker.get("/readyz").status_code == 503, "the worker not ready", 20)
        time.sleep(2)  # a commit of rows written just before the stop may still be on its way
        written = committed(settings)
        while time.monotonic() - down < OUTAGE_S:
            r = httpx.get(f"{api.url}/v1/alerts", params={"account_id": "x:ch1"}, timeout=10)
            retry_after = r.headers.get("retry-after")
            answers[f"{r.status_code} retry-after={retry_after}"] += 1
            assert worker.alive(), worker.tail()
            assert worker.get("/healthz").status_code == 200
            time.sleep(1)
        at_restart = committed(settings)  # the worker paused: nothing committed past the written rows

        start(endpoint)  # same port, same data directory
        back = time.monotonic()
        sent_at_restart = len(sent)
        ends_at_restart = end_offsets(sent[:sent_at_restart])
        wait_until_consumed(settings, ends_at_restart, timeout=120, poll_s=0.2)
        caught_up_s = time.monotonic() - back
        ready_s = eventually(lambda: worker.get("/readyz").status_code == 200, "the worker ready", 30)
        api_ok = httpx.get(f"{api.url}/v1/alerts", params={"account_id": "x:ch1"}, timeout=10).status_code
        time.sleep(5)  # load after the recovery, too
        stop.set()
        feeder.join(30)
        assert not errors, errors
        wait_until_consumed(settings, end_offsets(sent), timeout=120, poll_s=0.2)
    finally:
        stop.set()
        api.stop()
        worker.stop()

    stored = count(settings, "SELECT count() FROM {db}.snapshots FINAL")
    raw = count(settings, "SELECT count() FROM {db}.snapshots")
    figures = {
        "events_sent": len(sent),
        "events_sent_during_outage": sent_at_restart - sent_at_down,
        "outage_s": OUTAGE_S,
        "worker_not_ready_after_s": round(paused_s, 1),
        "offsets_committed_during_outage": sum(at_restart.values()) - sum(written.values()),
        "api_answers_during_outage": dict(answers),
        "restart_to_caught_up_s": round(caught_up_s, 1),
        "restart_to_ready_s": round(ready_s + caught_up_s, 1),
        "events_stored": stored,
        "lost": len(sent) - stored,
        "duplicated": stored - len({(s.key, s.value) for s in sent}) if stored > len(sent) else 0,
        "raw_rows_written_twice": raw - stored,
    }
    record("d_clickhouse_down_30s", figures)
    assert at_restart == written, "offsets committed while ClickHouse was down"
    assert answers and all(a.startswith("503 retry-after=") and not a.endswith("None") for a in answers), (
        answers
    )
    assert api_ok == 200
    assert stored == len(sent)
