"""The webhook dispatcher on a real Kafka broker: alerts published on alerts.v1 are POSTed, signed, to
local receivers that check the signature; filters hold back what a subscription does not want; a 500
is retried and then succeeds; a dead receiver is given up after the attempts allowed without holding
up the others; each outcome is recorded and the group's offsets are committed once all is done."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from services.api.app import create_app
from services.api.webhooks import WEBHOOK_CONSUMER_GROUP
from services.common.names import Topic
from services.common.settings import Settings
from tests.integration.api.alerting import Receiver, alert, publish, serve

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

AUTH = {"Authorization": "Bearer test-bootstrap-token-0123456789abcdef"}
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
SECRET = "a-secret-of-the-receiver"


@pytest.fixture
def settings(app_settings: Settings) -> Settings:
    return app_settings.model_copy(update={
        "webhook_reload_s": 0.2, "webhook_backoff_s": 0.1, "webhook_backoff_max_s": 0.3,
        "webhook_max_attempts": 3, "webhook_timeout_s": 2.0,
        "webhook_allow_networks": "127.0.0.0/8",  # the receivers are local; refused by default
    })  # fmt: skip


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


def subscribe(api: TestClient, **body: Any) -> dict[str, Any]:
    r = api.post("/v1/webhooks", headers=AUTH, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def deliveries(api: TestClient, subscription: dict[str, Any]) -> list[dict[str, Any]]:
    r = api.get(f"/v1/webhooks/{subscription['subscription_id']}/deliveries", headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def committed(settings: Settings) -> int:
    """Sum of the webhook group's committed offsets on alerts.v1."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        group = settings.kafka_topic_prefix + WEBHOOK_CONSUMER_GROUP
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    return sum(
        o.offset for tp, o in offsets.items() if tp.topic == settings.topic(Topic.ALERTS) and o.offset > 0
    )


def end_offsets(settings: Settings) -> int:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        topic = settings.topic(Topic.ALERTS)
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def test_deliveries(api: TestClient, settings: Settings) -> None:
    picky, flaky = Receiver(SECRET), Receiver(SECRET, script=[500])
    with serve(picky.app()) as picky_url, serve(flaky.app()) as flaky_url:
        drops = subscribe(api, url=picky_url + "/hook", secret=SECRET, types=["audience_drop"],
                          platforms=["facebook"], min_severity="warning")  # fmt: skip
        everything = subscribe(api, url=flaky_url + "/hook")  # secret generated
        flaky.secret = everything["secret"]
        dead = subscribe(api, url="http://127.0.0.1:52099/hook", secret=SECRET)  # nothing listens there
        refusing = Receiver(SECRET, script=[503] * 10)
        with serve(refusing.app()) as refusing_url:
            down = subscribe(api, url=refusing_url + "/hook", secret=SECRET)
            dispatcher = api.app.state.webhook_dispatcher  # type: ignore[attr-defined]
            wait_for(lambda: dispatcher.ready, what="the dispatcher joining its group")

            wanted = alert("facebook:grenoble", observed_at=BASE, severity="critical")
            spike = alert("facebook:lyon", type="audience_spike", entity_id="COM:69123", observed_at=BASE)
            minor = alert("facebook:paris", entity_id="COM:75056", observed_at=BASE, severity="info")
            publish(settings, Topic.ALERTS, [(a["account_id"], a) for a in (wanted, spike, minor)])
            sent = time.monotonic()
            wait_for(lambda: picky.received, timeout=10, what="the matching alert")
            # Within a second, while the dead and refusing receivers are being retried.
            assert time.monotonic() - sent < 1.0
            wait_for(lambda: len(flaky.received) == 3, timeout=10, what="the flaky receiver's three alerts")
            wait_for(lambda: len(refusing.attempts) == 9, timeout=20, what="three attempts of three alerts")

        # The picky receiver got the critical Facebook drop and nothing else.
        assert picky.received == [wanted]
        assert sorted(a["alert_id"] for a in flaky.received) == sorted(
            a["alert_id"] for a in (wanted, spike, minor)
        )
        assert picky.bad_signatures == flaky.bad_signatures == refusing.bad_signatures == 0
        headers = picky.attempts[0]
        assert (headers["x-barometre-alert-id"], headers["x-barometre-delivery-attempt"]) == (
            wanted["alert_id"],
            "1",
        )
        assert headers["content-type"] == "application/json"
        assert sorted(h["x-barometre-delivery-attempt"] for h in flaky.attempts) == ["1", "1", "1", "2"]

        def settled() -> bool:
            states = [d["status"] for s in (drops, everything, dead, down) for d in deliveries(api, s)]
            return len(states) == 10 and "retrying" not in states

        wait_for(settled, timeout=30, what="every delivery delivered or given up")
        [picky_delivery] = deliveries(api, drops)
        assert {k: picky_delivery[k] for k in ("alert_id", "attempts", "status", "http_status", "error")} == {
            "alert_id": wanted["alert_id"], "attempts": 1, "status": "delivered", "http_status": 204, "error": ""}  # fmt: skip
        flaky_deliveries = deliveries(api, everything)
        assert sorted(d["attempts"] for d in flaky_deliveries) == [1, 1, 2]
        assert {d["status"] for d in flaky_deliveries} == {"delivered"}
        for d in deliveries(api, down):
            assert (d["status"], d["attempts"], d["http_status"]) == ("failed", 3, 503)
            assert d["error"] == "gave up after 3 attempts: HTTP 503"
        for d in deliveries(api, dead):
            assert (d["status"], d["attempts"], d["http_status"]) == ("failed", 3, None)
            assert d["error"] == "gave up after 3 attempts: connection refused", d["error"]

    # Every record's deliveries are done: the group's offsets reach the end of the topic.
    wait_for(lambda: committed(settings) == end_offsets(settings) == 3, timeout=10, what="the commit")
    metrics = api.get("/metrics").text
    for line in ('barometre_webhook_deliveries_total{outcome="delivered"}',
                 'barometre_webhook_deliveries_total{outcome="failed"}',
                 'barometre_webhook_delivery_attempts_total{result="success"}',
                 'barometre_webhook_delivery_attempts_total{result="http_5xx"}',
                 'barometre_webhook_delivery_attempts_total{result="connection_error"}'):  # fmt: skip
        assert line in metrics, line


def test_retry_after_is_honoured_and_a_4xx_is_final(settings: Settings) -> None:
    settings = settings.model_copy(update={"webhook_backoff_max_s": 5.0})  # Retry-After is capped by it
    patient, refused = Receiver(SECRET, script=[429]), Receiver(SECRET, script=[410])
    with (
        TestClient(create_app(settings)) as api,
        serve(patient.app()) as patient_url,
        serve(refused.app()) as refused_url,
    ):
        slow = subscribe(api, url=patient_url + "/hook", secret=SECRET)
        gone = subscribe(api, url=refused_url + "/hook", secret=SECRET)
        wait_for(lambda: api.app.state.webhook_dispatcher.ready)  # type: ignore[attr-defined]
        a = alert(observed_at=BASE)
        publish(settings, Topic.ALERTS, [(a["account_id"], a)])
        wait_for(lambda: len(patient.attempts) == 1 and len(refused.attempts) == 1, timeout=10)
        first = time.monotonic()
        wait_for(lambda: patient.received, timeout=10)
        assert time.monotonic() - first >= 0.9  # Retry-After: 1 (see Receiver), not the 0.1 s back-off
        wait_for(
            lambda: len(deliveries(api, gone)) == 1 and deliveries(api, slow)[0]["status"] == "delivered"
        )
        [d] = deliveries(api, gone)
        assert (d["status"], d["attempts"], d["http_status"], d["error"]) == ("failed", 1, 410, "HTTP 410")
        assert len(refused.attempts) == 1
