"""GET /v1/alerts, GET /v1/alerts/{id} and POST /v1/alerts/{id}/ack on alerts written as the scoring
worker writes them (rows of the ``alerts`` table), with tokens checked against the real api_tokens."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.common.clickhouse import make_client
from services.common.settings import Settings
from services.common.tokens import Scope, create_token
from tests.integration.api.alerting import alert, store_alerts

pytestmark = pytest.mark.clickhouse

NOW = datetime.now(UTC).replace(microsecond=0)
BOOTSTRAP = {"Authorization": "Bearer test-bootstrap-token-0123456789abcdef"}


@pytest.fixture
def settings(app_settings: Settings) -> Settings:
    return app_settings.model_copy(update={"webhooks_enabled": False})


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def at(minutes: int) -> datetime:
    return NOW - timedelta(minutes=minutes)


@pytest.fixture
def alerts(settings: Settings) -> list[dict[str, Any]]:
    """Five published alerts (newest first) and one inhibited by an incident."""
    published = [
        alert("facebook:grenoble", type="audience_drop", severity="critical", observed_at=at(60), detected_at=at(1)),
        alert("x:lyon", type="audience_spike", entity_id="COM:69123", severity="warning", observed_at=at(60),
              detected_at=at(2)),
        alert("facebook:lyon", type="account_gone", entity_id="COM:69123", severity="warning", value=0,
              expected=None, score=None, observed_at=at(60), detected_at=at(3)),
        alert("instagram:grenoble", type="dormant", severity="info", value=30, expected=7.5, score=3.2,
              observed_at=at(60), detected_at=at(4)),
        alert("facebook:isere", type="account_new", entity_id="DEP:38", severity="info", value=120,
              expected=None, score=None, observed_at=at(60), detected_at=at(5)),
    ]  # fmt: skip
    store_alerts(settings, published, details={"change": -4400, "flags": ["round_number"]})
    inhibited = alert("facebook:paris", entity_id="COM:75056", observed_at=at(60), detected_at=at(0))
    store_alerts(settings, [inhibited], inhibited_by="incident-1")
    return [*published, inhibited]


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["alert_id"] for item in response.json()["items"]]


def test_list_newest_first_with_filters(api: TestClient, alerts: list[dict[str, Any]]) -> None:
    published = alerts[:5]
    r = api.get("/v1/alerts")
    assert ids(r) == [a["alert_id"] for a in published]  # the inhibited one is left out
    assert r.json()["items"][0] == published[0]  # exactly Alert v1, status open
    assert r.json()["next"] is None
    assert ids(api.get("/v1/alerts", params={"inhibited": "true"}))[0] == alerts[5]["alert_id"]

    assert ids(api.get("/v1/alerts", params={"type": "account_gone"})) == [published[2]["alert_id"]]
    assert ids(api.get("/v1/alerts", params={"platform": "twitter"})) == [published[1]["alert_id"]]
    assert ids(api.get("/v1/alerts", params={"entity_id": "com:69123"})) == [
        published[1]["alert_id"], published[2]["alert_id"]]  # fmt: skip
    assert ids(api.get("/v1/alerts", params={"account_id": "instagram:Grenoble"})) == [
        published[3]["alert_id"]
    ]
    assert ids(api.get("/v1/alerts", params={"severity": "info"})) == [
        published[3]["alert_id"], published[4]["alert_id"]]  # fmt: skip
    since = (NOW - timedelta(minutes=2)).isoformat()
    assert ids(api.get("/v1/alerts", params={"since": since})) == [a["alert_id"] for a in published[:2]]
    assert ids(api.get("/v1/alerts", params={"status": "acknowledged"})) == []
    assert ids(api.get("/v1/alerts", params={"status": "open", "severity": "critical"})) == [
        published[0]["alert_id"]
    ]


def test_pages_with_a_cursor(api: TestClient, alerts: list[dict[str, Any]]) -> None:
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    pages = 0
    while True:
        r = api.get("/v1/alerts", params=params)
        seen += ids(r)
        pages += 1
        if r.json()["next"] is None:
            break
        params["cursor"] = r.json()["next"]
    assert (seen, pages) == ([a["alert_id"] for a in alerts[:5]], 3)


def test_same_instant_ordered_by_id(api: TestClient, settings: Settings) -> None:
    same = [alert(f"facebook:a{i}", observed_at=at(60), detected_at=at(1)) for i in range(5)]
    store_alerts(settings, same)
    expected = sorted((a["alert_id"] for a in same), reverse=True)
    first = api.get("/v1/alerts", params={"limit": 3})
    second = api.get("/v1/alerts", params={"limit": 3, "cursor": first.json()["next"]})
    assert ids(first) + ids(second) == expected


def test_replayed_alert_is_one_row(api: TestClient, settings: Settings, alerts: list[dict[str, Any]]) -> None:
    store_alerts(settings, [alerts[0]])  # the worker delivers at least once
    assert ids(api.get("/v1/alerts")).count(alerts[0]["alert_id"]) == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"type": "spike"}, "type: unknown alert type 'spike'; allowed: audience_spike, audience_drop, "
                            "account_gone, account_new, dormant"),
        ({"severity": "high"}, "severity: unknown severity 'high'; allowed: info, warning, critical"),
        ({"status": "closed"}, "status: unknown status 'closed'; allowed: open, acknowledged"),
        ({"platform": "myspace"}, "platform: unknown platform 'myspace'"),
        ({"entity_id": "Grenoble"}, "entity_id: entity_id 'GRENOBLE' is not KIND:code"),
        ({"account_id": "grenoble"}, "account_id: account_id 'grenoble' is not <platform>:<id>"),
        ({"since": "yesterday"}, "since: 'yesterday' is not an RFC 3339 timestamp"),
        ({"limit": "1001"}, "limit: Input should be less than or equal to 1000"),
        ({"limit": "0"}, "limit: Input should be greater than or equal to 1"),
        ({"cursor": "bm9wZQ"}, "cursor: not a cursor of this list"),
        ({"cursor": "!!!"}, "cursor: not a cursor of this list"),
    ],
)  # fmt: skip
def test_bad_parameters(api: TestClient, params: dict[str, str], message: str) -> None:
    r = api.get("/v1/alerts", params=params)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"
    assert r.json()["error"]["message"].startswith(message), r.json()


def test_every_bad_parameter_is_named(api: TestClient) -> None:
    r = api.get("/v1/alerts", params={"type": "x", "severity": "y", "limit": "0"})
    message = r.json()["error"]["message"]
    assert r.status_code == 422
    assert all(name in message for name in ("type:", "severity:", "limit:")), message


def test_one_alert(api: TestClient, alerts: list[dict[str, Any]]) -> None:
    r = api.get(f"/v1/alerts/{alerts[0]['alert_id']}")
    assert r.status_code == 200, r.text
    assert r.json() == {**alerts[0], "details": {"change": -4400, "flags": ["round_number"]},
                        "inhibited_by": None, "ack": None}  # fmt: skip
    assert api.get(f"/v1/alerts/{alerts[5]['alert_id']}").json()["inhibited_by"] == "incident-1"
    for unknown in ("00000000-0000-5000-8000-000000000000", "not an id", "x" * 200):
        r = api.get(f"/v1/alerts/{unknown}")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"


def token(settings: Settings, *scopes: Scope) -> dict[str, str]:
    client = make_client(settings)
    try:
        return {"Authorization": f"Bearer {create_token(client, settings.clickhouse_database, set(scopes))}"}
    finally:
        client.close()


def test_ack_needs_a_token_with_the_scope(
    api: TestClient, settings: Settings, alerts: list[dict[str, Any]]
) -> None:
    url = f"/v1/alerts/{alerts[0]['alert_id']}/ack"
    r = api.post(url)
    assert (r.status_code, r.json()["error"]["code"], r.headers["www-authenticate"]) == (
        401,
        "unauthorized",
        "Bearer",
    )
    r = api.post(url, headers={"Authorization": "Bearer brm_00000000_nope"})
    assert (r.status_code, r.json()["error"]["message"]) == (401, "unknown or revoked token")
    r = api.post(url, headers=token(settings, Scope.INGEST))
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    assert api.get("/v1/alerts", params={"status": "acknowledged"}).json()["items"] == []
    r = api.post("/v1/alerts/00000000-0000-5000-8000-000000000000/ack", headers=BOOTSTRAP)
    assert r.status_code == 404


def test_ack_is_idempotent_and_keeps_the_first(
    api: TestClient, settings: Settings, alerts: list[dict[str, Any]]
) -> None:
    writer = token(settings, Scope.ALERTS_WRITE)
    alert_id = alerts[0]["alert_id"]
    r = api.post(f"/v1/alerts/{alert_id}/ack", headers=writer, json={"comment": "vu, compte piraté"})
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["status"] == "acknowledged"
    assert first["ack"]["comment"] == "vu, compte piraté"
    assert first["ack"]["acked_by"] == writer["Authorization"][len("Bearer ") :][:12]
    # Again, with another token and comment: the first acknowledgement stays.
    r = api.post(
        f"/v1/alerts/{alert_id}/ack", headers=token(settings, Scope.ADMIN), json={"comment": "autre"}
    )
    assert r.status_code == 200
    assert r.json()["ack"] == first["ack"]
    # Without a body.
    assert (
        api.post(f"/v1/alerts/{alerts[1]['alert_id']}/ack", headers=BOOTSTRAP).json()["ack"]["acked_by"]
        == "bootstrap"
    )

    assert ids(api.get("/v1/alerts", params={"status": "acknowledged"})) == [alert_id, alerts[1]["alert_id"]]
    assert alert_id not in ids(api.get("/v1/alerts", params={"status": "open"}))
    assert api.get("/v1/alerts").json()["items"][0] == {**alerts[0], "status": "acknowledged"}
    # The worker re-publishing the alert (a replay) does not reopen it.
    store_alerts(settings, [alerts[0]])
    assert api.get(f"/v1/alerts/{alert_id}").json()["status"] == "acknowledged"

    r = api.post(f"/v1/alerts/{alert_id}/ack", headers=BOOTSTRAP, json={"comment": 3})
    assert r.status_code == 422
    r = api.post(f"/v1/alerts/{alert_id}/ack", headers=BOOTSTRAP, json={"note": "x"})
    assert (r.status_code, "note" in r.json()["error"]["message"]) == (422, True)
    metrics = api.get("/metrics").text
    assert 'barometre_api_alert_acks_total{result="new"}' in metrics
    assert 'barometre_api_alert_acks_total{result="repeated"}' in metrics
