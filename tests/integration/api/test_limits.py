"""The api's limits against the real ClickHouse engine: body size, the token checked before a write's
body, rates, the SSE cap, the query limits (a real query cut by max_execution_time, a real answer over
max_result_rows) answered 503/504 with Retry-After, never 500; and a real CSV export against formula
injection."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.common.settings import Settings
from tests.integration.api.alerting import SseReader, serve
from tests.integration.api.seed import history_2013, live, snapshot, write

pytestmark = pytest.mark.clickhouse

BOOTSTRAP = {"Authorization": "Bearer test-bootstrap-token-0123456789abcdef"}
SILENCE = {"platform": "twitter", "type": "audience_drop", "duration": "2h", "comment": "x"}


def client(settings: Settings, **limits: object) -> TestClient:
    return TestClient(create_app(settings.model_copy(update={"webhooks_enabled": False, **limits})))


def test_a_body_over_the_api_limit_is_413_chunked_too(app_settings: Settings) -> None:
    with client(app_settings, api_max_body_bytes=2000) as api:
        big = {**SILENCE, "comment": "x" * 3000}
        r = api.post("/v1/silences", json=big, headers=BOOTSTRAP)
        assert (r.status_code, r.json()["error"]["code"]) == (413, "payload_too_large")
        chunks = iter([b'{"comment": "', b"x" * 1500, b"x" * 1500, b'"}'])
        r = api.post(
            "/v1/silences", content=chunks, headers={**BOOTSTRAP, "Content-Type": "application/json"}
        )
        assert (r.status_code, r.json()["error"]["code"]) == (413, "payload_too_large")
        assert api.post("/v1/silences", json=SILENCE, headers=BOOTSTRAP).status_code == 201


def test_the_default_body_limit_is_small(app_settings: Settings) -> None:
    with client(app_settings) as api:
        r = api.post("/v1/silences", content=b"x" * (64 * 1024 + 1), headers=BOOTSTRAP)
        assert r.status_code == 413


def test_a_write_is_refused_before_its_body_is_parsed(app_settings: Settings) -> None:
    # Today's FastAPI reads and parses the JSON body before the auth dependency runs: malformed JSON
    # without a token would be a 422 that says how the body was read. It is a 401, the body unread.
    with client(app_settings) as api:
        bad = {"Content-Type": "application/json"}
        r = api.post("/v1/silences", content=b'{"matchers": ', headers=bad)
        assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthorized")
        r = api.post(
            "/v1/silences", content=b'{"matchers": ', headers={**bad, "Authorization": "Bearer brm_x_y"}
        )
        assert (r.status_code, r.json()["error"]["message"]) == (401, "unknown or revoked token")
        r = api.post("/v1/silences", content=b'{"matchers": ', headers={**bad, **BOOTSTRAP})
        assert r.status_code == 422  # with a valid token the body is read, and said to be bad


def test_rates_per_address_and_per_token(app_settings: Settings) -> None:
    with client(app_settings, rate_limit_per_address=4, rate_limit_per_token=2) as api:
        statuses = [api.get("/v1/territories").status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 200, 429]
        r = api.get("/v1/territories")
        assert r.json()["error"]["code"] == "too_many_requests" and int(r.headers["retry-after"]) >= 1
        assert api.get("/healthz").status_code == 200 and api.get("/readyz").status_code == 200
    with client(app_settings, rate_limit_per_address=0, rate_limit_per_token=2) as api:
        tokens = [api.get("/v1/territories", headers=BOOTSTRAP).status_code for _ in range(3)]
        assert tokens == [200, 200, 429]
        assert api.get("/v1/territories").status_code == 200


def test_every_query_carries_the_limits_and_a_timeout_is_504_never_500(app_settings: Settings) -> None:
    app = create_app(app_settings.model_copy(update={"webhooks_enabled": False, "api_query_timeout_s": 1}))
    ch = app.state.api.client()
    # The real engine cuts a query that would run for hours at max_execution_time.
    start = time.monotonic()
    with pytest.raises(DatabaseError) as info:
        ch.query("SELECT count() FROM numbers(1e11)")
    assert info.value.code == 159 and time.monotonic() - start < 5
    # The same error out of a route: 504 with Retry-After and the JSON error.

    @app.get("/v1/test-slow")
    async def slow() -> None:
        await app.state.api.run(lambda: ch.query("SELECT count() FROM numbers(1e11)"))

    with TestClient(app, raise_server_exceptions=False) as api:
        r = api.get("/v1/test-slow")
        assert (r.status_code, r.json()["error"]["code"]) == (504, "query_timeout")
        assert r.headers["retry-after"] == "5"


def test_an_answer_over_max_result_rows_is_503_not_a_cut_answer(seeded_settings: Settings) -> None:
    with client(seeded_settings, api_query_max_result_rows=2) as api:
        r = api.get("/v1/rankings", params={"platform": "facebook", "category": "commune", "limit": 50})
        assert (r.status_code, r.json()["error"]["code"]) == (503, "query_too_large")
        assert r.headers["retry-after"] == "5"
    with client(seeded_settings) as api:
        r = api.get("/v1/rankings", params={"platform": "facebook", "category": "commune", "limit": 50})
        assert r.status_code == 200 and len(r.json()["items"]) > 2


def test_the_openapi_declares_the_limits_answers(app_settings: Settings) -> None:
    with client(app_settings) as api:
        paths = api.get("/openapi.json").json()["paths"]
    answers = paths["/v1/rankings"]["get"]["responses"]
    assert {"413", "429", "503", "504"} <= set(answers)
    assert "Retry-After" in answers["429"]["headers"]
    assert {"413", "429"} <= set(paths["/v1/silences"]["post"]["responses"])


@pytest.fixture
def seeded_settings(app_settings: Settings) -> Settings:
    now = datetime.now(UTC).replace(microsecond=0)
    d, h = timedelta(days=1), timedelta(hours=1)
    evil = [
        snapshot("facebook:evil", "COM:13055", now - 31 * d, 1000),
        snapshot("facebook:evil", "COM:13055", now - h, 400, handle='=HYPERLINK("http://evil","x")'),
    ]
    write(app_settings, [history_2013(), live(now) + evil])
    return app_settings


def test_a_real_csv_export_escapes_formulas_and_keeps_numbers(seeded_settings: Settings) -> None:
    with client(seeded_settings) as api:
        r = api.get(
            "/v1/rankings",
            params={"platform": "facebook", "category": "commune", "by": "account", "format": "csv"},
        )
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.text)))
    evil = next(row for row in rows if row["account_id"] == "facebook:evil")
    assert evil["handle"] == '\'=HYPERLINK("http://evil","x")'
    assert float(evil["value"]) == -600 and not evil["value"].startswith("'")
    assert all(not row["value"].startswith("'") for row in rows)


@pytest.mark.kafka
def test_sse_clients_beyond_the_cap_get_503_with_retry_after(app_settings: Settings) -> None:
    app = create_app(app_settings.model_copy(update={"webhooks_enabled": False, "api_max_sse_clients": 1}))
    with serve(app) as base:
        url = base + "/v1/alerts/stream"
        first = SseReader(url).start()
        assert first.status == 200
        with TestClient(app) as api:
            r = api.get("/v1/alerts/stream")
            assert (r.status_code, r.json()["error"]["code"]) == (503, "too_many_streams")
            assert r.headers["retry-after"] == "5"
        first.close()
        deadline = time.monotonic() + 10
        while app.state.alert_hub.clients and time.monotonic() < deadline:
            time.sleep(0.05)
        second = SseReader(url).start()
        assert second.status == 200
        second.close()
