"""The dashboard states the minimum base of a relative ranking in its caption (docs/SCORING.md,
"Minimum base"), as GET /v1/rankings answers it; an absolute ranking states none."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import Dashboard, Recorded, save_screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.clickhouse, pytest.mark.kafka]

CAPTION = "#classement-legende"
GROWTH_PCT_BASE = (
    "collectivités ayant au moins 1\u202f000 abonnés au début de la période et au moins 2\u202f000 habitants"
)


def test_ranking_caption_states_the_minimum_base(dashboard: Dashboard, page: Page, console: Recorded) -> None:
    body = dashboard.api("/v1/rankings", platform="facebook", category="commune", metric="growth_pct").json()
    assert body["min_base"] == {"followers": 1000, "population": 2000}
    page.goto(dashboard.url + "/")
    page.wait_for_function(f"document.querySelector('{CAPTION}').textContent.startsWith('Classement des')")
    assert "au moins" not in page.locator(CAPTION).inner_text()  # growth_abs: no minimum

    page.get_by_role("combobox", name="Indicateur", exact=True).select_option("growth_pct")
    page.wait_for_function(f"document.querySelector('{CAPTION}').textContent.includes('abonnés au début')")
    assert page.locator(CAPTION).inner_text().endswith(GROWTH_PCT_BASE)
    ids = [item["entity_id"] for item in body["items"]]
    rows = page.locator("#classement tbody tr[data-entity-id]")
    assert [rows.nth(i).get_attribute("data-entity-id") for i in range(rows.count())] == ids
    save_screenshot(page, "fair.png")

    page.get_by_role("combobox", name="Indicateur", exact=True).select_option("per_1000_inhabitants")
    page.wait_for_function(
        f"document.querySelector('{CAPTION}').textContent.endsWith('au moins 2\u202f000 habitants') && "
        f"!document.querySelector('{CAPTION}').textContent.includes('abonnés au début')"
    )
    console.assert_clean()
