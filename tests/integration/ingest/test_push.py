"""POST /v1/snapshots against the real Kafka broker and the real ClickHouse engine: every validation
rule refuses its bad item with the reason, and the good items of the same request are published
(consumed back from Kafka and compared)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.common.clickhouse import make_client
from services.common.names import Platform
from services.common.reference import AccountRecord
from services.common.registry import user_version, write_accounts
from services.common.settings import Settings
from services.common.tokens import Scope, create_token
from services.ingest.app import create_app
from tests.integration.ingest.helpers import consume_all

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

AUTH = {"Authorization": "Bearer test-bootstrap-token-0123456789abcdef"}


def snap(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "account_id": "x:villedegrenoble",
        "platform": "x",
        "entity_id": "COM:38185",
        "observed_at": "2013-01-01T10:00:00+01:00",
        "followers": 12000,
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture
def client(app_settings: Settings) -> Iterator[TestClient]:
    ch = make_client(app_settings)
    write_accounts(
        ch,
        app_settings.clickhouse_database,
        [AccountRecord("COM:69123", Platform.FACEBOOK, "facebook:villedelyon", "villedelyon", None)],
        user_version(),
    )
    ch.close()
    with TestClient(create_app(app_settings)) as c:
        yield c


def test_each_rule_refuses_its_item_and_the_good_ones_are_published(
    client: TestClient, app_settings: Settings
) -> None:
    future = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    items = [
        snap(),  # 0 good
        snap(platform="myspace", account_id="myspace:x"),  # 1 unknown platform
        snap(followers=-5),  # 2 negative count
        snap(observed_at="2013-01-01T10:00:00"),  # 3 no offset
        snap(observed_at=future),  # 4 too far in the future
        snap(entity_id="COM:99999"),  # 5 unknown entity
        snap(account_id="x:unregistered", entity_id=None),  # 6 neither registered nor entity
        snap(account_id="twitter:GrenobleTourisme", platform="twitter", followers=300),  # 7 good, alias
        snap(account_id="facebook:villedelyon", platform="facebook", entity_id=None, followers=5),  # 8 good
        snap(followers="12"),  # 9 string count
        snap(follower=3),  # 10 unknown field
        snap(
            account_id="facebook:villedelyon", platform="facebook", entity_id="COM:38185"
        ),  # 11 contradiction
        snap(status="hacked"),  # 12 bad status
        "not an object",  # 13
    ]
    r = client.post("/v1/snapshots", json=items, headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 3
    reasons = {item["index"]: item["error"] for item in body["rejected"]}
    assert set(reasons) == {1, 2, 3, 4, 5, 6, 9, 10, 11, 12, 13}
    assert "unknown platform 'myspace'" in reasons[1]
    assert "followers" in reasons[2] and "greater than or equal to 0" in reasons[2]
    assert "offset" in reasons[3]
    assert "minutes after now" in reasons[4]
    assert "unknown entity_id 'COM:99999'" in reasons[5]
    assert "not registered" in reasons[6]
    assert "followers" in reasons[9]
    assert "follower" in reasons[10] and "unknown field" in reasons[10]
    assert "contradicts" in reasons[11]
    assert "status" in reasons[12]
    assert "JSON object" in reasons[13]

    published = consume_all(app_settings, expected=3)
    by_account = {value["account_id"]: (key, value) for key, value in published}
    assert set(by_account) == {"x:villedegrenoble", "x:grenobletourisme", "facebook:villedelyon"}
    key, grenoble = by_account["x:villedegrenoble"]
    assert key == "x:villedegrenoble"
    assert grenoble["observed_at"] == "2013-01-01T09:00:00Z"
    assert grenoble["followers"] == 12000 and grenoble["source"] == "push"
    assert grenoble["schema"] == "account_snapshot/1" and grenoble["event_id"]
    assert by_account["x:grenobletourisme"][1]["platform"] == "x"
    # A registered account's entity is filled in from the registry.
    assert by_account["facebook:villedelyon"][1]["entity_id"] == "COM:69123"


def test_json_lines_body_reports_line_indexes(client: TestClient, app_settings: Settings) -> None:
    lines = [
        json.dumps(snap(followers=1)),
        "{broken",
        "",
        json.dumps(snap(followers=2, observed_at="2013-02-01T00:00:00Z")),
    ]
    r = client.post(
        "/v1/snapshots", content="\n".join(lines), headers={**AUTH, "Content-Type": "application/x-ndjson"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2
    assert [item["index"] for item in r.json()["rejected"]] == [1]
    assert "not valid JSON" in r.json()["rejected"][0]["error"]
    assert sorted(v["followers"] for _, v in consume_all(app_settings, expected=2)) == [1, 2]


def test_tokens_and_scopes(client: TestClient, app_settings: Settings) -> None:
    assert client.post("/v1/snapshots", json=[snap()]).status_code == 401
    r = client.post("/v1/snapshots", json=[snap()], headers={"Authorization": "Bearer brm_nope_nope"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    ch = make_client(app_settings)
    alerts_only = create_token(ch, app_settings.clickhouse_database, {Scope.ALERTS_WRITE})
    ingest = create_token(ch, app_settings.clickhouse_database, {Scope.INGEST})
    ch.close()
    r = client.post("/v1/snapshots", json=[snap()], headers={"Authorization": f"Bearer {alerts_only}"})
    assert r.status_code == 403
    r = client.post("/v1/snapshots", json=[snap()], headers={"Authorization": f"Bearer {ingest}"})
    assert r.status_code == 200 and r.json()["accepted"] == 1


def test_too_many_items_and_bad_bodies(client: TestClient) -> None:
    r = client.post("/v1/snapshots", json=[snap()] * 10_001, headers=AUTH)
    assert r.status_code == 413 and "at most 10000" in r.json()["error"]["message"]
    r = client.post("/v1/snapshots", content="[{", headers=AUTH)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]


def test_an_entity_imported_after_start_is_known_at_once(client: TestClient, app_settings: Settings) -> None:
    ch = make_client(app_settings)
    write_accounts(
        ch,
        app_settings.clickhouse_database,
        [AccountRecord("COM:38185", Platform.BLUESKY, "bluesky:grenoble.fr", "grenoble.fr", None)],
        user_version(),
    )
    ch.close()
    import time

    time.sleep(2.1)  # past the registry's miss back-off
    r = client.post(
        "/v1/snapshots",
        json=[snap(account_id="bluesky:grenoble.fr", platform="bluesky", entity_id=None)],
        headers=AUTH,
    )
    assert r.json() == {"accepted": 1, "rejected": []}


def test_kafka_unreachable_answers_503_and_accepts_nothing(app_settings: Settings) -> None:
    broken = app_settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:1"})
    app = create_app(broken)
    with TestClient(app) as c:
        r = c.post("/v1/snapshots", json=[snap()], headers=AUTH)
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "5"
    assert r.json()["error"]["code"] == "kafka_unavailable"
    assert "accepted" not in r.json()
