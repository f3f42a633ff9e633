"""GET /v1/reports/barometer on the seeded data (seed.py): the report of May 2013, as of its last
millisecond, agrees with /v1/presence, /v1/presence/overlap, /v1/rankings and /v1/scores asked at the
same instant; CSV and HTML renderings; month validation."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.common.clickhouse import make_client
from services.common.names import Category, Platform
from services.common.reference import entities_by_id
from services.common.registry import user_version, write_entities
from tests.integration.api.seed import PANEL, Seeded

pytestmark = pytest.mark.clickhouse

END = "2013-05-31T23:59:59.999000Z"


def report(api: TestClient, **params: str) -> dict[str, Any]:
    r = api.get("/v1/reports/barometer", params={"month": "2013-05", "panel": PANEL, **params})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_barometer_json(api: TestClient, seeded: Seeded) -> None:
    body = report(api)
    assert {k: body[k] for k in ("month", "panel", "at", "partial", "window", "formula")} == {
        "month": "2013-05", "panel": PANEL, "at": END, "partial": False, "window": "30d", "formula": "score/1",
    }  # fmt: skip
    assert len(body["presence"]) == len(Category) * len(Platform)
    assert len(body["overlap"]) == len(Category)
    assert len(body["rankings"]) == len(Category) * len(Platform) * 2
    assert len(body["scores"]) == len(Category) * len(Platform)

    presence = {(p["category"], p["platform"]): p for p in body["presence"]}
    # Marseille's account was deleted on 2013-05-10: Grenoble, Lyon and Paris are present.
    assert presence["commune", "facebook"] == {"category": "commune", "platform": "facebook", "present": 3,
                                               "total": 4, "rate": 0.75}  # fmt: skip
    for (category, platform), p in presence.items():
        if (category, platform) in {
            ("commune", "facebook"),
            ("departement", "facebook"),
            ("commune", "instagram"),
        }:
            r = api.get("/v1/presence", params={"platform": platform, "category": category, "panel": PANEL,
                                                "at": END})  # fmt: skip
            assert (r.json()["present"], r.json()["total"], r.json()["rate"]) == (
                p["present"],
                p["total"],
                p["rate"],
            )
    overlap = {o["category"]: o for o in body["overlap"]}
    r = api.get("/v1/presence/overlap", params={"platforms": "facebook,x", "category": "commune", "panel": PANEL,
                                                "at": END})  # fmt: skip
    assert overlap["commune"] | {"category": None} == {"category": None, "platforms": ["facebook", "x"],
                                                       "present_all": r.json()["present_all"], "total": 4,
                                                       "rate": r.json()["rate"]}  # fmt: skip
    assert overlap["commune"]["present_all"] == 0  # nobody on X in 2013

    rankings = {(g["category"], g["platform"], g["metric"]): g["items"] for g in body["rankings"]}
    # 30 days before the month's end, the April points are in force: Grenoble 1000 -> 1300 + 100;
    # Marseille's deleted account counts 0 followers.
    assert [(i["entity_id"], i["value"]) for i in rankings["commune", "facebook", "growth_abs"]] == [
        ("COM:38185", 400.0), ("COM:69123", 100.0), ("COM:75056", 50.0), ("COM:13055", -500.0)
    ]  # fmt: skip
    for metric in ("growth_abs", "growth_pct"):
        r = api.get("/v1/rankings", params={"platform": "facebook", "category": "commune", "panel": PANEL,
                                            "metric": metric, "window": "30d", "at": END, "limit": 5})  # fmt: skip
        assert rankings["commune", "facebook", metric] == r.json()["items"]
    assert rankings["commune", "facebook", "growth_pct"][0]["value"] == pytest.approx(40.0)
    assert rankings["departement", "facebook", "growth_abs"] == []  # the Isère has no April point

    scores = {(s["category"], s["platform"]): s for s in body["scores"]}
    # instagram: 5.0 and 1.0 at the end of May; 5.0 and 1.25 at the end of April; nothing in 2012.
    assert scores["commune", "instagram"] == {
        "category": "commune", "platform": "instagram", "score": 3.0, "count": 2, "score_previous_month": 3.125,
        "change_month": -0.125, "score_previous_year": None, "change_year": None,
    }  # fmt: skip
    for at, expected in ((END, 3.0), ("2013-04-30T23:59:59.999Z", 3.125)):
        r = api.get(
            "/v1/scores", params={"platform": "instagram", "category": "commune", "panel": PANEL, "at": at}
        )
        assert r.json()["score"] == expected
    assert scores["commune", "facebook"]["score"] is None

    # Without a panel: every entity of each category.
    r = api.get("/v1/reports/barometer", params={"month": "2013-05"})
    assert r.status_code == 200, r.text
    assert r.json()["panel"] is None
    whole = {(p["category"], p["platform"]): p for p in r.json()["presence"]}
    assert whole["commune", "facebook"]["present"] == 3
    assert whole["commune", "facebook"]["total"] > 4


def test_barometer_csv_and_html(api: TestClient, seeded: Seeded) -> None:
    r = api.get("/v1/reports/barometer", params={"month": "2013-05", "panel": PANEL, "format": "csv"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="barometre_2013-05_test.csv"'
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert list(rows[0]) == ["section", "category", "platform", "metric", "value", "rank", "entity_id", "name",
                             "formula"]  # fmt: skip
    assert {row["section"] for row in rows} == {"presence", "overlap", "rankings", "scores"}
    by_key = {
        (row["section"], row["category"], row["platform"], row["metric"], row["rank"]): row for row in rows
    }
    assert by_key["presence", "commune", "facebook", "rate", ""]["value"] == "0.75"
    assert by_key["overlap", "commune", "facebook+x", "total", ""]["value"] == "4"
    top = by_key["rankings", "commune", "facebook", "growth_abs", "1"]
    assert (top["entity_id"], top["name"], float(top["value"])) == ("COM:38185", "Grenoble", 400.0)
    change = by_key["scores", "commune", "instagram", "change_month", ""]
    assert (float(change["value"]), change["formula"]) == (-0.125, "score/1")

    r = api.get("/v1/reports/barometer", params={"month": "2013-05", "panel": PANEL, "format": "html"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "<title>Baromètre des collectivités sur les réseaux sociaux — mai 2013</title>" in page
    assert "@media print" in page
    assert page.count("<table>") >= 4 + 1 + 2 + 1  # presence per category, overlap, 2 rankings, scores
    assert "<td>Grenoble</td>" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_barometer_escapes_names(api: TestClient, seeded: Seeded) -> None:
    name = "Grenoble <script>alert('x')</script> & Co"
    client = make_client(seeded.settings)
    grenoble = replace(entities_by_id()["COM:38185"], name=name)
    write_entities(client, seeded.settings.clickhouse_database, [grenoble], source="import",
                   version=user_version())  # fmt: skip
    client.close()
    page = api.get(
        "/v1/reports/barometer", params={"month": "2013-05", "panel": PANEL, "format": "html"}
    ).text
    assert "<script>" not in page
    assert "Grenoble &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; Co" in page


def test_barometer_validation(api: TestClient, seeded: Seeded) -> None:
    current = datetime.now(UTC)
    for month, message in (
        ("2013-13", "month: '2013-13' is not a month; expected YYYY-MM in 2000-2099, e.g. 2013-05"),
        ("2013-5", "month: '2013-5' is not a month; expected YYYY-MM in 2000-2099, e.g. 2013-05"),
        ("1999-12", "month: '1999-12' is not a month; expected YYYY-MM in 2000-2099, e.g. 2013-05"),
        # Arabic-Indic digits: Python's \d takes them, the declared pattern ([0-9]) does not.
        ("\u0662\u0660\u0661\u0663-\u0660\u0665",
         "month: '\u0662\u0660\u0661\u0663-\u0660\u0665' is not a month; expected YYYY-MM in 2000-2099, e.g. 2013-05"),
    ):  # fmt: skip
        r = api.get("/v1/reports/barometer", params={"month": month})
        assert r.status_code == 422, month
        assert r.json()["error"] == {"code": "invalid_request", "message": message}
    # A month that has not begun has no report yet.
    r = api.get("/v1/reports/barometer", params={"month": f"{current.year + 1}-01"})
    assert r.status_code == 404
    assert r.json()["error"] == {"code": "not_found",
                                 "message": f"no report for {current.year + 1}-01 yet: the latest is {current:%Y-%m}"}  # fmt: skip
    r = api.get("/v1/reports/barometer")
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("month:")
    r = api.get("/v1/reports/barometer", params={"month": "2013-05", "panel": "nope"})
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "panel: unknown panel 'nope'; known panels: test"
    r = api.get("/v1/reports/barometer", params={"month": "2013-05", "format": "pdf"})
    assert r.status_code == 422 and "unknown format 'pdf'" in r.json()["error"]["message"]

    # The current month: figures as of now.
    body = report(api, month=f"{current:%Y-%m}")
    assert body["partial"] is True
    presence = {(p["category"], p["platform"]): p["present"] for p in body["presence"]}
    assert presence["commune", "facebook"] == 3
