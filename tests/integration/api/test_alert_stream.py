"""GET /v1/alerts/stream on a real Kafka broker: records published on alerts.v1 and incidents.v1 reach
connected clients within a second, with the list's filters, and a client resumes exactly after its
last event id, from the hub's buffer or, when older, from Kafka itself."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.common.names import Topic
from services.common.settings import Settings
from tests.integration.api.alerting import SseReader, alert, publish, serve

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture
def settings(app_settings: Settings) -> Settings:
    return app_settings.model_copy(update={"webhooks_enabled": False, "alert_stream_heartbeat_s": 0.5})


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def url(app: FastAPI) -> Iterator[str]:
    with serve(app) as base:
        yield base + "/v1/alerts/stream"


def reader(url: str, **headers: str) -> SseReader:
    r = SseReader(url, headers).start()
    assert r.status == 200
    return r


def drop(n: int, account: str = "facebook:grenoble", **kw: Any) -> dict[str, Any]:
    return alert(account, observed_at=BASE + timedelta(minutes=n), **kw)


def send(settings: Settings, *alerts: dict[str, Any]) -> None:
    publish(settings, Topic.ALERTS, [(a["account_id"], a) for a in alerts])


def test_a_published_alert_arrives_within_a_second(url: str, settings: Settings, app: FastAPI) -> None:
    r = reader(url)
    a = drop(1)
    send(settings, a)
    sent = time.monotonic()
    event = r.next(timeout=5)
    latency = time.monotonic() - sent
    assert (event.event, event.data) == ("alert", a)
    assert latency < 1.0, latency
    # The id is the stream position after the event: one offset per partition of each topic.
    alerts_part, incidents_part = event.id.split(";")
    assert (len(alerts_part.split(",")), len(incidents_part.split(","))) == (3, 3)
    assert sum(int(o) for o in alerts_part.split(",")) == 1
    time.sleep(1.2)
    assert ": keepalive" in r.comments  # heartbeats while quiet
    r.close()
    metrics = TestClient(app).get("/metrics").text
    assert 'barometre_api_alerts_streamed_total{event="alert"}' in metrics
    assert "barometre_api_sse_clients " in metrics


def test_filters_and_incidents(url: str, settings: Settings) -> None:
    everything = reader(url)
    spikes_on_x = reader(url + "?type=audience_spike&platform=twitter")
    grenoble = reader(url + "?entity_id=COM:38185&severity=critical")
    a_drop = drop(1)
    send(settings, a_drop)
    assert everything.next().data == a_drop  # the hub has dispatched it
    spike = drop(2, "x:lyon", type="audience_spike", entity_id="COM:69123", severity="warning")
    send(settings, spike)
    assert everything.next().data == spike
    assert spikes_on_x.next().data == spike  # its first: the drop was filtered out
    incident = {"incident_id": "00000000-0000-5000-8000-000000000001", "type": "audience_drop",
                "platform": "facebook", "accounts": 12, "severity": "critical", "status": "open"}  # fmt: skip
    publish(settings, Topic.INCIDENTS, [("facebook", incident)])
    event = everything.next()
    assert (event.event, event.data) == ("incident", incident)
    last = drop(3)
    send(settings, last)
    assert everything.next().data == last
    # grenoble got the drops and not the incident (an entity filter leaves incidents out).
    assert [grenoble.next().data for _ in range(2)] == [a_drop, last]
    for r in (everything, spikes_on_x, grenoble):
        r.close()


def received(r: SseReader, n: int) -> list[Any]:
    return [r.next() for _ in range(n)]


@pytest.mark.parametrize("buffer", [10_000, 1])
def test_resume_after_the_last_event_id(app_settings: Settings, buffer: int) -> None:
    """With the default buffer the missed events come from memory; with a buffer of one event they are
    older than it, and a temporary consumer reads them from Kafka."""
    settings = app_settings.model_copy(
        update={"webhooks_enabled": False, "alert_stream_buffer": buffer, "alert_stream_heartbeat_s": 0.5}
    )
    app = create_app(settings)
    with serve(app) as base:
        url = base + "/v1/alerts/stream"
        first = reader(url)
        # Two accounts, so two partitions: the id must carry both positions.
        alerts = [drop(i, "facebook:grenoble" if i % 2 else "facebook:lyon") for i in range(8)]
        send(settings, *alerts[:2])
        got = received(first, 2)
        first.close()
        send(settings, *alerts[2:5])  # while disconnected
        time.sleep(0.5)
        assert app.state.alert_hub.buffered() == min(buffer, 5)
        second = reader(url, **{"Last-Event-ID": got[-1].id})
        third = reader(url + f"?last_event_id={got[-1].id}")
        send(settings, *alerts[5:])
        for r in (second, third):
            resumed = [e.data["alert_id"] for e in received(r, 6)]
            # Per account (partition) the order is the topic's; nothing lost, nothing twice.
            assert sorted(resumed) == sorted(a["alert_id"] for a in alerts[2:])
            for account in ("facebook:grenoble", "facebook:lyon"):
                mine = [a["alert_id"] for a in alerts[2:] if a["account_id"] == account]
                assert [i for i in resumed if i in mine] == mine
            with pytest.raises(queue.Empty):
                r.next(timeout=1.0)
            r.close()
        # Resuming from the last id received gets nothing again.
        last = reader(url, **{"Last-Event-ID": got[-1].id})
        ids = [e.id for e in received(last, 6)]
        again = reader(url, **{"Last-Event-ID": ids[-1]})
        with pytest.raises(queue.Empty):
            again.next(timeout=1.0)
        last.close()
        again.close()


def test_bad_last_event_id(url: str) -> None:
    for bad in ("nope", "1,2,3", "1,2;3", "a,b,c;d,e,f"):
        r = SseReader(url, {"Last-Event-ID": bad}).start()
        assert r.status == 422, bad


def test_without_kafka_the_stream_is_503(app_settings: Settings) -> None:
    settings = app_settings.model_copy(
        update={"webhooks_enabled": False, "kafka_bootstrap": "127.0.0.1:52098"}
    )
    with TestClient(create_app(settings)) as api:
        r = api.get("/v1/alerts/stream")
    assert (r.status_code, r.json()["error"]["code"], r.headers["retry-after"]) == (
        503,
        "service_unavailable",
        "5",
    )
