"""The api names every request: its log lines carry the caller's X-Request-ID (or a new id), which the
answer echoes; in JSON logs (BAROMETRE_LOG_FORMAT=json) the id is the line's ``request_id``."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.common.logs import JsonFormatter
from services.common.settings import Settings

pytestmark = [pytest.mark.clickhouse]


def test_the_log_lines_of_a_request_carry_its_id(
    app_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="barometre.access")
    with TestClient(create_app(app_settings)) as client:
        caplog.clear()
        r = client.get("/v1/coverage", headers={"X-Request-ID": "obs-7f3a9c"})
        unknown = client.get("/v1/entities/not-an-entity", headers={"X-Request-ID": "obs-404"})
        fresh = client.get("/healthz")
    assert r.status_code == 200, r.text
    assert r.headers["X-Request-ID"] == "obs-7f3a9c"
    assert unknown.headers["X-Request-ID"] == "obs-404"
    assert len(fresh.headers["X-Request-ID"]) == 32

    lines = [json.loads(JsonFormatter("api").format(rec)) for rec in caplog.records]
    by_id = {ln.get("request_id"): ln for ln in lines if ln["logger"] == "barometre.access"}
    assert by_id["obs-7f3a9c"]["route"] == "/v1/coverage"
    assert by_id["obs-7f3a9c"]["service"] == "api" and by_id["obs-7f3a9c"]["status"] == 200
    assert by_id["obs-404"]["status"] == unknown.status_code
    assert fresh.headers["X-Request-ID"] in by_id
