"""POST/GET/DELETE /v1/webhooks and GET /v1/webhooks/{id}/deliveries: validation, tokens, secrets shown
once. (Deliveries themselves: test_webhooks.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.common.clickhouse import make_client
from services.common.settings import Settings
from services.common.tokens import Scope, create_token

pytestmark = pytest.mark.clickhouse

AUTH = {"Authorization": "Bearer test-bootstrap-token-0123456789abcdef"}


@pytest.fixture
def api(app_settings: Settings) -> Iterator[TestClient]:
    settings = app_settings.model_copy(
        update={"webhooks_enabled": False, "webhook_allow_networks": "127.0.0.0/8"}
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_create_list_delete(api: TestClient) -> None:
    r = api.post("/v1/webhooks", headers=AUTH, json={
        "url": "https://example.org/hook", "types": ["audience_drop", "audience_drop"], "platforms": ["twitter"],
        "entity_ids": ["com:38185"], "min_severity": "warning", "description": "chutes sur X"})  # fmt: skip
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert {k: created[k] for k in ("url", "types", "platforms", "entity_ids", "min_severity", "description",
                                    "created_by")} == {
        "url": "https://example.org/hook", "types": ["audience_drop"], "platforms": ["x"],
        "entity_ids": ["COM:38185"], "min_severity": "warning", "description": "chutes sur X",
        "created_by": "bootstrap",
    }  # fmt: skip
    r = api.post("/v1/webhooks", headers=AUTH, json={"url": "http://127.0.0.1:9/x", "secret": "s" * 16})
    assert (r.status_code, r.json()["secret"], r.json()["min_severity"], r.json()["types"]) == (
        201,
        "s" * 16,
        "info",
        [],
    )
    second = r.json()

    listed = api.get("/v1/webhooks", headers=AUTH).json()["items"]
    assert [w["subscription_id"] for w in listed] == [created["subscription_id"], second["subscription_id"]]
    assert all("secret" not in w for w in listed)
    assert listed[0] == {k: v for k, v in created.items() if k != "secret"}

    r = api.get(f"/v1/webhooks/{created['subscription_id']}/deliveries", headers=AUTH)
    assert r.json() == {"subscription_id": created["subscription_id"], "items": []}
    assert api.delete(f"/v1/webhooks/{created['subscription_id']}", headers=AUTH).status_code == 204
    assert [w["subscription_id"] for w in api.get("/v1/webhooks", headers=AUTH).json()["items"]] == [
        second["subscription_id"]]  # fmt: skip
    assert api.delete(f"/v1/webhooks/{created['subscription_id']}", headers=AUTH).status_code == 404
    assert api.get(f"/v1/webhooks/{created['subscription_id']}/deliveries", headers=AUTH).status_code == 404
    assert api.get("/v1/webhooks/not-an-id/deliveries", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "url: Field required"),
        ({"url": "ftp://example.org/x"}, "url: 'ftp://example.org/x' is not an http:// or https:// URL"),
        ({"url": "https:///nohost"}, "is not an http:// or https:// URL"),
        ({"url": "https://e.org", "secret": "short"}, "secret: String should have at least 16 characters"),
        ({"url": "https://e.org", "types": ["spike"]}, "types: unknown alert type 'spike'"),
        ({"url": "https://e.org", "types": "audience_drop"}, "types: types must be a list"),
        ({"url": "https://e.org", "platforms": ["myspace"]}, "platforms: unknown platform 'myspace'"),
        ({"url": "https://e.org", "entity_ids": ["Lyon"]}, "entity_ids: entity_id 'LYON' is not KIND:code"),
        ({"url": "https://e.org", "min_severity": "high"}, "min_severity: Input should be 'info', 'warning' or"),
        ({"url": "https://e.org", "events": ["x"]}, "events: Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_bad_subscriptions(api: TestClient, body: dict[str, Any], message: str) -> None:
    r = api.post("/v1/webhooks", headers=AUTH, json=body)
    assert r.status_code == 422, r.text
    assert message in r.json()["error"]["message"], r.json()
    assert api.get("/v1/webhooks", headers=AUTH).json()["items"] == []


def test_tokens(api: TestClient, app_settings: Settings) -> None:
    client = make_client(app_settings)
    try:
        ingest = create_token(client, app_settings.clickhouse_database, {Scope.INGEST})
        writer = create_token(client, app_settings.clickhouse_database, {Scope.ALERTS_WRITE})
    finally:
        client.close()
    unknown = "00000000-0000-4000-8000-000000000000"
    calls = [("post", "/v1/webhooks", {"url": "https://e.org/x"}), ("get", "/v1/webhooks", None),
             ("delete", f"/v1/webhooks/{unknown}", None), ("get", f"/v1/webhooks/{unknown}/deliveries", None)]  # fmt: skip
    for method, url, body in calls:
        kwargs: dict[str, Any] = {"json": body} if body else {}
        assert api.request(method, url, **kwargs).status_code == 401, url
        assert (
            api.request(method, url, headers={"Authorization": f"Bearer {ingest}"}, **kwargs).status_code
            == 403
        )
        expected = {"post": 201, "get": 200 if url == "/v1/webhooks" else 404, "delete": 404}[method]
        assert (
            api.request(method, url, headers={"Authorization": f"Bearer {writer}"}, **kwargs).status_code
            == expected
        )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://10.0.0.1/hook", "url: 10.0.0.1 is not an address webhooks may reach (private)"),
        ("http://169.254.169.254/latest/meta-data/", "url: 169.254.169.254 is not an address webhooks may reach (metadata)"),
        ("https://[::1]:8123/?query=DROP", "url: ::1 is not an address webhooks may reach (loopback)"),
        ("http://[::ffff:192.168.0.1]/", "(private (IPv4 192.168.0.1 inside ::ffff:c0a8:1))"),
        ("http://[fd00:ec2::254]/", "(metadata)"),
        ("http://0.0.0.0:8123/", "(unspecified)"),
        ("http://0xa000001/", "(private)"),  # 10.0.0.1, as the system resolver reads it
        ("gopher://e.org/x", "is not an http:// or https:// URL"),
        ("file:///etc/passwd", "is not an http:// or https:// URL"),
    ],
)  # fmt: skip
def test_unreachable_destinations_are_refused(api: TestClient, url: str, message: str) -> None:
    r = api.post("/v1/webhooks", headers=AUTH, json={"url": url})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request"), r.text
    assert r.json()["error"]["message"].startswith("url: ")
    assert message in r.json()["error"]["message"], r.json()
    assert api.get("/v1/webhooks", headers=AUTH).json()["items"] == []


def test_loopback_needs_the_allow_setting(app_settings: Settings) -> None:
    """The fixture's api lets 127.0.0.0/8 through (its tests' receivers are local); by default it is
    refused. Names are accepted: they are checked at each delivery."""
    with TestClient(create_app(app_settings.model_copy(update={"webhooks_enabled": False}))) as api:
        r = api.post("/v1/webhooks", headers=AUTH, json={"url": "http://127.0.0.1:8123/?query=x"})
        assert r.status_code == 422
        assert "127.0.0.1 is not an address webhooks may reach (loopback)" in r.json()["error"]["message"]
        assert (
            api.post("/v1/webhooks", headers=AUTH, json={"url": "http://localhost.test/x"}).status_code == 201
        )
        r = api.post("/v1/webhooks", headers=AUTH, json={"url": "https://93.184.215.14/x"})
        assert r.status_code == 201
