"""GET /v1/rankings on the seeded data (seed.py): live and as of an instant, by entity and by
account, every metric, territory and panel filters, exports."""

from __future__ import annotations

import csv
import io
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from services.common.reference import entities_by_id
from tests.integration.api.seed import PANEL, Seeded

pytestmark = pytest.mark.clickhouse

AT = "2013-05-15T00:00:00Z"


def ranking(api: TestClient, **params: Any) -> list[tuple[Any, ...]]:
    r = api.get("/v1/rankings", params={"platform": "facebook", **params})
    assert r.status_code == 200, r.text
    key = "account_id" if params.get("by") == "account" else "entity_id"
    return [(item[key], item["value"]) for item in r.json()["items"]]


def population(entity_id: str) -> int:
    value = entities_by_id()[entity_id].population
    assert value is not None
    return value


def test_live_rankings(api: TestClient, seeded: Seeded) -> None:
    r = api.get("/v1/rankings", params={"platform": "facebook", "category": "commune", "panel": PANEL})
    assert r.status_code == 200, r.text
    body = r.json()
    assert {k: body[k] for k in ("platform", "category", "window", "metric", "by", "at")} == {
        "platform": "facebook", "category": "commune", "window": "30d", "metric": "growth_abs", "by": "entity",
        "at": None,
    }  # fmt: skip
    # Grenoble: 5300 + 700 (tourism office, no baseline) now, 5000 a window before; Paris has no
    # baseline; Marseille was last seen 60 days ago.
    assert body["items"] == [
        {"rank": 1, "entity_id": "COM:38185", "name": "Grenoble", "value": 1000.0, "followers": 6000,
         "followers_before": 5000},
        {"rank": 2, "entity_id": "COM:69123", "name": "Lyon", "value": 500.0, "followers": 9500,
         "followers_before": 9000},
    ]  # fmt: skip
    scope = {"category": "commune", "panel": PANEL}
    assert ranking(api, **scope, window="7d") == [("COM:38185", 900.0), ("COM:69123", 500.0)]
    assert ranking(api, **scope, window="1d") == [("COM:38185", 800.0), ("COM:69123", 500.0)]
    assert ranking(api, **scope, metric="growth_pct") == [
        ("COM:38185", 20.0),
        ("COM:69123", pytest.approx(500 / 90)),
    ]
    assert ranking(api, **scope, metric="followers") == [
        ("COM:75056", 20000.0), ("COM:69123", 9500.0), ("COM:38185", 6000.0)
    ]  # fmt: skip
    per_1000 = ranking(api, **scope, metric="per_1000_inhabitants")
    assert per_1000 == [
        ("COM:38185", pytest.approx(6000_000 / population("COM:38185"))),
        ("COM:69123", pytest.approx(9500_000 / population("COM:69123"))),
        ("COM:75056", pytest.approx(20000_000 / population("COM:75056"))),
    ]
    r = api.get("/v1/rankings", params={"platform": "facebook", **scope, "metric": "followers"})
    assert r.json()["items"][0]["followers_before"] is None

    # The Isère's account is deleted now (0 followers): it comes last, it is not left out.
    assert ranking(api, panel=PANEL) == [("COM:38185", 1000.0), ("COM:69123", 500.0), ("DEP:38", -4000.0)]
    assert ranking(api, panel=PANEL, limit=1) == [("COM:38185", 1000.0)]

    # Territories, without a panel: the registry of the category.
    assert ranking(api, category="commune", departement="38") == [("COM:38185", 1000.0)]
    assert ranking(api, category="commune", departement="DEP:38") == [("COM:38185", 1000.0)]
    assert ranking(api, category="commune", region="84") == [("COM:38185", 1000.0), ("COM:69123", 500.0)]
    assert ranking(api, category="commune", region="11") == []
    assert ranking(api, category="departement", region="84") == [("DEP:38", -4000.0)]


def test_live_account_rankings(api: TestClient, seeded: Seeded) -> None:
    r = api.get("/v1/rankings", params={"platform": "facebook", "category": "commune", "by": "account"})
    assert r.status_code == 200, r.text
    assert r.json()["items"] == [
        {"rank": 1, "entity_id": "COM:69123", "name": "Lyon", "value": 500.0, "followers": 9500,
         "followers_before": 9000, "account_id": "facebook:lyon", "handle": None},
        {"rank": 2, "entity_id": "COM:38185", "name": "Grenoble", "value": 300.0, "followers": 5300,
         "followers_before": 5000, "account_id": "facebook:grenoble", "handle": "VilleDeGrenoble"},
    ]  # fmt: skip
    assert ranking(api, category="commune", by="account", metric="followers", departement="38") == [
        ("facebook:grenoble", 5300.0), ("facebook:grenoble_tourisme", 700.0)
    ]  # fmt: skip
    assert ranking(api, platform="twitter", by="account") == [("x:grenoble", 200.0)]


def test_rankings_as_of(api: TestClient, seeded: Seeded) -> None:
    scope = {"category": "commune", "panel": PANEL, "at": AT}
    r = api.get("/v1/rankings", params={"platform": "facebook", **scope})
    assert r.status_code == 200, r.text
    assert r.json()["at"] == AT
    # Grenoble 1300 + 100 on 2013-05-10 against 1000 on 2013-04-10; Marseille's deleted account
    # counts 0 followers.
    assert r.json()["items"][0] == {"rank": 1, "entity_id": "COM:38185", "name": "Grenoble", "value": 400.0,
                                    "followers": 1400, "followers_before": 1000}  # fmt: skip
    assert ranking(api, **scope) == [("COM:38185", 400.0), ("COM:69123", 100.0), ("COM:75056", 50.0),
                                     ("COM:13055", -500.0)]  # fmt: skip
    # Marseille had 500 followers a window before: under the minimum base of growth_pct (1,000).
    assert ranking(api, **scope, metric="growth_pct") == [
        ("COM:38185", 40.0), ("COM:69123", 5.0), ("COM:75056", pytest.approx(5 / 3))
    ]  # fmt: skip
    assert ranking(api, **scope, metric="growth_pct", min_followers=0) == [
        ("COM:38185", 40.0), ("COM:69123", 5.0), ("COM:75056", pytest.approx(5 / 3)), ("COM:13055", -100.0)
    ]  # fmt: skip
    assert ranking(api, **scope, metric="followers") == [
        ("COM:75056", 3050.0), ("COM:69123", 2100.0), ("COM:38185", 1400.0), ("COM:13055", 0.0)
    ]  # fmt: skip
    assert [e for e, _ in ranking(api, **scope, metric="per_1000_inhabitants")] == [
        "COM:38185", "COM:69123", "COM:75056", "COM:13055"
    ]  # fmt: skip
    # By account: the tourism office has no baseline.
    r = api.get("/v1/rankings", params={"platform": "facebook", **scope, "by": "account", "limit": 2})
    assert r.json()["items"] == [
        {"rank": 1, "entity_id": "COM:38185", "name": "Grenoble", "value": 300.0, "followers": 1300,
         "followers_before": 1000, "account_id": "facebook:grenoble", "handle": "VilleDeGrenoble"},
        {"rank": 2, "entity_id": "COM:69123", "name": "Lyon", "value": 100.0, "followers": 2100,
         "followers_before": 2000, "account_id": "facebook:lyon", "handle": None},
    ]  # fmt: skip
    # A window with no baseline in the data: nobody is ranked.
    assert ranking(api, **scope, window="365d") == []
    # Territories.
    assert ranking(api, category="commune", region="84", at=AT) == [
        ("COM:38185", 400.0),
        ("COM:69123", 100.0),
    ]
    assert ranking(api, category="commune", departement="13", at=AT) == [("COM:13055", -500.0)]
    # Before any data.
    assert ranking(api, category="commune", at="2012-01-01T00:00:00Z") == []


def test_rankings_exports(api: TestClient, seeded: Seeded) -> None:
    params = {"platform": "facebook", "category": "commune", "panel": PANEL, "at": AT}
    r = api.get("/v1/rankings", params=params | {"format": "csv"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == (
        'attachment; filename="rankings_facebook_commune_test_entity_growth_abs_30d_20130515T000000Z.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows[0] == {"rank": "1", "entity_id": "COM:38185", "name": "Grenoble", "value": "400.0",
                       "followers": "1400", "followers_before": "1000"}  # fmt: skip
    assert len(rows) == 4

    r = api.get("/v1/rankings", params={"platform": "facebook", "category": "commune", "by": "account",
                                        "metric": "followers"},
                headers={"Accept": "application/vnd.apache.parquet"})  # fmt: skip
    assert r.headers["content-type"] == "application/vnd.apache.parquet"
    assert r.headers["content-disposition"] == (
        'attachment; filename="rankings_facebook_commune_account_followers_30d_live.parquet"'
    )
    table = pq.read_table(io.BytesIO(r.content))
    assert table.column_names == ["rank", "entity_id", "name", "account_id", "handle", "value", "followers",
                                  "followers_before"]  # fmt: skip
    assert table.column("account_id").to_pylist() == [
        "facebook:paris", "facebook:lyon", "facebook:grenoble", "facebook:grenoble_tourisme"
    ]  # fmt: skip
    assert table.column("followers_before").to_pylist() == [None] * 4

    r = api.get("/v1/rankings", params=params, headers={"Accept": "text/csv, application/json;q=0.5"})
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
