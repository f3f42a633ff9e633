"""/openapi.json documents every route, its parameters with their allowed values, its response model
with an example, its errors and its file formats."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from services.api.app import create_app
from services.common.settings import Settings


def spec() -> dict[str, Any]:
    app = create_app(Settings(clickhouse_url="http://127.0.0.1:9", clickhouse_database="nowhere"))
    r = TestClient(app).get("/openapi.json")
    assert r.status_code == 200
    body: dict[str, Any] = r.json()
    return body


def test_openapi_documents_the_api() -> None:
    doc = spec()
    routes = {
        "/v1/presence": "PresenceOut",
        "/v1/presence/series": "PresenceSeriesOut",
        "/v1/presence/overlap": "OverlapOut",
        "/v1/rankings": "RankingsOut",
        "/v1/entities/{entity_id}": "EntityOut",
        "/v1/accounts/{account_id}/history": "HistoryOut",
        "/v1/scores": "ScoresOut",
        "/v1/entities": "EntitySearchOut",
        "/v1/entities/{entity_id}/peers": "PeersOut",
    }
    schemas = doc["components"]["schemas"]
    for path, model in routes.items():
        get = doc["paths"][path]["get"]
        ok = get["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": f"#/components/schemas/{model}"}, path
        assert schemas[model]["examples"], model
        assert get["responses"]["422"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
        assert get["description"]
    for path in ("/v1/entities/{entity_id}", "/v1/accounts/{account_id}/history"):
        assert "404" in doc["paths"][path]["get"]["responses"]
    for path in ("/v1/rankings", "/v1/presence/series", "/v1/accounts/{account_id}/history"):
        content = doc["paths"][path]["get"]["responses"]["200"]["content"]
        assert {"application/json", "text/csv", "application/vnd.apache.parquet"} <= set(content)

    params = {p["name"]: p for p in doc["paths"]["/v1/rankings"]["get"]["parameters"]}
    assert set(params) == {"platform", "category", "window", "metric", "at", "region", "departement", "panel",
                           "stratum", "by", "limit", "min_followers", "min_population", "format"}  # fmt: skip
    for name in ("min_followers", "min_population"):
        schema = params[name]["schema"]
        assert {k: schema[k] for k in ("type", "minimum")} == {"type": "integer", "minimum": 0}, name
        assert "anyOf" not in schema and params[name]["required"] is False
    rankings_out = schemas["RankingsOut"]
    assert "min_base" in rankings_out["required"]
    assert {"$ref": "#/components/schemas/MinBaseOut"} in rankings_out["properties"]["min_base"]["anyOf"]
    assert set(schemas["MinBaseOut"]["required"]) == {"followers", "population"}
    assert "min_base" in schemas["ReportRanking"]["required"]
    assert params["platform"]["required"] is True
    assert params["limit"]["schema"]["maximum"] == 500
    assert schemas["Window"]["enum"] == ["1d", "7d", "30d", "90d", "365d"]
    assert schemas["Metric"]["enum"] == ["growth_abs", "growth_pct", "per_1000_inhabitants", "followers"]
    series = {p["name"] for p in doc["paths"]["/v1/presence/series"]["get"]["parameters"]}
    assert series == {"platform", "category", "from", "to", "step", "panel", "stratum", "format"}
