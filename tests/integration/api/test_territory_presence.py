"""GET /v1/presence/territories (the dashboard's map) on the seeded data (seed.py), against ClickHouse."""

from __future__ import annotations

from collections import Counter

import pytest
from fastapi.testclient import TestClient

from services.common.names import Category
from services.common.reference import load_entities
from tests.integration.api.seed import PANEL, Seeded

pytestmark = pytest.mark.clickhouse

ROUTE = "/v1/presence/territories"


def by_code(body: dict[str, object]) -> dict[str, dict[str, object]]:
    items = body["items"]
    assert isinstance(items, list)
    return {item["code"]: item for item in items}


def test_departements_live(api: TestClient, seeded: Seeded) -> None:
    r = api.get(ROUTE, params={"platform": "facebook"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["platform"], body["level"], body["panel"]) == ("facebook", "departement", None)
    assert body["at"].endswith("Z")
    entities = load_entities()
    communes = Counter(e.departement for e in entities if e.category is Category.COMMUNE)
    departements = sorted(e.departement or "" for e in entities if e.category is Category.DEPARTEMENT)
    # Every département of the registry, overseas included, sorted by code.
    assert [i["code"] for i in body["items"]] == departements
    assert {"971", "972", "973", "974", "976", "2A", "2B"} <= set(departements)
    items = by_code(body)
    # Now: Grenoble (38), Lyon (69) and Paris (75) present; Marseille (13) stale; the Isère deleted.
    assert items["38"] == {"code": "38", "entity_id": "DEP:38", "name": "Isère", "present": 1,
                           "total": communes["38"], "rate": 1 / communes["38"],
                           "entity_present": False}  # fmt: skip
    assert (items["69"]["present"], items["75"]["present"], items["13"]["present"]) == (1, 1, 0)
    assert (items["75"]["total"], items["75"]["rate"]) == (1, 1.0)
    assert items["971"]["name"] == "Guadeloupe" and items["971"]["present"] == 0
    assert all(i["total"] == communes[i["code"]] for i in body["items"])
    # The same presence as GET /v1/presence, split by département.
    whole = api.get("/v1/presence", params={"platform": "facebook", "category": "commune"}).json()
    assert sum(i["present"] for i in body["items"]) == whole["present"] == 3
    assert sum(i["total"] for i in body["items"]) == whole["total"]


def test_regions_and_platforms(api: TestClient, seeded: Seeded) -> None:
    r = api.get(ROUTE, params={"platform": "facebook", "level": "region"})
    assert r.status_code == 200, r.text
    items = by_code(r.json())
    regions = {e.region for e in load_entities() if e.category is Category.REGION}
    assert set(items) == regions and len(regions) == 18
    assert (items["84"]["present"], items["11"]["present"], items["93"]["present"]) == (2, 1, 0)
    assert (items["84"]["entity_id"], items["84"]["entity_present"]) == ("REG:84", False)
    # x, asked as "twitter": only Grenoble.
    r = api.get(ROUTE, params={"platform": "twitter", "level": "departement"})
    assert r.json()["platform"] == "x"
    present = {i["code"]: i["present"] for i in r.json()["items"] if i["present"]}
    assert present == {"38": 1}


def test_panel_as_of(api: TestClient, seeded: Seeded) -> None:
    # As of 2013-05-15: Grenoble, Lyon, Paris and the Isère present; Marseille deleted on 2013-05-10.
    params = {"platform": "facebook", "panel": PANEL, "at": "2013-05-15T02:00:00+02:00"}
    r = api.get(ROUTE, params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["panel"], body["at"]) == (PANEL, "2013-05-15T00:00:00Z")
    items = by_code(body)
    assert items["38"] | {"name": None} == {"code": "38", "entity_id": "DEP:38", "name": None, "present": 1,
                                            "total": 1, "rate": 1.0, "entity_present": True}  # fmt: skip
    assert (items["13"]["present"], items["13"]["total"], items["13"]["rate"]) == (0, 1, 0.0)
    # Not in the panel: no communes (rate null), and the collectivité itself is not asked about.
    assert (items["01"]["total"], items["01"]["rate"], items["01"]["entity_present"]) == (0, None, None)
    assert sum(i["total"] for i in body["items"]) == 4
    r = api.get(ROUTE, params=params | {"level": "region"})
    assert {c: i["present"] for c, i in by_code(r.json()).items() if i["total"]} == {
        "84": 2,
        "11": 1,
        "93": 0,
    }


@pytest.mark.parametrize(
    ("params", "status", "names"),
    [
        ({}, 422, "platform"),
        ({"platform": "myspace"}, 422, "platform: unknown platform 'myspace'"),
        ({"platform": "facebook", "level": "canton"}, 422, "level: unknown level 'canton'; allowed: departement, region"),
        ({"platform": "facebook", "at": "yesterday"}, 422, "at"),
        ({"platform": "facebook", "panel": "nope"}, 404, "panel: unknown panel 'nope'; known panels: test"),
    ],
)  # fmt: skip
def test_bad_input(api: TestClient, seeded: Seeded, params: dict[str, str], status: int, names: str) -> None:
    r = api.get(ROUTE, params=params)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"code", "message"}
    assert names in error["message"]
