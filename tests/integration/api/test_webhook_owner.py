"""Webhooks belong to the token that created them: a token lists, deletes and reads the deliveries of its
own only, another token's answers 404 exactly as an unknown id does; an admin token sees every one,
those without an owner (made before migration 0007) included. Expired and revoked tokens answer 401."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api import alert_store
from services.api.app import create_app
from services.common.clickhouse import make_client
from services.common.settings import Settings
from services.common.tokens import Scope, create_token, revoke_token

pytestmark = pytest.mark.clickhouse

BOOTSTRAP = {"Authorization": "Bearer test-bootstrap-token-0123456789abcdef"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(app_settings: Settings) -> Iterator[TestClient]:
    settings = app_settings.model_copy(update={"webhooks_enabled": False})
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def ch(app_settings: Settings) -> Iterator[Any]:
    client = make_client(app_settings)
    yield client
    client.close()


def make(api: TestClient, headers: dict[str, str], name: str) -> str:
    r = api.post("/v1/webhooks", headers=headers, json={"url": f"https://example.org/{name}"})
    assert r.status_code == 201, r.text
    return str(r.json()["subscription_id"])


def ids(api: TestClient, headers: dict[str, str]) -> list[str]:
    r = api.get("/v1/webhooks", headers=headers)
    assert r.status_code == 200, r.text
    return [w["subscription_id"] for w in r.json()["items"]]


def test_each_token_sees_its_own_and_admin_sees_all(api: TestClient, ch: Any, app_settings: Settings) -> None:
    db = app_settings.clickhouse_database
    alice = bearer(create_token(ch, db, {Scope.ALERTS_WRITE}, "alice"))
    bob = bearer(create_token(ch, db, {Scope.ALERTS_WRITE}, "bob"))
    admin = bearer(create_token(ch, db, {Scope.ADMIN}, "admin"))
    a1, a2 = make(api, alice, "a1"), make(api, alice, "a2")
    b1 = make(api, bob, "b1")
    boot = make(api, BOOTSTRAP, "boot")
    # One made before owners were recorded (owner '').
    legacy = str(uuid.uuid4())
    alert_store.insert_subscription(ch, db, {
        "subscription_id": legacy, "url": "https://example.org/legacy", "secret": "whsec_" + "x" * 20,
        "types": [], "platforms": [], "entity_ids": [], "min_severity": "info", "description": "",
        "created_by": "brm_0123abcd", "created_at": datetime.now(UTC), "owner": "",
    })  # fmt: skip

    assert ids(api, alice) == [a1, a2]
    assert ids(api, bob) == [b1]
    assert ids(api, admin) == [a1, a2, b1, boot, legacy]
    assert ids(api, BOOTSTRAP) == [a1, a2, b1, boot, legacy]  # the bootstrap token has admin
    assert all("owner" not in w for w in api.get("/v1/webhooks", headers=admin).json()["items"])

    # Another owner's webhook is not found, word for word as an id nobody has.
    nobody = str(uuid.uuid4())
    for target in (b1, legacy, boot, nobody):
        for method, path in (
            ("delete", f"/v1/webhooks/{target}"),
            ("get", f"/v1/webhooks/{target}/deliveries"),
        ):
            r = api.request(method, path, headers=alice)
            assert (r.status_code, r.json()) == (
                404, {"error": {"code": "not_found", "message": f"unknown webhook {target!r}"}},
            ), (method, path)  # fmt: skip
    assert ids(api, admin) == [a1, a2, b1, boot, legacy]  # nothing was deleted

    assert api.get(f"/v1/webhooks/{a1}/deliveries", headers=alice).status_code == 200
    assert api.delete(f"/v1/webhooks/{a1}", headers=alice).status_code == 204
    assert api.delete(f"/v1/webhooks/{b1}", headers=admin).status_code == 204
    assert api.get(f"/v1/webhooks/{legacy}/deliveries", headers=admin).status_code == 200
    assert api.delete(f"/v1/webhooks/{legacy}", headers=admin).status_code == 204
    assert ids(api, alice) == [a2]
    assert ids(api, bob) == []
    assert ids(api, admin) == [a2, boot]
    # A deleted one keeps its owner: the dispatcher and admin see the same rows as before.
    rows = {r["subscription_id"]: r["owner"] for r in alert_store.list_subscriptions(ch, db)}
    assert set(rows) == {a2, boot} and rows[a2] != rows[boot] != ""


def test_an_ingest_only_admin_can_still_manage_webhooks(
    api: TestClient, ch: Any, app_settings: Settings
) -> None:
    """admin allows everything alerts:write does; ingest alone allows none of it."""
    db = app_settings.clickhouse_database
    ingest = bearer(create_token(ch, db, {Scope.INGEST}))
    assert api.get("/v1/webhooks", headers=ingest).status_code == 403
    both = bearer(create_token(ch, db, {Scope.INGEST, Scope.ADMIN}))
    mine = make(api, both, "x")
    assert ids(api, both) == [mine]


def test_expired_and_revoked_tokens(api: TestClient, ch: Any, app_settings: Settings) -> None:
    db = app_settings.clickhouse_database
    expiring = create_token(ch, db, {Scope.ALERTS_WRITE}, expires_in=timedelta(seconds=1))
    revoked = create_token(ch, db, {Scope.ALERTS_WRITE})
    revoke_token(ch, db, revoked[:12])
    assert api.get("/v1/webhooks", headers=bearer(expiring)).status_code == 200
    time.sleep(1.1)  # the api's verifier cached the look-up: expiry is checked at each request anyway
    for token, message in [(expiring, "this token has expired"), (revoked, "unknown or revoked token")]:
        r = api.get("/v1/webhooks", headers=bearer(token))
        assert (r.status_code, r.json()["error"]) == (401, {"code": "unauthorized", "message": message})
        assert r.headers["WWW-Authenticate"] == "Bearer"
        r = api.post("/v1/webhooks", headers=bearer(token), json={"url": "https://example.org/x"})
        assert r.status_code == 401
