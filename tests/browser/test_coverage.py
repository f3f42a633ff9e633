"""The dashboard says how much of the world its figures see: a coverage line under the presence figure and
under the rankings, agreeing with the API; and a "Données simulées" banner (a status region, in words)
while the figures include the simulator's accounts, and none otherwise."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from services.common.clickhouse import make_client
from services.common.names import AccountOrigin
from services.common.reference.parsers import AccountRecord
from services.common.registry import user_version, write_accounts
from tests.browser.conftest import Dashboard, Recorded, save_screenshot
from tests.browser.seed import accounts

if TYPE_CHECKING:
    from playwright.sync_api import Page

# kafka: the page's alert feed streams the alerts topic, as in test_dashboard.py.
pytestmark = [pytest.mark.browser, pytest.mark.clickhouse, pytest.mark.kafka]


def fr_int(value: int) -> str:
    return f"{value:,}".replace(",", "\u202f")


def coverage_words(observed: int, stale: int, missing: int) -> str:
    return (
        f"{fr_int(observed)} observées, {fr_int(stale)} anciennes, "
        f"{fr_int(missing)} sans compte connu ou jamais relevées"
    )


def test_coverage_lines_and_the_simulated_data_banner(
    dashboard: Dashboard, page: Page, console: Recorded
) -> None:
    page.goto(dashboard.url + "/")

    # Real (imported) accounts: coverage under both figures, no banner.
    presence = page.locator("#presence-couverture")
    presence.locator("li").first.wait_for()
    rows = dashboard.api("/v1/coverage", category="commune").json()["items"]
    facebook = next(r for r in rows if r["platform"] == "facebook")
    missing = facebook["without_account"] + facebook["never_observed"]
    assert presence.locator("li").first.inner_text() == "Facebook : " + coverage_words(
        facebook["observed"], facebook["stale"], missing
    )
    assert presence.locator("li").count() == 5  # the five platforms shown by default
    ranking = dashboard.api(
        "/v1/rankings", platform="facebook", category="commune", window="30d", metric="growth_abs", limit="20"
    ).json()["coverage"]
    line = page.locator("#classement-couverture")
    line.wait_for()
    assert line.inner_text().startswith(
        "Couverture : " + coverage_words(ranking["observed"], ranking["stale"], ranking["missing"])
    )
    assert ranking["simulated"] is False
    banner = page.locator("#donnees-simulees")
    assert banner.get_attribute("role") == "status"
    assert banner.inner_text() == ""
    assert not banner.is_visible()
    save_screenshot(page, "dashboard-couverture.png")

    # The same accounts registered by the simulator (as `barometre simulate` does): the banner says so.
    client = make_client(dashboard.settings)
    try:
        records = [AccountRecord(a.entity_id, a.platform, a.account_id, a.handle, None) for a in accounts()]
        write_accounts(
            client,
            dashboard.settings.clickhouse_database,
            records,
            user_version(),
            origin=AccountOrigin.SIMULATOR,
        )
    finally:
        client.close()
    time.sleep(1.1)  # past the api's one-second answer cache
    assert dashboard.api("/v1/coverage", category="commune").json()["simulated"] is True
    page.reload()
    page.get_by_role("status").filter(has_text="Données simulées").wait_for()
    assert banner.is_visible()
    assert "simulateur" in banner.inner_text()
    page.locator("#presence-couverture li").first.wait_for()
    page.locator("#classement-couverture").wait_for()
    page.wait_for_timeout(500)  # let late requests finish, so their errors would show
    save_screenshot(page, "dashboard-donnees-simulees.png")
    console.assert_clean()
