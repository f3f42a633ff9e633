"""GET /v1/scores on the seeded data (seed.py): instagram:grenoble scores 5.0 and instagram:lyon 1.0
at every point with a 30-day baseline; at their first points (no baseline) 5.0 and 1.25."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.integration.api.seed import Seeded

pytestmark = pytest.mark.clickhouse


def test_scores(api: TestClient, seeded: Seeded) -> None:
    r = api.get("/v1/scores", params={"platform": "instagram", "category": "commune"})
    assert r.status_code == 200, r.text
    assert r.json() == {"platform": "instagram", "category": "commune", "panel": None, "at": None,
                        "score": 3.0, "count": 2, "formula": "score/1"}  # fmt: skip
    # Accounts without posting figures have no score: every platform gives the same average.
    r = api.get("/v1/scores")
    assert (r.json()["platform"], r.json()["score"], r.json()["count"]) == (None, 3.0, 2)
    r = api.get("/v1/scores", params={"platform": "instagram", "panel": "test", "at": "2013-05-15T00:00:00Z"})
    assert (r.json()["score"], r.json()["count"], r.json()["at"]) == (3.0, 2, "2013-05-15T00:00:00Z")
    r = api.get("/v1/scores", params={"platform": "instagram", "at": "2013-04-20T00:00:00Z"})
    assert (r.json()["score"], r.json()["count"]) == (3.125, 2)
    r = api.get("/v1/scores", params={"platform": "facebook"})
    assert (r.json()["score"], r.json()["count"]) == (None, 0)
    r = api.get("/v1/scores", params={"category": "region"})
    assert (r.json()["score"], r.json()["count"]) == (None, 0)
