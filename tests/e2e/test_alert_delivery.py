"""An audience drop from the outside: separate ingest, scoring and api processes on a real Kafka broker
and the real ClickHouse engine. Six weeks of daily history for an account are pushed over HTTP, then a
live snapshot with a large drop; the alert must reach a client of the SSE stream and a webhook
receiver that checks the signature, well within one snapshot interval.

Ports: services 52080-52082, the receiver in 52020-52069."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from services.api.webhooks import WEBHOOK_CONSUMER_GROUP
from services.common.settings import Settings
from tests.e2e.processes import Service, service_env
from tests.integration.api.alerting import Receiver, SseReader, serve

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.slow]

PORTS = {"api": 52080, "ingest": 52081, "scoring": 52082}
TOKEN = "test-bootstrap-token-0123456789abcdef"  # app_settings' bootstrap token
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ACCOUNT = "facebook:e2e-grenoble"
SECRET = "e2e-receiver-secret-0123456789"
HISTORY_DAYS = 42
# The interval between two snapshots of an account in this test (daily history); the simulator's is
# 15 minutes. The alert must arrive well within either.
SNAPSHOT_INTERVAL_S = 15 * 60
GROUP_WAIT_S = 1  # noise control holds grouped detections this long (default 60 s)


@pytest.fixture
def services(app_settings: Settings, tmp_path: Path) -> Iterator[dict[str, Service]]:
    env = {
        **service_env(app_settings, tmp_path, PORTS),
        "BAROMETRE_ALERT_GROUP_WAIT_S": str(GROUP_WAIT_S),
        "BAROMETRE_WEBHOOK_RELOAD_S": "0.5",
        "BAROMETRE_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",  # the receiver is local; refused by default
    }
    running = {name: Service(name, PORTS[name], env, tmp_path) for name in ("scoring", "ingest", "api")}
    try:
        for service in running.values():
            service.start()
        for service in running.values():
            service.wait_ready()
        yield running
    finally:
        for service in running.values():
            service.stop()


NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)


def followers_on(days_ago: int) -> int:
    """About +10 a day with a little deterministic noise (as the worker's own alert tests)."""
    return 7000 + 10 * (HISTORY_DAYS - days_ago) + (days_ago * 7919) % 7 - 3


def snapshot(days_ago: int, followers: int) -> dict[str, Any]:
    return {
        "account_id": ACCOUNT,
        "platform": "facebook",
        "entity_id": "COM:38185",
        "observed_at": (NOW - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z"),
        "followers": followers,
    }


def push(ingest: Service, snapshots: list[dict[str, Any]]) -> None:
    r = httpx.post(f"{ingest.url}/v1/snapshots", json=snapshots, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": len(snapshots), "rejected": []}


def eventually(probe: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def dispatcher_in_group(settings: Settings) -> bool:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        name = settings.kafka_topic_prefix + WEBHOOK_CONSUMER_GROUP
        group = admin.describe_groups([name])[name]
        return bool(group["group_state"] == "Stable" and group["members"])
    except KafkaError as exc:
        # On a fresh broker the group coordinator (__consumer_offsets) comes up with the first group.
        if exc.retriable:
            return False
        raise
    finally:
        admin.close()


def test_a_live_drop_reaches_the_stream_and_a_webhook(
    services: dict[str, Service], app_settings: Settings
) -> None:
    api, ingest = services["api"], services["ingest"]
    receiver = Receiver(SECRET)
    with serve(receiver.app()) as receiver_url:
        r = httpx.post(f"{api.url}/v1/webhooks", headers=AUTH, timeout=10, json={
            "url": receiver_url + "/hook", "secret": SECRET, "types": ["audience_drop"],
            "entity_ids": ["COM:38185"]})  # fmt: skip
        assert r.status_code == 201, r.text
        subscription = r.json()["subscription_id"]
        stream = SseReader(f"{api.url}/v1/alerts/stream?entity_id=COM:38185").start()
        assert stream.status == 200

        # Six weeks of daily history: the baseline. It raises no alert.
        push(ingest, [snapshot(k, followers_on(k)) for k in range(HISTORY_DAYS, 0, -1)])
        history_url = f"{api.url}/v1/accounts/{ACCOUNT}/history"

        def history_written() -> bool:
            r = httpx.get(history_url, params={"limit": 100}, timeout=10)
            return r.status_code == 200 and len(r.json()["items"]) == HISTORY_DAYS

        eventually(history_written, "the history in ClickHouse")
        eventually(lambda: dispatcher_in_group(app_settings), "the webhook dispatcher in its group")
        time.sleep(2)  # its first fetch position, from the end of alerts.v1

        # Today: a fifth of the audience gone.
        dropped = followers_on(1) - 1500
        sent = time.monotonic()
        push(ingest, [snapshot(0, dropped)])
        event = stream.next(timeout=120)
        stream_s = time.monotonic() - sent
        eventually(lambda: bool(receiver.received), "the webhook delivery", timeout=120)
        webhook_s = time.monotonic() - sent
        stream.close()

    print(f"\nlive snapshot to SSE client: {stream_s:.2f} s; to webhook receiver: {webhook_s:.2f} s "
          f"(noise control holds drops {GROUP_WAIT_S} s)")  # fmt: skip
    alert = event.data
    assert (event.event, alert["type"], alert["account_id"], alert["entity_id"], alert["value"]) == (
        "alert", "audience_drop", ACCOUNT, "COM:38185", float(dropped))  # fmt: skip
    assert alert["severity"] in ("warning", "critical")
    assert receiver.received == [alert]  # the same Alert v1, signed (the receiver checks every request)
    assert receiver.bad_signatures == 0
    assert receiver.attempts[0]["x-barometre-alert-id"] == alert["alert_id"]
    assert stream_s < SNAPSHOT_INTERVAL_S and webhook_s < SNAPSHOT_INTERVAL_S
    assert stream_s < 30 and webhook_s < 30, (stream_s, webhook_s)

    # The same alert through the list, then acknowledged; the delivery is on record.
    listed = httpx.get(f"{api.url}/v1/alerts", params={"entity_id": "COM:38185"}, timeout=10).json()["items"]
    assert listed == [alert]
    r = httpx.post(
        f"{api.url}/v1/alerts/{alert['alert_id']}/ack", headers=AUTH, json={"comment": "e2e"}, timeout=10
    )
    assert (r.status_code, r.json()["status"]) == (200, "acknowledged")

    def delivered() -> bool:
        r = httpx.get(f"{api.url}/v1/webhooks/{subscription}/deliveries", headers=AUTH, timeout=10)
        items = r.json()["items"]
        return bool(items) and items[0]["status"] == "delivered" and items[0]["alert_id"] == alert["alert_id"]

    eventually(delivered, "the delivery record", timeout=10)
