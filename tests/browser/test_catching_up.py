"""While the scoring worker catches up, the dashboard says how far behind it is (a status region, in
words, from GET /v1/status) and that its figures are provisional; once caught up, the banner goes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import Dashboard, Recorded, save_screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

# kafka: the page's alert feed streams the alerts topic, as in test_dashboard.py.
pytestmark = [pytest.mark.browser, pytest.mark.clickhouse, pytest.mark.kafka]


def scoring(behind: int, seconds: float | None, provisional: bool) -> dict[str, Any]:
    return {
        "checked_at": "2026-03-10T12:00:00.000Z",
        "scoring": {
            "events_received": 2_900_000,
            "events_scored": 2_900_000 - behind,
            "events_behind": behind,
            "partitions": 6,
            "rate_per_s": 3500.0 if seconds is not None else None,
            "seconds_to_catch_up": seconds,
            "provisional": provisional,
            "threshold_events": 20_000,
        },
    }


def test_the_catching_up_banner_comes_and_goes(dashboard: Dashboard, page: Page, console: Recorded) -> None:
    # The route and its answer are the api's (tests/integration/api/test_status.py runs them against
    # Kafka); here the worker's progress is played to the page.
    assert "/v1/status" in dashboard.routes
    real = dashboard.api("/v1/status").json()
    assert real["scoring"]["provisional"] is False
    answer = {"body": scoring(251_234, 118.0, True)}

    def serve(route: Route) -> None:
        route.fulfill(status=200, content_type="application/json", body=json.dumps(answer["body"]))

    page.route("**/v1/status", serve)
    page.goto(dashboard.url + "/")
    banner = page.locator("#calcul-en-cours")
    banner.locator("strong").wait_for()
    assert banner.get_attribute("role") == "status"
    assert banner.text_content() == (
        "Calcul en cours : 251\u202f000 événements en retard, ~2 min — les chiffres sont provisoires."
    )
    assert banner.is_visible()
    save_screenshot(page, "dashboard-catching-up.png")

    answer["body"] = scoring(60_000, None, True)  # the rate is not known yet
    page.wait_for_function(
        "document.querySelector('#calcul-en-cours').textContent.includes('durée inconnue')", timeout=12_000
    )
    answer["body"] = scoring(0, 0.0, False)
    page.wait_for_function(
        "document.querySelector('#calcul-en-cours').childElementCount === 0", timeout=12_000
    )
    assert not banner.is_visible()
    console.assert_clean()
