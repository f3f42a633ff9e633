"""POST /v1/snapshots declares its body from the contract's JSON Schema: the item schema of the OpenAPI
gives the same verdict as schemas/events/account_snapshot.v1.json on every contract example, valid and
invalid (the platform/account prefix rules are rewritten as choices generators can draw from)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from services.common.settings import Settings
from services.ingest.app import MAX_ITEMS, create_app
from services.ingest.openapi import SNAPSHOT_SCHEMA_FILE, snapshot_item_schema

EXAMPLES = json.loads(
    (Path(__file__).resolve().parents[1] / "contract_examples" / "account_snapshot.json").read_text("utf-8")
)
FILE = Draft202012Validator(json.loads(SNAPSHOT_SCHEMA_FILE.read_text("utf-8")))
DECLARED = Draft202012Validator(snapshot_item_schema())


@pytest.mark.parametrize("example", EXAMPLES["valid"] + EXAMPLES["invalid"], ids=lambda e: e.get("name", "?"))
def test_the_declared_item_schema_judges_as_the_contract_file(example: dict[str, Any]) -> None:
    event = example["event"]
    assert DECLARED.is_valid(event) == FILE.is_valid(event)


def test_a_platform_and_a_foreign_prefix_are_refused() -> None:
    good = {
        "account_id": "x:grenoble",
        "platform": "x",
        "observed_at": "2013-01-01T09:00:00Z",
        "followers": 1,
    }
    assert DECLARED.is_valid(good) and DECLARED.is_valid({**good, "platform": "twitter"})
    assert not DECLARED.is_valid({**good, "platform": "facebook"})


def test_the_route_declares_its_body_and_answers() -> None:
    app = create_app(Settings(clickhouse_url="http://127.0.0.1:9", clickhouse_database="nowhere"))
    operation = TestClient(app).get("/openapi.json").json()["paths"]["/v1/snapshots"]["post"]
    body = operation["requestBody"]["content"]
    assert body["application/json"]["schema"] == {
        "type": "array",
        "maxItems": MAX_ITEMS,
        "items": snapshot_item_schema(),
    }
    assert body["application/x-ndjson"]["schema"]["type"] == "string"
    assert {"200", "400", "401", "403", "413", "429", "503"} <= set(operation["responses"])
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/SnapshotsOut"}
