"""schemathesis against ingest's OpenAPI (POST /v1/snapshots declared from the contract's JSON Schema),
every check, on the real application over HTTP with the real broker and ClickHouse, and a real token.
See tests/integration/api/test_schemathesis.py and tests/fuzz/hooks.py."""

from __future__ import annotations

import pytest

from services.common.settings import Settings
from services.ingest.app import create_app
from tests.fuzz.runner import run_schemathesis
from tests.integration.api.alerting import serve

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.timeout(900)]


def test_ingest_openapi_holds_under_schemathesis(app_settings: Settings) -> None:
    settings = app_settings.model_copy(update={"rate_limit_per_address": 0, "rate_limit_per_token": 0})
    token = settings.bootstrap_token.get_secret_value() if settings.bootstrap_token else ""
    with serve(create_app(settings)) as url:
        result = run_schemathesis("ingest", url, token)
    report = result.stdout + result.stderr
    print(report)
    assert result.returncode == 0, report[-20_000:]
    assert " generated" in report
