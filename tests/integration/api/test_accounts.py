"""GET /v1/accounts/{account_id}/history on the seeded data (seed.py)."""

from __future__ import annotations

import csv
import io

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from tests.integration.api.seed import Seeded

pytestmark = pytest.mark.clickhouse


def test_history(api: TestClient, seeded: Seeded) -> None:
    r = api.get("/v1/accounts/facebook:grenoble/history")
    assert r.status_code == 200, r.text
    body = r.json()
    assert {k: body[k] for k in ("account_id", "platform", "entity_id", "handle", "from", "to", "order",
                                 "truncated")} == {
        "account_id": "facebook:grenoble", "platform": "facebook", "entity_id": "COM:38185",
        "handle": "VilleDeGrenoble", "from": None, "to": None, "order": "newest_first", "truncated": False,
    }  # fmt: skip
    # Newest first: the four live snapshots, then May and April 2013.
    assert [i["followers"] for i in body["items"]] == [5300, 5200, 5100, 5000, 1300, 1000]
    assert body["items"][-1] == {
        "observed_at": "2013-04-10T10:00:00Z", "event_id": body["items"][-1]["event_id"], "followers": 1000,
        "following": None, "posts_total": None, "posts_30d": None, "interactions_30d": None, "replies_30d": None,
        "automated_posts_30d": None, "status": "active", "source": "import",
    }  # fmt: skip

    # [from, to): to is excluded.
    r = api.get("/v1/accounts/facebook:grenoble/history",
                params={"from": "2013-04-10T10:00:00Z", "to": "2013-05-10T10:00:00Z"})  # fmt: skip
    assert [i["followers"] for i in r.json()["items"]] == [1000]
    assert (r.json()["from"], r.json()["to"]) == ("2013-04-10T10:00:00Z", "2013-05-10T10:00:00Z")
    # Paging with limit and to.
    r = api.get("/v1/accounts/facebook:grenoble/history", params={"limit": 4})
    assert ([i["followers"] for i in r.json()["items"]], r.json()["truncated"]) == (
        [5300, 5200, 5100, 5000],
        True,
    )
    oldest = r.json()["items"][-1]["observed_at"]
    r = api.get("/v1/accounts/facebook:grenoble/history", params={"limit": 4, "to": oldest})
    assert ([i["followers"] for i in r.json()["items"]], r.json()["truncated"]) == ([1300, 1000], False)

    # The twitter alias and the case of handles.
    r = api.get("/v1/accounts/twitter:Grenoble/history")
    assert (r.json()["account_id"], r.json()["platform"], len(r.json()["items"])) == ("x:grenoble", "x", 2)
    # Registered, never observed: known, no snapshots.
    r = api.get("/v1/accounts/youtube:UCgrenoble/history")
    assert (r.status_code, r.json()["items"], r.json()["handle"]) == (200, [], "grenoble")


def test_history_errors(api: TestClient, seeded: Seeded) -> None:
    r = api.get("/v1/accounts/facebook:nobody/history")
    assert r.status_code == 404
    assert r.json() == {"error": {"code": "not_found", "message": "unknown account 'facebook:nobody'"}}
    r = api.get("/v1/accounts/myspace:grenoble/history")
    assert r.status_code == 404
    assert "unknown platform 'myspace'" in r.json()["error"]["message"]
    r = api.get("/v1/accounts/youtube:ucgrenoble/history")  # YouTube ids are case-sensitive
    assert r.status_code == 404
    r = api.get("/v1/accounts/facebook:grenoble/history", params={"from": "2014-01-01T00:00:00Z",
                                                                  "to": "2013-01-01T00:00:00Z"})  # fmt: skip
    assert r.status_code == 422
    assert r.json()["error"]["message"] == "from: must be before to"
    r = api.get("/v1/accounts/facebook:grenoble/history", params={"limit": 10_001})
    assert r.status_code == 422


def test_history_exports(api: TestClient, seeded: Seeded) -> None:
    r = api.get(
        "/v1/accounts/facebook:grenoble/history", params={"format": "csv", "to": "2014-01-01T00:00:00Z"}
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == (
        'attachment; filename="history_facebook-grenoble_20140101T000000Z.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(row["observed_at"], row["followers"], row["following"]) for row in rows] == [
        ("2013-05-10T10:00:00Z", "1300", ""), ("2013-04-10T10:00:00Z", "1000", "")
    ]  # fmt: skip

    r = api.get("/v1/accounts/facebook:grenoble/history", params={"format": "parquet"})
    assert r.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(r.content))
    assert table.num_rows == 6
    assert table.column("followers").to_pylist() == [5300, 5200, 5100, 5000, 1300, 1000]
    assert table.column("posts_30d").to_pylist() == [None] * 6
    assert table.column("status").to_pylist() == ["active"] * 6
