"""GET /v1/presence, /v1/presence/series and /v1/presence/overlap on the seeded data (seed.py)."""

from __future__ import annotations

import csv
import io

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from services.common.names import Category
from services.common.reference import load_entities
from tests.integration.api.seed import PANEL, Seeded

pytestmark = pytest.mark.clickhouse


def test_presence_live_and_as_of(api: TestClient, seeded: Seeded) -> None:
    r = api.get("/v1/presence", params={"platform": "facebook", "category": "commune", "panel": PANEL})
    assert r.status_code == 200, r.text
    body = r.json()
    # Grenoble, Lyon, Paris present now; Marseille's last point is 60 days old.
    # Coverage: Marseille's only account is stale.
    assert body | {"at": None} == {"platform": "facebook", "category": "commune", "stratum": None, "panel": PANEL,
                                   "at": None,
                                   "present": 3, "total": 4, "rate": 0.75,
                                   "coverage": {"observed": 3, "stale": 1, "missing": 0,
                                                "simulated": False}}  # fmt: skip
    assert body["at"].endswith("Z")

    # The whole panel: the Isère's account is deleted now.
    r = api.get("/v1/presence", params={"platform": "facebook", "panel": PANEL})
    assert (r.json()["present"], r.json()["total"]) == (3, 5)

    # As of 2013-05-15: Marseille's account was deleted on 2013-05-10; the Isère was there.
    r = api.get(
        "/v1/presence", params={"platform": "facebook", "panel": PANEL, "at": "2013-05-15T02:00:00+02:00"}
    )
    assert r.json() == {"platform": "facebook", "category": None, "stratum": None, "panel": PANEL,
                        "at": "2013-05-15T00:00:00Z",
                        "present": 4, "total": 5, "rate": 0.8,
                        "coverage": {"observed": 5, "stale": 0, "missing": 0, "simulated": False}}  # fmt: skip
    r = api.get("/v1/presence", params={"platform": "facebook", "category": "commune", "panel": PANEL,
                                        "at": "2013-04-20T00:00:00Z"})  # fmt: skip
    assert (r.json()["present"], r.json()["total"]) == (4, 4)

    # "twitter" is x.
    r = api.get("/v1/presence", params={"platform": "twitter", "category": "commune", "panel": PANEL})
    assert (r.json()["platform"], r.json()["present"]) == ("x", 1)

    # Without a panel, the panel of a category is every entity of that category in the registry.
    r = api.get("/v1/presence", params={"platform": "facebook", "category": "commune"})
    communes = sum(e.category is Category.COMMUNE for e in load_entities())
    assert (r.json()["present"], r.json()["total"]) == (3, communes)

    r = api.get("/v1/presence", params={"platform": "facebook", "panel": "nope"})
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "panel: unknown panel 'nope'; known panels: test"


def test_presence_series(api: TestClient, seeded: Seeded) -> None:
    params = {"platform": "facebook", "category": "commune", "panel": PANEL, "step": "month",
              "from": "2013-03-15T00:00:00Z", "to": "2013-07-15T00:00:00Z"}  # fmt: skip
    r = api.get("/v1/presence/series", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["platform"], body["step"]) == ("facebook", "month")
    assert [(p["at"], p["present"], p["total"], p["rate"], p["observed"]) for p in body["points"]] == [
        ("2013-03-15T00:00:00Z", 0, 4, None, False),  # before any observation: no data, not 0 %
        ("2013-04-15T00:00:00Z", 4, 4, 1.0, True),
        ("2013-05-15T00:00:00Z", 3, 4, 0.75, True),
        ("2013-06-15T00:00:00Z", 3, 4, 0.75, True),  # the May points count until 2013-06-24
        ("2013-07-15T00:00:00Z", 0, 4, 0.0, True),  # observed, and nobody present: a true 0 %
    ]
    r = api.get("/v1/presence/series", params=params | {"step": "week", "from": "2013-04-01T00:00:00Z",
                                                         "to": "2013-04-29T00:00:00Z"})  # fmt: skip
    assert [p["present"] for p in r.json()["points"]] == [0, 0, 4, 4, 4]
    # Calendar months keep the day, clamped to the month's length.
    r = api.get(
        "/v1/presence/series", params=params | {"from": "2013-01-31T00:00:00Z", "to": "2013-04-30T00:00:00Z"}
    )
    assert [p["at"][:10] for p in r.json()["points"]] == [
        "2013-01-31",
        "2013-02-28",
        "2013-03-31",
        "2013-04-30",
    ]

    # Default range: 30 daily points up to now, the last one live.
    r = api.get("/v1/presence/series", params={"platform": "facebook", "category": "commune", "panel": PANEL,
                                               "step": "day"})  # fmt: skip
    points = r.json()["points"]
    assert len(points) == 31 and points[-1]["present"] == 3

    r = api.get("/v1/presence/series", params=params | {"step": "day", "from": "2012-01-01T00:00:00Z"})
    assert r.status_code == 422
    assert "more than 400 points" in r.json()["error"]["message"]
    r = api.get("/v1/presence/series", params=params | {"from": "2013-08-01T00:00:00Z"})
    assert r.status_code == 422
    assert r.json()["error"]["message"] == "from: must not be after to"


def test_presence_series_exports(api: TestClient, seeded: Seeded) -> None:
    params = {"platform": "facebook", "category": "commune", "panel": PANEL, "step": "month",
              "from": "2013-03-15T00:00:00Z", "to": "2013-07-15T00:00:00Z"}  # fmt: skip
    r = api.get("/v1/presence/series", params=params | {"format": "csv"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == (
        'attachment; filename="presence_facebook_commune_test_month_20130315T000000Z_20130715T000000Z.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(r.text)))
    # Not observed yet: an empty rate cell, and the observed column says why.
    assert rows[0] == {"at": "2013-03-15T00:00:00Z", "present": "0", "total": "4", "rate": "",
                       "observed": "false"}  # fmt: skip
    assert [row["present"] for row in rows] == ["0", "4", "3", "3", "0"]
    assert [row["observed"] for row in rows] == ["false", "true", "true", "true", "true"]

    r = api.get("/v1/presence/series", params=params, headers={"Accept": "application/vnd.apache.parquet"})
    assert r.headers["content-type"] == "application/vnd.apache.parquet"
    assert r.headers["content-disposition"].endswith('.parquet"')
    table = pq.read_table(io.BytesIO(r.content))
    assert table.column_names == ["at", "present", "total", "rate", "observed"]
    assert table.column("present").to_pylist() == [0, 4, 3, 3, 0]
    assert table.column("rate").to_pylist() == [None, 1.0, 0.75, 0.75, 0.0]
    assert table.column("observed").to_pylist() == [False, True, True, True, True]
    assert str(table.schema.field("at").type) == "timestamp[ms, tz=UTC]"

    r = api.get("/v1/presence/series", params=params, headers={"Accept": "text/csv"})
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    # The parameter wins over the header.
    r = api.get("/v1/presence/series", params=params | {"format": "json"}, headers={"Accept": "text/csv"})
    assert r.json()["points"][1]["present"] == 4


def test_overlap(api: TestClient, seeded: Seeded) -> None:
    r = api.get("/v1/presence/overlap", params={"platforms": "facebook,twitter", "category": "commune",
                                                "panel": PANEL})  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    # Coverage: only Grenoble has an account observed on both; Lyon, Paris and Marseille none on X.
    assert body | {"at": None} == {"platforms": ["facebook", "x"], "category": "commune", "panel": PANEL,
                                   "at": None, "present_all": 1, "total": 4, "rate": 0.25,
                                   "coverage": {"observed": 1, "stale": 0, "missing": 3,
                                                "simulated": False}}  # fmt: skip
    # The parameter repeated means the same.
    r = api.get("/v1/presence/overlap?platforms=facebook&platforms=x&category=commune&panel=test")
    assert r.json()["present_all"] == 1
    # In 2013 nobody was on X.
    r = api.get("/v1/presence/overlap", params={"platforms": "facebook,x", "panel": PANEL,
                                                "at": "2013-05-15T00:00:00Z"})  # fmt: skip
    assert (r.json()["present_all"], r.json()["total"]) == (0, 5)
    # One platform: plain presence.
    r = api.get("/v1/presence/overlap", params={"platforms": "facebook", "panel": PANEL})
    assert (r.json()["present_all"], r.json()["total"]) == (3, 5)
