"""GET /v1/entities?q=: finding an entity by name, code or postal code, on the real registry loaded in
ClickHouse (every test database is migrated with the shipped registry)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.common.clickhouse import make_client
from services.common.names import Category
from services.common.reference import Entity
from services.common.registry import user_version, write_entities
from tests.integration.api.seed import Seeded

pytestmark = pytest.mark.clickhouse


def found(api: TestClient, q: str, **params: Any) -> list[tuple[str, str]]:
    r = api.get("/v1/entities", params={"q": q, **params})
    assert r.status_code == 200, r.text
    return [(item["entity_id"], item["match"]) for item in r.json()["items"]]


def test_search(api: TestClient) -> None:
    r = api.get("/v1/entities", params={"q": "  grenoble "})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["q"], body["category"]) == ("grenoble", None)
    assert body["items"][0] == {
        "entity_id": "COM:38185", "name": "Grenoble", "category": "commune", "population": 156140,
        "departement": "38", "region": "84", "postal_codes": ["38000", "38100"],
        "stratum": "commune_100000_plus", "match": "name",
    }  # fmt: skip
    # The métropole named after it comes next (its name starts with the query).
    assert body["items"][1][("entity_id")] == "EPCI:200040715"
    assert body["items"][1]["stratum"] == "metropole"
    for q in ("GRENOBLE", "grenoblé", "Grenoble"):
        assert found(api, q)[0] == ("COM:38185", "name")
    for q in ("saint etienne", "SAINT-ÉTIENNE", "Saint Etienne"):
        assert found(api, q)[0] == ("COM:42218", "name")
    assert found(api, "l'ile d yeu") == [("COM:85113", "name")]

    # Exact code first (the Isère), then code prefixes by population: Grenoble is the largest in 38.
    assert found(api, "38", limit=3) == [
        ("DEP:38", "code"), ("COM:38185", "code_prefix"), ("COM:38421", "code_prefix")
    ]  # fmt: skip
    # Name prefix before word prefix, larger population first within each.
    items = found(api, "lyon", limit=5)
    assert items[:2] == [("COM:69123", "name"), ("COM:27377", "prefix")]
    assert {m for _, m in items[2:]} == {"word"}
    assert found(api, "etienne", limit=2) == [("EPCI:244200770", "word"), ("COM:42218", "word")]
    # A substring comes last.
    assert found(api, "renoble") == [("EPCI:200040715", "substring"), ("COM:38185", "substring")]

    assert found(api, "38185")[0] == ("COM:38185", "code")
    assert found(api, "com:38185") == [("COM:38185", "code")]
    assert found(api, "2a", limit=1) == [("DEP:2A", "code")]
    assert found(api, "200040715") == [("EPCI:200040715", "code")]
    # A postal code names every commune it serves, largest first.
    assert found(api, "38000") == [("COM:38185", "code")]
    assert found(api, "75116") == [("COM:75056", "code")]
    # 51300 serves 46 communes, and is also the INSEE code of a 47th.
    shared = found(api, "51300", limit=50)
    assert len(shared) == 47 and {m for _, m in shared} == {"code"} and ("COM:51300", "code") in shared

    assert found(api, "paris", limit=2) == [("COM:75056", "name"), ("DEP:75", "name")]
    assert found(api, "paris", category="departement") == [("DEP:75", "name")]
    assert len(found(api, "saint", limit=50)) == 50
    assert found(api, "zzzzqqq") == []
    assert found(api, "---") == []


def test_imported_entities_are_found(seeded: Seeded) -> None:
    client = make_client(seeded.settings)
    write_entities(
        client, seeded.settings.clickhouse_database,
        [Entity("COM:99999", "Ville d'Essai-sur-Mer", Category.COMMUNE, 1200, "38", "84")],
        source="import", version=user_version(),
    )  # fmt: skip
    client.close()
    from services.api.app import create_app

    with TestClient(create_app(seeded.settings)) as api:
        r = api.get("/v1/entities", params={"q": "essai sur"})
        assert r.status_code == 200, r.text
        (item,) = r.json()["items"]
        assert (item["entity_id"], item["match"], item["postal_codes"], item["stratum"]) == (
            "COM:99999", "word", [], "commune_lt_3500"
        )  # fmt: skip


BAD = [
    ({}, "q: "),
    ({"q": ""}, "q: must not be blank"),
    ({"q": "  \t "}, "q: must not be blank"),
    ({"q": "a" * 101}, "q: at most 100 characters"),
    ({"q": "lyon", "limit": 51}, "limit: "),
    ({"q": "lyon", "limit": 0}, "limit: "),
    ({"q": "lyon", "category": "village"}, "category: unknown category 'village'"),
]


def test_bad_queries_are_json_errors_and_the_openapi_says_it(api: TestClient) -> None:
    for params, message in BAD:
        r = api.get("/v1/entities", params=params)
        assert r.status_code == 422, (params, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid_request"
        assert error["message"].startswith(message), error["message"]
    spec = api.get("/openapi.json").json()
    operation = spec["paths"]["/v1/entities"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert params["q"]["required"] is True
    assert params["q"]["schema"]["maxLength"] == 100
    assert params["limit"]["schema"]["maximum"] == 50
    item = spec["components"]["schemas"]["EntityMatch"]["properties"]
    assert set(item) >= {"entity_id", "postal_codes", "stratum", "match"}
    assert "422" in operation["responses"]
