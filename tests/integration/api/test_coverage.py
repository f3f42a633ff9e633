"""GET /v1/coverage and the ``coverage`` of presence and ranking answers, on a small world built by hand:
accounts of each origin and review state, observed recently, long ago or never, some failing to poll.

The panel ``cov``: six communes, the Isère and Auvergne-Rhône-Alpes.

  facebook:a1   COM:38185 Grenoble   import, verified    2013-05-10, now-1h          polled fine
  facebook:a2   COM:38185 Grenoble   discover, candidate never observed              not_found x3
  facebook:b1   COM:69123 Lyon       discover, verified  2013-01-10, now-60d (stale) rate_limited x1
  facebook:c1   COM:75056 Paris      poll, verified      never observed              not_found x2
  facebook:d1   COM:13055 Marseille  import, rejected    now-1h (observed, but not the city's: left out)
  facebook:e1   COM:31555 Toulouse   not registered      now-2d (pushed with an entity_id)
  facebook:f1   COM:33063 Bordeaux   import, deleted     now-1h (left out)
  facebook:dep  DEP:38               simulator           now-1h, source simulator
  x:a           COM:38185 Grenoble   push, gone          now-1h (left out)
  x:b           COM:69123 Lyon       import, verified    now-1h
  mastodon:sim  COM:38185 Grenoble   not registered      now-1h, source simulator
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from fastapi.testclient import TestClient

from services.api import coverage
from services.api.app import create_app
from services.common.clickhouse import make_client
from services.common.names import AccountOrigin, AccountState, Platform
from services.common.reference import AccountRecord, PanelMember
from services.common.registry import user_version, write_accounts, write_panel
from services.common.settings import Settings
from tests.integration.api.seed import snapshot, write
from tests.integration.api.test_openapi import spec

PANEL = "cov"
COMMUNES = ["COM:38185", "COM:69123", "COM:75056", "COM:13055", "COM:31555", "COM:33063"]
AT = "2013-05-15T00:00:00Z"


def register(
    client: Any, db: str, account_id: str, entity_id: str, origin: AccountOrigin, state: AccountState
) -> None:
    platform = Platform(account_id.partition(":")[0])
    record = AccountRecord(entity_id, platform, account_id, account_id.partition(":")[2], None)
    write_accounts(client, db, [record], user_version(), origin=origin, state=state)


def build(settings: Settings, now: datetime) -> None:
    client = make_client(settings)
    db = settings.clickhouse_database
    write_panel(client, db, [PanelMember(e, PANEL) for e in [*COMMUNES, "DEP:38", "REG:84"]], user_version())
    imp, disc, poll, sim, push = (AccountOrigin.IMPORT, AccountOrigin.DISCOVER, AccountOrigin.POLL,
                                  AccountOrigin.SIMULATOR, AccountOrigin.PUSH)  # fmt: skip
    ok, cand = AccountState.VERIFIED, AccountState.CANDIDATE
    register(client, db, "facebook:a1", "COM:38185", imp, ok)
    register(client, db, "facebook:a2", "COM:38185", disc, cand)
    register(client, db, "facebook:b1", "COM:69123", disc, ok)
    register(client, db, "facebook:c1", "COM:75056", poll, ok)
    register(client, db, "facebook:d1", "COM:13055", imp, AccountState.REJECTED)
    register(client, db, "facebook:f1", "COM:33063", imp, ok)
    register(client, db, "facebook:dep", "DEP:38", sim, ok)
    register(client, db, "x:a", "COM:38185", push, AccountState.GONE)
    register(client, db, "x:b", "COM:69123", imp, ok)
    # Bordeaux's account retired by a later import.
    client.insert(
        f"{db}.accounts",
        [["facebook:f1", "facebook", "COM:33063", "f1", None, 1, "import", "verified", user_version()]],
        column_names=["account_id", "platform", "entity_id", "handle", "url", "deleted", "origin", "state",
                      "version"],
    )  # fmt: skip
    # The poller's memory: a1 read fine, three accounts failing.
    t = now - timedelta(minutes=30)
    state_rows = [
        ["facebook", "facebook:a1", t, 3600, t, t, "", "", 0],
        ["facebook", "facebook:a2", t, 3600, t - timedelta(minutes=1), None, "not_found", "404 page gone", 3],
        ["facebook", "facebook:b1", t, 3600, t - timedelta(minutes=5), t - timedelta(days=59), "rate_limited",
         "429 Retry-After 60", 1],
        ["facebook", "facebook:c1", t, 3600, t - timedelta(minutes=9), None, "not_found", "404 no such page", 2],
    ]  # fmt: skip
    client.insert(
        f"{db}.poll_state",
        [[*row, user_version()] for row in state_rows],
        column_names=["platform", "account_id", "next_due", "cadence_s", "last_attempt_at", "last_success_at",
                      "last_reason", "last_error", "failures", "version"],
    )  # fmt: skip
    client.close()
    h, d = timedelta(hours=1), timedelta(days=1)
    past = [
        snapshot("facebook:b1", "COM:69123", datetime(2013, 1, 10, 10, tzinfo=UTC), 300),
        snapshot("facebook:a1", "COM:38185", datetime(2013, 5, 10, 10, tzinfo=UTC), 1000),
    ]
    recent = [
        snapshot("facebook:b1", "COM:69123", now - 60 * d, 350),
        snapshot("facebook:a1", "COM:38185", now - h, 1500),
        snapshot("facebook:d1", "COM:13055", now - h, 90),
        snapshot("facebook:e1", "COM:31555", now - 2 * d, 400, source="push"),
        snapshot("facebook:f1", "COM:33063", now - h, 70),
        snapshot("facebook:dep", "DEP:38", now - h, 5000, source="simulator"),
        snapshot("twitter:a", "COM:38185", now - h, 10),
        snapshot("twitter:b", "COM:69123", now - h, 20),
        snapshot("mastodon:sim", "COM:38185", now - h, 30, source="simulator"),
    ]
    write(settings, [past, recent])


@pytest.fixture
def api(app_settings: Settings) -> Iterator[TestClient]:
    build(app_settings, datetime.now(UTC).replace(microsecond=0))
    with TestClient(create_app(app_settings)) as client:
        yield client


def counts(with_account: int, observed: int, stale: int, never: int, accounts: int, acc_observed: int,
           acc_stale: int, acc_never: int, failing: int | None) -> dict[str, Any]:  # fmt: skip
    return {"with_account": with_account, "observed": observed, "stale": stale, "never_observed": never,
            "accounts": accounts, "accounts_observed": acc_observed, "accounts_stale": acc_stale,
            "accounts_never_observed": acc_never, "accounts_failing": failing}  # fmt: skip


@pytest.mark.clickhouse
def test_coverage_live(api: TestClient) -> None:
    r = api.get("/v1/coverage", params={"platform": "facebook", "panel": PANEL})
    assert r.status_code == 200, r.text
    body = r.json()
    assert {k: body[k] for k in ("platform", "category", "panel", "staleness_days", "simulated", "sources")} == {
        "platform": "facebook", "category": None, "panel": PANEL, "staleness_days": 45, "simulated": True,
        "sources": ["simulator", "import", "poll", "discover", "unregistered"],
    }  # fmt: skip
    assert body["at"].endswith("Z")
    rows = {row["category"]: row for row in body["items"]}
    assert list(rows) == ["commune", "departement", "region", "epci"]
    commune = rows["commune"]
    failures = commune.pop("failures")
    by_origin = {o.pop("origin"): o for o in commune.pop("by_origin")}
    # Grenoble and Toulouse observed, Lyon stale, Paris never; Marseille (rejected) and Bordeaux (deleted)
    # have no known account.
    assert commune == {"platform": "facebook", "category": "commune", "entities": 6, "without_account": 2,
                       **counts(4, 2, 1, 1, 5, 2, 1, 2, 3)}  # fmt: skip
    assert by_origin == {
        "import": counts(1, 1, 0, 0, 1, 1, 0, 0, 0),
        "discover": counts(2, 0, 1, 1, 2, 0, 1, 1, 2),
        "poll": counts(1, 0, 0, 1, 1, 0, 0, 1, 1),
        "unregistered": counts(1, 1, 0, 0, 1, 1, 0, 0, 0),
    }
    assert [(f["reason"], f["accounts"]) for f in failures] == [("not_found", 2), ("rate_limited", 1)]
    # Newest attempt first.
    assert [
        (e["account_id"], e["entity_id"], e["detail"], e["failures"]) for e in failures[0]["examples"]
    ] == [
        ("facebook:a2", "COM:38185", "404 page gone", 3),
        ("facebook:c1", "COM:75056", "404 no such page", 2),
    ]
    assert failures[0]["examples"][0]["at"].endswith("Z")
    dep = rows["departement"]
    assert (dep["entities"], dep["observed"], dep["without_account"], dep["failures"]) == (1, 1, 0, [])
    assert [o["origin"] for o in dep["by_origin"]] == ["simulator"]
    assert (rows["region"]["entities"], rows["region"]["without_account"], rows["region"]["by_origin"]) == (
        1,
        1,
        [],
    )
    assert (rows["epci"]["entities"], rows["epci"]["with_account"]) == (0, 0)

    # Communes only: no simulated account in scope.
    r = api.get("/v1/coverage", params={"platform": "facebook", "category": "commune", "panel": PANEL})
    assert (r.json()["simulated"], r.json()["sources"]) == (
        False,
        ["import", "poll", "discover", "unregistered"],
    )
    assert len(r.json()["items"]) == 1

    # X: the gone account is left out, Lyon's is observed.
    r = api.get("/v1/coverage", params={"platform": "twitter", "category": "commune", "panel": PANEL})
    (x,) = r.json()["items"]
    assert (x["platform"], x["with_account"], x["observed"], x["without_account"], x["accounts"]) == (
        "x",
        1,
        1,
        5,
        1,
    )

    # An unregistered account whose snapshots came from the simulator: simulated too.
    r = api.get("/v1/coverage", params={"platform": "mastodon", "category": "commune", "panel": PANEL})
    assert (r.json()["simulated"], r.json()["sources"], r.json()["items"][0]["observed"]) == (
        True, ["unregistered"], 1)  # fmt: skip

    # Every platform and category of the whole registry: 9 x 4 rows; the registry's communes in scope.
    r = api.get("/v1/coverage")
    body = r.json()
    assert len(body["items"]) == 36
    assert body["simulated"] is True
    facebook_communes = next(
        i for i in body["items"] if (i["platform"], i["category"]) == ("facebook", "commune")
    )
    assert facebook_communes["entities"] > 30_000
    assert (facebook_communes["with_account"], facebook_communes["observed"]) == (4, 2)


@pytest.mark.clickhouse
def test_coverage_as_of_a_past_instant(api: TestClient) -> None:
    r = api.get(
        "/v1/coverage", params={"platform": "facebook", "category": "commune", "panel": PANEL, "at": AT}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["at"], body["sources"], body["simulated"]) == (AT, ["import", "poll", "discover"], False)
    (row,) = body["items"]
    by_origin = {o.pop("origin"): o for o in row.pop("by_origin")}
    # Grenoble observed on 2013-05-10, Lyon last on 2013-01-10 (stale), Paris never; Toulouse's account
    # was first observed long after: no known account then.
    assert row == {"platform": "facebook", "category": "commune", "entities": 6, "without_account": 3,
                   "failures": None, **counts(3, 1, 1, 1, 4, 1, 1, 2, None)}  # fmt: skip
    assert by_origin == {
        "import": counts(1, 1, 0, 0, 1, 1, 0, 0, None),
        "discover": counts(2, 0, 1, 1, 2, 0, 1, 1, None),
        "poll": counts(1, 0, 0, 1, 1, 0, 0, 1, None),
    }
    # The simulator's département account is registered: in scope whatever the instant.
    r = api.get(
        "/v1/coverage", params={"platform": "facebook", "category": "departement", "panel": PANEL, "at": AT}
    )
    (dep,) = r.json()["items"]
    assert (r.json()["simulated"], dep["with_account"], dep["observed"], dep["never_observed"]) == (
        True,
        1,
        0,
        1,
    )


@pytest.mark.clickhouse
def test_presence_and_rankings_carry_their_coverage(api: TestClient) -> None:
    communes = {"category": "commune", "panel": PANEL}
    live = {"observed": 2, "stale": 1, "missing": 3, "simulated": False}
    r = api.get("/v1/presence", params={"platform": "facebook", **communes})
    assert r.json()["coverage"] == live
    r = api.get("/v1/rankings", params={"platform": "facebook", "metric": "followers", **communes})
    assert r.json()["coverage"] == live
    r = api.get(
        "/v1/rankings", params={"platform": "facebook", "metric": "followers", "by": "account", **communes}
    )
    assert r.json()["coverage"] == live
    # As of 2013-05-15: Grenoble observed, Lyon stale; Paris never observed, the other three without account.
    past = {"observed": 1, "stale": 1, "missing": 4, "simulated": False}
    assert (
        api.get("/v1/presence", params={"platform": "facebook", "at": AT, **communes}).json()["coverage"]
        == past
    )
    r = api.get("/v1/rankings", params={"platform": "facebook", "metric": "followers", "at": AT, **communes})
    assert r.json()["coverage"] == past
    # Overlap: covered as on the least covered platform. Grenoble's X account is gone: missing.
    r = api.get("/v1/presence/overlap", params={"platforms": "facebook,x", **communes})
    assert r.json()["coverage"] == {"observed": 0, "stale": 1, "missing": 5, "simulated": False}
    # The simulator's data say so.
    r = api.get("/v1/presence", params={"platform": "facebook", "category": "departement", "panel": PANEL})
    assert r.json()["coverage"] == {"observed": 1, "stale": 0, "missing": 0, "simulated": True}
    r = api.get("/v1/rankings", params={"platform": "mastodon", "metric": "followers", **communes})
    assert r.json()["coverage"] == {"observed": 1, "stale": 0, "missing": 5, "simulated": True}
    # Region and département narrow a ranking's scope, and its coverage with it.
    r = api.get("/v1/rankings", params={"platform": "facebook", "metric": "followers", "departement": "38",
                                        **communes})  # fmt: skip
    assert r.json()["coverage"] == {"observed": 1, "stale": 0, "missing": 0, "simulated": False}


@pytest.mark.clickhouse
def test_unknown_panel_is_refused(api: TestClient) -> None:
    r = api.get("/v1/coverage", params={"panel": "nope"})
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "panel: unknown panel 'nope'; known panels: cov"


def test_origins_name_every_account_origin() -> None:
    assert (*(o.value for o in AccountOrigin), coverage.UNREGISTERED) == coverage.ORIGINS
    assert get_args(coverage.Origin) == coverage.ORIGINS


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("platform=myspace", "platform: unknown platform 'myspace'; allowed: facebook, x, instagram, youtube, "
         "linkedin, tiktok, mastodon, bluesky, threads (twitter is accepted as x)"),
        ("category=city", "category: unknown category 'city'; allowed: commune, departement, region, epci"),
        ("at=yesterday", "at: 'yesterday' is not an RFC 3339 timestamp with an offset in 2000-2099 "
         "(e.g. 2013-01-01T09:00:00Z or 2013-01-01T10:00:00+01:00)"),
        ("at=1999-12-31T00:00:00Z", "at: '1999-12-31T00:00:00Z' is not an RFC 3339 timestamp with an offset in "
         "2000-2099 (e.g. 2013-01-01T09:00:00Z or 2013-01-01T10:00:00+01:00)"),
        ("panel=no%20spaces", "panel: 'no spaces' is not a panel name (letters, digits, '.', '_' or '-', at most 64)"),
    ],
)  # fmt: skip
def test_bad_parameters_are_refused_before_any_query(query: str, message: str) -> None:
    settings = Settings(clickhouse_url="http://127.0.0.1:9", clickhouse_database="nowhere")
    with TestClient(create_app(settings)) as client:
        r = client.get("/v1/coverage?" + query)
    assert r.status_code == 422
    assert r.json() == {"error": {"code": "invalid_request", "message": message}}


def test_openapi_declares_coverage() -> None:
    doc = spec()
    get = doc["paths"]["/v1/coverage"]["get"]
    assert get["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CoverageOut"
    }
    assert get["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    assert {p["name"]: p["required"] for p in get["parameters"]} == {
        "platform": False, "category": False, "at": False, "panel": False,
    }  # fmt: skip
    schemas = doc["components"]["schemas"]
    assert schemas["CoverageOut"]["examples"]
    row = schemas["CoverageRow"]["properties"]
    assert {"entities", "without_account", "with_account", "observed", "stale", "never_observed",
            "accounts_failing", "by_origin", "failures"} <= set(row)  # fmt: skip
    origin = schemas["OriginCoverage"]["properties"]["origin"]
    assert origin["enum"] == list(coverage.ORIGINS)
    # Presence, overlap and rankings answers declare their coverage.
    for model in ("PresenceOut", "OverlapOut", "RankingsOut"):
        assert schemas[model]["properties"]["coverage"]["$ref"] == "#/components/schemas/FigureCoverage"
        assert "coverage" in schemas[model]["required"]
        assert "coverage" in schemas[model]["examples"][0]
    assert set(schemas["FigureCoverage"]["properties"]) == {"observed", "stale", "missing", "simulated"}
