"""Bad parameters are refused with 422 and a message naming the parameter, the value and what is
allowed, before any query: these tests run without ClickHouse (an unmarked test cannot reach it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.common.settings import Settings

ALLOWED_PLATFORMS = "facebook, x, instagram, youtube, linkedin, tiktok, mastodon, bluesky, threads"


@pytest.fixture
def api() -> Iterator[TestClient]:
    settings = Settings(clickhouse_url="http://127.0.0.1:9", clickhouse_database="nowhere")
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "/v1/presence?platform=myspace",
            f"platform: unknown platform 'myspace'; allowed: {ALLOWED_PLATFORMS} (twitter is accepted as x)",
        ),
        ("/v1/presence", "platform: Field required"),
        (
            "/v1/presence?platform=x&category=city",
            "category: unknown category 'city'; allowed: commune, departement, region, epci",
        ),
        (
            "/v1/presence?platform=x&at=2013-01-01T00:00:00",
            "at: '2013-01-01T00:00:00' has no offset: add Z or ±HH:MM (a naive time is ambiguous)",
        ),
        (
            "/v1/presence?platform=x&at=yesterday",
            "at: 'yesterday' is not an RFC 3339 timestamp with an offset in 2000-2099 "
            "(e.g. 2013-01-01T09:00:00Z or 2013-01-01T10:00:00+01:00)",
        ),
        (
            "/v1/presence?platform=x&at=1999-12-31T00:00:00Z",
            "at: '1999-12-31T00:00:00Z' is not an RFC 3339 timestamp with an offset in 2000-2099 "
            "(e.g. 2013-01-01T09:00:00Z or 2013-01-01T10:00:00+01:00)",
        ),
        (
            "/v1/presence?platform=x&panel=no%20spaces",
            "panel: 'no spaces' is not a panel name (letters, digits, '.', '_' or '-', at most 64)",
        ),
        ("/v1/presence/series?platform=x&step=year", "step: unknown step 'year'; allowed: month, week, day"),
        (
            "/v1/presence/series?platform=x&from=2013-13-01T00:00:00Z",
            "from: '2013-13-01T00:00:00Z' is not an RFC 3339 timestamp with an offset in 2000-2099 "
            "(e.g. 2013-01-01T09:00:00Z or 2013-01-01T10:00:00+01:00)",
        ),
        (
            "/v1/presence/series?platform=x&format=xlsx",
            "format: unknown format 'xlsx'; allowed: json, csv, parquet",
        ),
        (
            "/v1/presence/overlap?platforms=facebook,myspace",
            f"platforms: unknown platform 'myspace'; allowed: {ALLOWED_PLATFORMS} (twitter is accepted as x)",
        ),
        ("/v1/presence/overlap?platforms=,", "platforms: name at least one platform, e.g. facebook,x"),
        ("/v1/rankings?platform=x&window=2d", "window: unknown window '2d'; allowed: 1d, 7d, 30d, 90d, 365d"),
        (
            "/v1/rankings?platform=x&metric=likes",
            "metric: unknown metric 'likes'; allowed: growth_abs, growth_pct, per_1000_inhabitants, followers",
        ),
        ("/v1/rankings?platform=x&by=region", "by: unknown by 'region'; allowed: entity, account"),
        ("/v1/rankings?platform=x&limit=501", "limit: Input should be less than or equal to 500"),
        ("/v1/rankings?platform=x&limit=0", "limit: Input should be greater than or equal to 1"),
        (
            "/v1/rankings?platform=x&limit=ten",
            "limit: Input should be a valid integer, unable to parse string as an integer",
        ),
        ("/v1/rankings?platform=x&region=Bretagne", "region: 'Bretagne' is not a code (e.g. 84 or REG:84)"),
        (
            "/v1/rankings?platform=x&departement=999999",
            "departement: '999999' is not a code (e.g. 38 or DEP:38)",
        ),
        (
            "/v1/scores?platform=orkut",
            f"platform: unknown platform 'orkut'; allowed: {ALLOWED_PLATFORMS} (twitter is accepted as x)",
        ),
        ("/v1/accounts/x:grenoble/history?limit=0", "limit: Input should be greater than or equal to 1"),
    ],
)
def test_bad_parameters(api: TestClient, url: str, message: str) -> None:
    r = api.get(url)
    assert r.status_code == 422, r.text
    assert r.json() == {"error": {"code": "invalid_request", "message": message}}


def test_every_problem_is_reported(api: TestClient) -> None:
    r = api.get("/v1/rankings?platform=myspace&window=2d&format=xml")
    message = r.json()["error"]["message"]
    assert [part.split(":")[0] for part in message.split("; allowed")[0:1]] == ["platform"]
    for name in ("platform:", "window:", "format:"):
        assert name in message


def test_malformed_ids_are_unknown(api: TestClient) -> None:
    r = api.get("/v1/entities/not-an-id")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    r = api.get("/v1/accounts/no-platform/history")
    assert r.status_code == 404
    assert r.json()["error"]["message"].startswith("unknown account: account_id 'no-platform' is not")


@pytest.mark.clickhouse  # it opens a client, to a port where nothing listens
def test_clickhouse_down_is_503(api: TestClient) -> None:
    r = api.get("/v1/presence?platform=facebook")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    assert r.json() == {"error": {"code": "service_unavailable",
                                  "message": "ClickHouse does not answer; try again in a few seconds"}}  # fmt: skip
