"""GET /v1/entities/{entity_id} on the seeded data (seed.py)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.integration.api.seed import Seeded

pytestmark = pytest.mark.clickhouse


def test_entity(api: TestClient, seeded: Seeded) -> None:
    r = api.get("/v1/entities/COM:38185")
    assert r.status_code == 200, r.text
    body = r.json()
    assert {k: body[k] for k in ("entity_id", "name", "category", "population", "departement", "region",
                                 "source", "present_on", "score", "formula")} == {
        "entity_id": "COM:38185", "name": "Grenoble", "category": "commune", "population": 156140,
        "departement": "38", "region": "84", "source": "insee", "present_on": ["facebook", "instagram", "x"],
        "score": 5.0, "formula": "score/1",
    }  # fmt: skip
    platforms = {p["platform"]: p for p in body["platforms"]}
    assert list(platforms) == ["facebook", "instagram", "x", "youtube"]
    facebook = platforms["facebook"]
    assert (facebook["present"], facebook["followers"], facebook["score"]) == (True, 6000, None)
    main, tourism = facebook["accounts"]
    assert main == {
        "account_id": "facebook:grenoble", "handle": "VilleDeGrenoble", "registered": True,
        "observed_at": main["observed_at"], "followers": 5300, "status": "active", "fresh": True, "present": True,
        "score": None, "formula": "score/1", "posts_30d": None,
        "followers_before": {"1d": 5200, "7d": 5100, "30d": 5000, "90d": None, "365d": None},
    }  # fmt: skip
    assert main["observed_at"].endswith("Z")
    assert (tourism["account_id"], tourism["registered"], tourism["followers"]) == (
        "facebook:grenoble_tourisme", False, 700
    )  # fmt: skip
    assert platforms["x"]["accounts"][0]["account_id"] == "x:grenoble"
    assert platforms["instagram"]["score"] == 5.0
    # Registered, never observed.
    youtube = platforms["youtube"]
    assert (youtube["present"], youtube["followers"], youtube["score"]) == (False, None, None)
    assert youtube["accounts"] == [
        {"account_id": "youtube:UCgrenoble", "handle": "grenoble", "registered": True, "observed_at": None,
         "followers": None, "status": None, "fresh": False, "present": False, "score": None, "formula": None,
         "posts_30d": None, "followers_before": {}}
    ]  # fmt: skip

    # A deleted account: fresh (it was just observed), counted, not present.
    r = api.get("/v1/entities/dep:38")
    body = r.json()
    assert (body["entity_id"], body["present_on"]) == ("DEP:38", [])
    (facebook,) = body["platforms"]
    assert (facebook["present"], facebook["followers"], facebook["accounts"][0]["status"]) == (
        False,
        0,
        "deleted",
    )

    # An entity without any account.
    r = api.get("/v1/entities/REG:84")
    assert (r.status_code, r.json()["platforms"], r.json()["score"]) == (200, [], None)


def test_unknown_entities(api: TestClient, seeded: Seeded) -> None:
    r = api.get("/v1/entities/COM:99999")
    assert r.status_code == 404
    assert r.json() == {"error": {"code": "not_found", "message": "unknown entity 'COM:99999'"}}
    r = api.get("/v1/entities/grenoble")
    assert r.status_code == 404
    assert r.json()["error"]["message"].startswith("unknown entity: entity_id 'GRENOBLE' is not KIND:code")
