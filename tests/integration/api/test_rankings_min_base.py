"""Relative rankings need a minimum base (docs/SCORING.md, "Minimum base"): a commune going from 1 to
6 followers (+500 %) does not lead growth_pct, a village of 270 inhabitants does not lead
per_1000_inhabitants; the minimums are configurable, can be lifted per request, and are stated in the
answer of /v1/rankings and in the monthly report. Against the ClickHouse endpoint, on seed.py's data
plus two small communes written by the real Processor and sink."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.common.clickhouse import make_client
from services.common.events import AccountSnapshot
from services.common.reference import PanelMember, entities_by_id
from services.common.registry import user_version, write_panel
from services.common.settings import Settings
from services.scoring.processor import Processor
from services.scoring.sink import ClickHouseSink
from tests.integration.api.seed import APRIL, MAY, Seeded, snapshot

pytestmark = pytest.mark.clickhouse

PANEL = "petites"
TOWN = "COM:01014"  # Arbent, 3,555 inhabitants: 1 -> 6 followers
VILLAGE = "COM:01002"  # L'Abergement-de-Varey, 270 inhabitants: 1,500 -> 1,950 followers
GRENOBLE, LYON = "COM:38185", "COM:69123"
DEFAULT_BASE = {"followers": 1000, "population": 2000}
END = "2013-05-31T23:59:59.999Z"


def small_communes(seeded: Seeded) -> list[AccountSnapshot]:
    d, h = timedelta(days=1), timedelta(hours=1)
    now = seeded.now
    return [
        snapshot("facebook:arbent", TOWN, APRIL, 1),
        snapshot("facebook:arbent", TOWN, MAY, 6),
        snapshot("facebook:arbent", TOWN, now - 31 * d, 1),
        snapshot("facebook:arbent", TOWN, now - h, 6),
        snapshot("facebook:abergement", VILLAGE, APRIL, 1500),
        snapshot("facebook:abergement", VILLAGE, MAY, 1950),
        snapshot("facebook:abergement", VILLAGE, now - 31 * d, 1500),
        snapshot("facebook:abergement", VILLAGE, now - h, 1950),
    ]


@pytest.fixture
def small(seeded: Seeded) -> Seeded:
    settings = seeded.settings
    client = make_client(settings)
    members = [PanelMember(e, PANEL) for e in (TOWN, VILLAGE, GRENOBLE, LYON)]
    write_panel(client, settings.clickhouse_database, members, user_version())
    client.close()
    sink = ClickHouseSink(lambda: make_client(settings), settings.clickhouse_database)
    out = Processor(settings, fetch_history=sink.fetch_history).process(small_communes(seeded), {})
    sink.write(out.tables, {0: (1_000, 1_000)}, out.after)  # offsets of their own: not deduplicated
    return seeded


@pytest.fixture
def api_small(small: Seeded) -> Iterator[TestClient]:
    with TestClient(create_app(small.settings)) as client:
        yield client


def rankings(api: TestClient, **params: Any) -> dict[str, Any]:
    r = api.get("/v1/rankings", params={"platform": "facebook", "panel": PANEL, **params})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [item["entity_id"] for item in body["items"]]


def test_the_populations_the_test_relies_on() -> None:
    entities = entities_by_id()
    assert (entities[TOWN].population or 0) >= 2000
    assert 0 < (entities[VILLAGE].population or 0) < 2000


def test_growth_pct_needs_a_minimum_base(api_small: TestClient) -> None:
    # Live: Arbent +500 % (1 -> 6) and the village +30 % would lead; neither is ranked by default.
    body = rankings(api_small, metric="growth_pct")
    assert ids(body) == [GRENOBLE, LYON]
    assert body["items"][0]["value"] == pytest.approx(20.0)
    assert body["min_base"] == DEFAULT_BASE
    # Lifted per request, each minimum in turn.
    every = rankings(api_small, metric="growth_pct", min_followers=0, min_population=0)
    assert ids(every) == [TOWN, VILLAGE, GRENOBLE, LYON]
    assert every["items"][0]["value"] == pytest.approx(500.0)
    assert every["min_base"] == {"followers": 0, "population": 0}
    assert ids(rankings(api_small, metric="growth_pct", min_followers=0)) == [TOWN, GRENOBLE, LYON]
    assert ids(rankings(api_small, metric="growth_pct", min_population=0)) == [VILLAGE, GRENOBLE, LYON]
    # The base is the followers at the window's start: Grenoble had 5,000, Lyon 9,000.
    assert ids(rankings(api_small, metric="growth_pct", min_followers=5001)) == [LYON]
    # As of an instant, from the daily points: the same rule (Grenoble 1,000 -> 1,400, Lyon 2,000 -> 2,100).
    at = rankings(api_small, metric="growth_pct", at=END)
    assert [(i["entity_id"], i["value"]) for i in at["items"]] == [
        (GRENOBLE, pytest.approx(40.0)),
        (LYON, pytest.approx(5.0)),
    ]
    assert at["min_base"] == DEFAULT_BASE
    assert ids(rankings(api_small, metric="growth_pct", at=END, min_followers=0))[0] == TOWN
    # By account: the account's own followers at the window's start (Grenoble's tourism office has
    # no baseline; its city account 5,000 -> 5,300).
    accounts = rankings(api_small, metric="growth_pct", by="account")
    assert [i["account_id"] for i in accounts["items"]] == ["facebook:grenoble", "facebook:lyon"]


def test_per_1000_inhabitants_needs_a_minimum_population(api_small: TestClient) -> None:
    body = rankings(api_small, metric="per_1000_inhabitants")
    assert VILLAGE not in ids(body)
    assert TOWN in ids(body)  # 3,555 inhabitants: ranked, however few followers
    assert body["min_base"] == {"followers": None, "population": 2000}
    every = rankings(api_small, metric="per_1000_inhabitants", min_population=0)
    assert every["items"][0]["entity_id"] == VILLAGE
    assert every["items"][0]["value"] == pytest.approx(1_950_000 / 270)


def test_absolute_rankings_have_no_minimum(api_small: TestClient) -> None:
    for metric in ("growth_abs", "followers"):
        body = rankings(api_small, metric=metric)
        assert body["min_base"] is None
        assert VILLAGE in ids(body), metric
    # growth_abs of Arbent: +5, ranked last but ranked.
    assert ids(rankings(api_small, metric="growth_abs"))[-1] == TOWN


def test_minimums_are_settings(small: Seeded) -> None:
    settings: Settings = small.settings.model_copy(
        update={"ranking_min_followers": 1, "ranking_min_population": 300}
    )
    with TestClient(create_app(settings)) as api:
        body = rankings(api, metric="growth_pct")
        assert ids(body) == [TOWN, GRENOBLE, LYON]  # the village: 270 inhabitants < 300
        assert body["min_base"] == {"followers": 1, "population": 300}
        report = api.get("/v1/reports/barometer", params={"month": "2013-05", "panel": PANEL}).json()
        pct = next(
            r for r in report["rankings"]
            if (r["category"], r["platform"], r["metric"]) == ("commune", "facebook", "growth_pct")
        )  # fmt: skip
        assert pct["min_base"] == {"followers": 1, "population": 300}
        assert pct["items"][0]["entity_id"] == TOWN


def test_bad_minimums_are_clear_errors(api_small: TestClient) -> None:
    for params in ({"min_followers": -1}, {"min_population": "many"}, {"min_followers": 10**12}):
        r = api_small.get("/v1/rankings", params={"platform": "facebook", "metric": "growth_pct", **params})
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] and next(iter(params)) in error["message"]


def test_the_report_states_its_minimum_base(api_small: TestClient) -> None:
    r = api_small.get("/v1/reports/barometer", params={"month": "2013-05", "panel": PANEL})
    assert r.status_code == 200, r.text
    groups = {(g["category"], g["platform"], g["metric"]): g for g in r.json()["rankings"]}
    pct = groups["commune", "facebook", "growth_pct"]
    assert [(i["entity_id"], i["value"]) for i in pct["items"]] == [
        (GRENOBLE, pytest.approx(40.0)),
        (LYON, pytest.approx(5.0)),
    ]
    assert pct["min_base"] == DEFAULT_BASE
    assert groups["commune", "facebook", "growth_abs"]["min_base"] is None
    assert TOWN in [i["entity_id"] for i in groups["commune", "facebook", "growth_abs"]["items"]]
    # The same as /v1/rankings with the report's instant.
    same = rankings(api_small, metric="growth_pct", at=r.json()["at"], limit=5, category="commune")
    assert same["items"] == pct["items"]
    page = api_small.get(
        "/v1/reports/barometer", params={"month": "2013-05", "panel": PANEL, "format": "html"}
    ).text
    assert "Arbent" not in page.split("progression en %")[1].split("</table>")[0]
    assert (
        "Classement limité aux collectivités ayant au moins 1\u202f000 abonnés au début de la période et au moins 2\u202f000 habitants."
        in page
    )
