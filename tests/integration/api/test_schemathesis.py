"""schemathesis against the api's OpenAPI, as a user would run it: every check (negative data, ignored
auth, stateful links, response conformance, Allow on OPTIONS and undeclared methods), on the real
application over HTTP (uvicorn in a thread) with a database seeded through the real scoring code and
alerts and an incident stored as the worker writes them, and a real token. The OpenAPI links (a listed
alert to its detail and acknowledgement, a listed incident to its detail, a created silence to its
expiry, a created webhook to its deliveries and deletion) drive the stateful phase.

The quick run (``make test``) bounds the cases per operation (BAROMETRE_FUZZ_EXAMPLES, default 20);
``make fuzz`` runs the same with many more. The tolerances are in tests/fuzz/hooks.py, each named.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.api.app import create_app
from services.common.settings import Settings
from tests.fuzz.runner import run_schemathesis
from tests.integration.api.alerting import alert, serve, store_alerts
from tests.integration.api.seed import seed
from tests.integration.api.test_incidents import incident
from tests.integration.api.test_incidents import store as store_incidents

# kafka: GET /v1/status reads the scoring lag from the broker (a 503 without one).
pytestmark = [pytest.mark.clickhouse, pytest.mark.kafka, pytest.mark.timeout(900)]


def test_api_openapi_holds_under_schemathesis(app_settings: Settings) -> None:
    # Rate limits off: thousands of requests a minute from one address are the point here.
    settings = app_settings.model_copy(
        update={"webhooks_enabled": False, "rate_limit_per_address": 0, "rate_limit_per_token": 0}
    )
    seed(settings, datetime.now(UTC).replace(microsecond=0))
    store_alerts(settings, [alert(), alert("facebook:lyon", entity_id="COM:69123", type="audience_spike")])
    store_incidents(settings, [incident(1, "facebook", "audience_drop", "open", 30)])
    token = settings.bootstrap_token.get_secret_value() if settings.bootstrap_token else ""
    with serve(create_app(settings)) as url:
        # The SSE stream never ends by itself: its parameters are those of GET /v1/alerts, tested there.
        result = run_schemathesis("api", url, token, "--exclude-path", "/v1/alerts/stream")
    report = result.stdout + result.stderr
    print(report)
    assert result.returncode == 0, report[-20_000:]
    assert " generated" in report
