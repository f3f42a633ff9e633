"""GET /v1/incidents and GET /v1/incidents/{id} on rows written as the scoring worker upserts them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.common.clickhouse import make_client
from services.common.events import format_timestamp
from services.common.settings import Settings

pytestmark = pytest.mark.clickhouse

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def api(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings.model_copy(update={"webhooks_enabled": False}))) as client:
        yield client


def incident(n: int, platform: str, type: str, status: str, minutes_ago: int) -> dict[str, Any]:
    """Incident.to_dict() as the worker publishes it."""
    first = NOW - timedelta(hours=2)
    return {
        "incident_id": f"00000000-0000-5000-8000-{n:012d}", "type": type, "platform": platform,
        "first_observed_at": format_timestamp(first), "last_observed_at": format_timestamp(first + timedelta(hours=1)),
        "detected_at": format_timestamp(NOW - timedelta(minutes=minutes_ago)),
        "updated_at": format_timestamp(NOW - timedelta(minutes=minutes_ago)), "accounts": 2,
        "members": [f"{platform}:a{n}", f"{platform}:b{n}"], "emitted_before": [f"alert-{n}"],
        "active_accounts": 150, "share": 0.0133, "threshold": 10, "total_change": -4200.5,
        "severity": "warning", "status": status, "silenced_by": None,
    }  # fmt: skip


def store(settings: Settings, incidents: list[dict[str, Any]]) -> None:
    client = make_client(settings)
    columns = list(incidents[0])
    rows = []
    for i in incidents:
        row = [datetime.fromisoformat(v) if k.endswith("_at") else v for k, v in i.items()]
        rows.append([*row, time.time_ns()])
    try:
        client.insert(f"{settings.clickhouse_database}.incidents", rows, column_names=[*columns, "version"])
    finally:
        client.close()


def test_incidents(api: TestClient, app_settings: Settings) -> None:
    incidents = [
        incident(1, "facebook", "audience_drop", "open", 1),
        incident(2, "x", "account_gone", "resolved", 2),
        incident(3, "facebook", "account_new", "resolved", 3),
    ]
    store(app_settings, incidents)
    store(
        app_settings, [{**incidents[0], "accounts": 3, "members": [*incidents[0]["members"], "facebook:c"]}]
    )

    def ids(**params: str) -> list[str]:
        r = api.get("/v1/incidents", params=params)
        assert r.status_code == 200, r.text
        return [i["incident_id"] for i in r.json()["items"]]

    r = api.get("/v1/incidents")
    assert r.json()["items"][0] == {
        **incidents[0],
        "accounts": 3,
        "members": [*incidents[0]["members"], "facebook:c"],
    }
    assert ids() == [i["incident_id"] for i in incidents]
    assert ids(platform="facebook") == [incidents[0]["incident_id"], incidents[2]["incident_id"]]
    assert ids(type="account_gone") == [incidents[1]["incident_id"]]
    assert ids(status="resolved") == [incidents[1]["incident_id"], incidents[2]["incident_id"]]
    assert ids(since=format_timestamp(NOW - timedelta(minutes=2))) == [
        i["incident_id"] for i in incidents[:2]
    ]
    first = api.get("/v1/incidents", params={"limit": 2}).json()
    rest = api.get("/v1/incidents", params={"limit": 2, "cursor": first["next"]}).json()
    assert [i["incident_id"] for i in first["items"] + rest["items"]] == [i["incident_id"] for i in incidents]
    assert rest["next"] is None

    r = api.get(f"/v1/incidents/{incidents[1]['incident_id']}")
    assert (r.status_code, r.json()) == (200, incidents[1])
    for unknown in ("00000000-0000-5000-8000-999999999999", "bad id"):
        assert api.get(f"/v1/incidents/{unknown}").status_code == 404


@pytest.mark.parametrize(
    ("params", "message"),
    [({"status": "closed"}, "status: unknown status 'closed'; allowed: open, resolved"),
     ({"type": "purge"}, "type: unknown alert type 'purge'"),
     ({"platform": "orkut"}, "platform: unknown platform 'orkut'"),
     ({"cursor": "abc"}, "cursor: not a cursor"),
     ({"limit": "5000"}, "limit: ")],
)  # fmt: skip
def test_bad_parameters(api: TestClient, params: dict[str, str], message: str) -> None:
    r = api.get("/v1/incidents", params=params)
    assert r.status_code == 422
    assert r.json()["error"]["message"].startswith(message), r.json()
