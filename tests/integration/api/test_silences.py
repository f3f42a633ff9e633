"""POST/GET/DELETE /v1/silences on the real ClickHouse: validation, activity, early expiry, tokens."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.common.events import parse_timestamp
from services.common.settings import Settings

pytestmark = pytest.mark.clickhouse

AUTH = {"Authorization": "Bearer test-bootstrap-token-0123456789abcdef"}


@pytest.fixture
def api(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings.model_copy(update={"webhooks_enabled": False}))) as client:
        yield client


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_create_list_and_expire(api: TestClient) -> None:
    before = datetime.now(UTC)
    r = api.post("/v1/silences", headers=AUTH,
                 json={"platform": "twitter", "type": "audience_drop", "duration": "2h", "comment": "purge X"})  # fmt: skip
    assert r.status_code == 201, r.text
    now_silence = r.json()
    assert {k: now_silence[k] for k in ("account_id", "entity_id", "platform", "type", "created_by", "comment",
                                        "active")} == {
        "account_id": None, "entity_id": None, "platform": "x", "type": "audience_drop",
        "created_by": "bootstrap", "comment": "purge X", "active": True,
    }  # fmt: skip
    starts, ends = parse_timestamp(now_silence["starts_at"]), parse_timestamp(now_silence["ends_at"])
    assert before - timedelta(seconds=1) <= starts <= datetime.now(UTC)
    assert ends - starts == timedelta(hours=2)

    later = datetime.now(UTC) + timedelta(days=1)
    r = api.post("/v1/silences", headers=AUTH, json={
        "entity_id": "com:38185", "account_id": "facebook:@Grenoble", "starts_at": iso(later),
        "ends_at": iso(later + timedelta(days=7)), "comment": "concours annoncé"})  # fmt: skip
    assert r.status_code == 201, r.text
    pending = r.json()
    assert (pending["entity_id"], pending["account_id"], pending["active"]) == (
        "COM:38185",
        "facebook:grenoble",
        False,
    )

    def listed(**params: str) -> list[str]:
        r = api.get("/v1/silences", params=params)
        assert r.status_code == 200, r.text
        return [s["silence_id"] for s in r.json()["items"]]

    assert listed() == [pending["silence_id"], now_silence["silence_id"]]
    assert listed(active="true") == [now_silence["silence_id"]]
    assert listed(active="false") == [pending["silence_id"]]

    r = api.delete(f"/v1/silences/{now_silence['silence_id']}", headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False
    assert parse_timestamp(r.json()["ends_at"]) <= datetime.now(UTC)
    assert listed(active="true") == []
    # A pending one never starts: its period ends before now, and still ends after it starts.
    r = api.delete(f"/v1/silences/{pending['silence_id']}", headers=AUTH)
    expired = r.json()
    assert parse_timestamp(expired["starts_at"]) < parse_timestamp(expired["ends_at"]) <= datetime.now(UTC)
    # Expiring an ended one changes nothing.
    assert api.delete(f"/v1/silences/{pending['silence_id']}", headers=AUTH).json() == expired
    assert sorted(listed(active="false")) == sorted([pending["silence_id"], now_silence["silence_id"]])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"duration": "1h", "comment": "x"}, "a silence needs at least one matcher"),
        ({"platform": "x", "comment": "x"}, "give either ends_at or duration"),
        ({"platform": "x", "duration": "1h", "ends_at": "2099-01-01T00:00:00Z", "comment": "x"},
         "give either ends_at or duration"),
        ({"platform": "x", "duration": "1h"}, "comment: Field required"),
        ({"platform": "x", "duration": "1h", "comment": "  "}, "comment: say why"),
        ({"platform": "myspace", "duration": "1h", "comment": "x"}, "platform: unknown platform 'myspace'"),
        ({"type": "spike", "duration": "1h", "comment": "x"}, "type: unknown alert type 'spike'"),
        ({"entity_id": "Lyon", "duration": "1h", "comment": "x"}, "entity_id: entity_id 'LYON' is not KIND:code"),
        ({"platform": "x", "duration": "2 hours", "comment": "x"}, "duration: '2 hours' is not a duration"),
        ({"platform": "x", "duration": "0h", "comment": "x"}, "duration: '0h' is not a duration"),
        ({"platform": "x", "duration": "400d", "comment": "x"}, "a silence lasts at most 366 days"),
        ({"platform": "x", "ends_at": "2013-01-01T00:00:00Z", "comment": "x"}, "ends_at: the silence would already"),
        ({"platform": "x", "starts_at": "2099-01-02T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z", "comment": "x"},
         "ends_at: must be after starts_at"),
        ({"platform": "x", "ends_at": "tomorrow", "comment": "x"}, "ends_at: 'tomorrow' is not an RFC 3339"),
        ({"platform": "facebook", "account_id": "x:lyon", "duration": "1h", "comment": "x"},
         "account_id 'x:lyon' is not on platform 'facebook'"),
        ({"platform": "x", "duration": "1h", "comment": "x", "matchers": {}}, "matchers: Extra inputs"),
    ],
)  # fmt: skip
def test_bad_silences(api: TestClient, body: dict[str, Any], message: str) -> None:
    r = api.post("/v1/silences", headers=AUTH, json=body)
    assert r.status_code == 422, r.text
    assert message in r.json()["error"]["message"], r.json()
    assert api.get("/v1/silences").json()["items"] == []


def test_auth_and_unknown_ids(api: TestClient) -> None:
    body = {"platform": "x", "duration": "1h", "comment": "x"}
    assert api.post("/v1/silences", json=body).status_code == 401
    assert api.post("/v1/silences", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert api.delete("/v1/silences/00000000-0000-4000-8000-000000000000").status_code == 401
    for unknown in ("00000000-0000-4000-8000-000000000000", "nope"):
        r = api.delete(f"/v1/silences/{unknown}", headers=AUTH)
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    r = api.get("/v1/silences", params={"active": "maybe"})
    assert r.status_code == 422
    assert r.json()["error"]["message"].startswith("active:")
