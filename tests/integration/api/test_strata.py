"""The ``stratum`` filter of GET /v1/presence, /v1/presence/series and /v1/rankings, and
GET /v1/entities/{entity_id}/peers, on the seeded data (seed.py) and the shipped registry."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api.strata import Stratum
from services.common.reference import load_entities
from services.common.reference.extras import EpciKind, extras_by_id
from tests.integration.api.seed import Seeded

pytestmark = pytest.mark.clickhouse

AT = "2013-05-15T00:00:00Z"


def communes(low: int, high: float, region: str | None = None) -> list[str]:
    return [
        e.entity_id
        for e in load_entities()
        if e.category.value == "commune"
        and e.population is not None
        and low <= e.population <= high
        and (region is None or e.region == region)
    ]


def get(api: TestClient, path: str, **params: Any) -> dict[str, Any]:
    r = api.get(path, params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_stratum_filters_presence_series_and_rankings(api: TestClient, seeded: Seeded) -> None:
    large = communes(100_000, float("inf"))
    # Live on facebook: Grenoble, Lyon and Paris present; Marseille last seen 60 days ago.
    body = get(api, "/v1/presence", platform="facebook", stratum="commune_100000_plus")
    assert (body["category"], body["stratum"], body["present"], body["total"]) == (
        "commune", "commune_100000_plus", 3, len(large)
    )  # fmt: skip
    assert sum(body["coverage"][k] for k in ("observed", "stale", "missing")) == len(large)
    small = get(api, "/v1/presence", platform="facebook", stratum="commune_lt_3500")
    assert (small["present"], small["total"]) == (0, len(communes(0, 3_499)))
    middle = [get(api, "/v1/presence", platform="facebook", stratum=s)["total"] for s in
              ("commune_3500_19999", "commune_20000_99999")]  # fmt: skip
    assert middle == [len(communes(3_500, 19_999)), len(communes(20_000, 99_999))]
    # The four bands cover every commune exactly once.
    everyone = get(api, "/v1/presence", platform="facebook", category="commune")["total"]
    assert small["total"] + sum(middle) + body["total"] == everyone
    # EPCI by nature (the stratum's ids are bound as one array parameter, ~1,000 for the CC).
    kinds = [e.epci_kind for e in extras_by_id().values() if e.epci_kind is not None]
    for kind in EpciKind:
        answer = get(api, "/v1/presence", platform="facebook", stratum=kind.value, category="epci")
        assert (answer["category"], answer["total"]) == ("epci", kinds.count(kind)), kind
    assert kinds.count(EpciKind.METROPOLE) == 22  # 21 métropoles and the Métropole de Lyon

    series = get(api, "/v1/presence/series", platform="facebook", stratum="commune_100000_plus", step="day",
                 **{"from": "2013-05-09T12:00:00Z", "to": "2013-05-11T12:00:00Z"})  # fmt: skip
    assert series["stratum"] == "commune_100000_plus"
    # Grenoble, Lyon, Paris present; Marseille too until deleted on 2013-05-10 at 10:00.
    assert [(p["present"], p["total"]) for p in series["points"]] == [
        (4, len(large)), (3, len(large)), (3, len(large))
    ]  # fmt: skip

    ranking = get(api, "/v1/rankings", platform="facebook", stratum="commune_100000_plus", metric="followers")
    assert ranking["stratum"] == "commune_100000_plus"
    assert [(i["entity_id"], i["value"]) for i in ranking["items"]] == [
        ("COM:75056", 20000.0), ("COM:69123", 9500.0), ("COM:38185", 6000.0)
    ]  # fmt: skip
    # With a région and as of an instant: Lyon then Grenoble (Auvergne-Rhône-Alpes).
    past = get(api, "/v1/rankings", platform="facebook", stratum="commune_100000_plus", region="84",
               metric="followers", at=AT)  # fmt: skip
    assert [(i["entity_id"], i["value"]) for i in past["items"]] == [
        ("COM:69123", 2100.0),
        ("COM:38185", 1400.0),
    ]
    assert get(api, "/v1/rankings", platform="facebook", stratum="commune_lt_3500")["items"] == []
    csv = api.get("/v1/rankings", params={"platform": "facebook", "stratum": "metropole", "format": "csv"})
    assert csv.status_code == 200 and "metropole" in csv.headers["content-disposition"]


def test_bad_stratum_and_openapi(api: TestClient) -> None:
    r = api.get("/v1/presence", params={"platform": "facebook", "stratum": "village"})
    assert r.status_code == 422
    assert r.json()["error"]["message"].startswith(
        "stratum: unknown stratum 'village'; allowed: commune_lt_3500"
    )
    r = api.get(
        "/v1/rankings", params={"platform": "facebook", "stratum": "metropole", "category": "commune"}
    )
    assert r.status_code == 422
    assert r.json()["error"] == {
        "code": "invalid_request",
        "message": "stratum: 'metropole' is a stratum of category epci, not commune",
    }
    spec = api.get("/openapi.json").json()
    for path in ("/v1/presence", "/v1/presence/series", "/v1/rankings"):
        (param,) = [p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == "stratum"]
        schema = param["schema"]
        if "$ref" in schema:
            schema = spec["components"]["schemas"][schema["$ref"].rpartition("/")[2]]
        assert schema["enum"] == [s.value for s in Stratum], path


def test_peers(api: TestClient, seeded: Seeded) -> None:
    peers = communes(100_000, float("inf"), region="84")
    body = get(api, "/v1/entities/COM:38185/peers", platform="facebook")
    assert body == {
        "entity_id": "COM:38185", "name": "Grenoble", "platform": "facebook", "metric": "followers",
        "window": "30d", "at": None,
        "group": {"category": "commune", "stratum": "commune_100000_plus", "region": "84",
                  "size": len(peers), "present": 2, "presence_rate": pytest.approx(2 / len(peers))},
        "value": 6000.0, "rank": 2, "count": 2, "median": 7750.0,
        "best": {"entity_id": "COM:69123", "name": "Lyon", "value": 9500.0},
        "coverage": body["coverage"],
    }  # fmt: skip
    assert body["coverage"]["observed"] == 2
    # Growth: Grenoble +1000 over 30 days, Lyon +500: Grenoble first.
    growth = get(api, "/v1/entities/com:38185/peers", platform="facebook", metric="growth_abs")
    assert (growth["rank"], growth["value"], growth["best"]["entity_id"]) == (1, 1000.0, "COM:38185")
    # As of an instant.
    past = get(api, "/v1/entities/COM:69123/peers", platform="facebook", at=AT)
    assert (past["rank"], past["value"], past["count"], past["median"]) == (1, 2100.0, 2, 1750.0)
    # Paris, first of the large communes of Île-de-France (the only one observed).
    paris = get(api, "/v1/entities/COM:75056/peers", platform="facebook")
    assert (paris["group"]["size"], paris["rank"], paris["count"]) == (
        len(communes(100_000, 1e9, "11")),
        1,
        1,
    )
    # A département: its région's départements, no stratum. The Isère's only account was deleted (0
    # followers, as in the rankings); the Rhône has none: no value, no rank.
    isere = get(api, "/v1/entities/DEP:38/peers", platform="facebook")
    assert isere["group"] == {"category": "departement", "stratum": None, "region": "84", "size": 12,
                              "present": 0, "presence_rate": 0.0}  # fmt: skip
    assert (isere["value"], isere["rank"], isere["count"], isere["median"]) == (0.0, 1, 1, 0.0)
    rhone = get(api, "/v1/entities/DEP:69/peers", platform="facebook")
    assert (rhone["value"], rhone["rank"], rhone["count"], rhone["best"]["entity_id"]) == (
        None,
        None,
        1,
        "DEP:38",
    )
    empty = get(api, "/v1/entities/DEP:69/peers", platform="tiktok")
    assert (empty["value"], empty["rank"], empty["count"], empty["median"], empty["best"]) == (
        None, None, 0, None, None
    )  # fmt: skip
    # A région: every région.
    region = get(api, "/v1/entities/REG:84/peers", platform="x")
    assert (region["group"]["region"], region["group"]["size"]) == (None, 18)
    # Errors.
    assert api.get("/v1/entities/COM:00000/peers", params={"platform": "x"}).status_code == 404
    assert api.get("/v1/entities/nope/peers", params={"platform": "x"}).json()["error"]["code"] == "not_found"
    r = api.get("/v1/entities/COM:38185/peers", params={"platform": "myspace"})
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("platform: ")
    r = api.get("/v1/entities/COM:38185/peers")
    assert r.status_code == 422
