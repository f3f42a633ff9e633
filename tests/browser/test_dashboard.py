"""The dashboard in a real browser (Debian's Chromium through Playwright) against the real api application
over a seeded database: it loads with its charts and without console errors, its filters change the
rankings (and agree with the API), the rankings refresh by themselves, entity pages show each account's
history, and alerts arrive live."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from kafka import KafkaProducer

from services.common.clickhouse import make_client
from services.common.events import Alert
from services.common.names import Platform, Topic
from tests.browser.conftest import Dashboard, Recorded, save_screenshot
from tests.browser.seed import GRENOBLE, Account, accounts

if TYPE_CHECKING:
    from playwright.sync_api import Page

# kafka: the page's alert feed is a live stream of the alerts.v1 topic (GET /v1/alerts/stream).
pytestmark = [pytest.mark.browser, pytest.mark.clickhouse, pytest.mark.kafka]

# A whole number written the fr-FR way: groups of three digits separated by a narrow no-break space.
FR_INTEGER = re.compile(r"^\d{1,3}(\u202f\d{3})*$")


def fr_int(value: int) -> str:
    return f"{value:,}".replace(",", "\u202f")


def ranking_ids(page: Page) -> list[str]:
    rows = page.locator("#classement tbody tr[data-entity-id]")
    return [rows.nth(i).get_attribute("data-entity-id") or "" for i in range(rows.count())]


def wait_for_ranking(page: Page, expected: list[str]) -> None:
    """Wait until the ranking table lists ``expected`` entity ids, in that order."""
    page.wait_for_function(
        """(expected) => JSON.stringify(Array.from(
               document.querySelectorAll('#classement tbody tr[data-entity-id]'),
               (tr) => tr.dataset.entityId)) === JSON.stringify(expected)""",
        arg=expected,
    )


def wait_for_live_feed(page: Page) -> None:
    """Wait until the alert feed's stream is open (its status says so; other texts say "en direct")."""
    page.wait_for_function("document.querySelector('#alertes-etat').textContent === 'En direct'")


def api_ranking(dashboard: Dashboard, **params: str) -> list[str]:
    query = {"category": "commune", "window": "30d", "metric": "growth_abs", "limit": "20", **params}
    response = dashboard.api("/v1/rankings", **query)
    assert response.status_code == 200, response.text
    return [item["entity_id"] for item in response.json()["items"]]


def test_dashboard_loads_with_charts_and_no_console_errors(
    dashboard: Dashboard, page: Page, console: Recorded
) -> None:
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(dashboard.url + "/")
    assert "Baromètre" in page.title()
    assert page.locator("html").get_attribute("lang") == "fr"

    # The presence barometer: one chart, one series per selected platform, latest figures that agree
    # with GET /v1/presence.
    page.locator("#presence-graphique canvas").wait_for()
    page.wait_for_function("document.querySelectorAll('#presence-chiffres .kpi').length === 5")
    legend = page.locator("#presence-graphique .u-legend").inner_text()
    for label in ("Facebook", "X", "Instagram", "YouTube", "LinkedIn"):
        assert label in legend
    facebook = dashboard.api("/v1/presence", platform="facebook", category="commune").json()
    assert facebook["present"] > 0
    kpi = page.locator("#presence-chiffres .kpi").first
    assert kpi.locator(".kpi__label").inner_text() == "Facebook"
    assert (
        kpi.locator(".kpi__detail").inner_text()
        == f"{fr_int(facebook['present'])} sur {fr_int(facebook['total'])}"
    )
    assert page.locator("#presence-table tbody tr").count() >= 24  # monthly points, 24 months by default

    # The rankings: the API's order, numbers written the French way, accessible table semantics.
    expected = api_ranking(dashboard, platform="facebook")
    assert len(expected) > 5
    wait_for_ranking(page, expected)
    assert page.get_by_role("columnheader", name="Collectivité").is_visible()
    assert page.get_by_role("combobox", name="Région").is_visible()
    assert page.get_by_role("combobox", name="Département").is_visible()
    followers = page.locator("#classement tbody tr").first.locator("td").nth(2).inner_text()
    assert FR_INTEGER.match(followers), followers

    # Alerts: the live feed is connected, and empty.
    wait_for_live_feed(page)
    page.get_by_text("Aucune alerte.").wait_for()
    page.wait_for_timeout(500)  # let late requests finish, so their errors would show
    save_screenshot(page, "dashboard.png")
    console.assert_clean()
    # Nothing comes from another server (no CDN, no web fonts): the page works offline.
    elsewhere = [u for u in requested if not u.startswith((dashboard.url + "/", "data:"))]
    assert not elsewhere, elsewhere


def test_filters_change_the_rankings(dashboard: Dashboard, page: Page, console: Recorded) -> None:
    page.goto(dashboard.url + "/")
    facebook = api_ranking(dashboard, platform="facebook")
    wait_for_ranking(page, facebook)

    page.get_by_role("combobox", name="Réseau", exact=True).select_option("x")
    x = api_ranking(dashboard, platform="x")
    assert x != facebook  # the seeded figures make the two rankings differ
    wait_for_ranking(page, x)
    assert "reseau=x" in page.url  # the filters are in the address, to share or reload

    page.locator("#classement-categorie").select_option("departement")
    departements = api_ranking(dashboard, platform="x", category="departement")
    wait_for_ranking(page, departements)
    assert all(entity_id.startswith("DEP:") for entity_id in departements)

    # Territories: Bretagne (région 53) keeps Rennes and Brest; then Finistère (29) keeps Brest.
    page.locator("#classement-categorie").select_option("commune")
    page.get_by_role("combobox", name="Réseau", exact=True).select_option("facebook")
    page.get_by_role("combobox", name="Région", exact=True).select_option(label="Bretagne")
    bretagne = api_ranking(dashboard, platform="facebook", region="53")
    assert sorted(bretagne) == ["COM:29019", "COM:35238"]
    wait_for_ranking(page, bretagne)
    departement_options = page.locator("#classement-departement option").all_inner_texts()
    assert departement_options[0] == "Tous les départements"
    # Each département as "code, en dash, name".
    names = ["22 Côtes-d'Armor", "29 Finistère", "35 Ille-et-Vilaine", "56 Morbihan"]
    assert sorted(departement_options[1:]) == [n.replace(" ", " \u2013 ", 1) for n in names]
    page.get_by_role("combobox", name="Département", exact=True).select_option("29")
    wait_for_ranking(page, ["COM:29019"])

    # Another metric: per 1,000 inhabitants has no window, and its own column.
    page.get_by_role("combobox", name="Département", exact=True).select_option("")
    page.get_by_role("combobox", name="Région", exact=True).select_option("")
    page.get_by_role("combobox", name="Indicateur", exact=True).select_option("per_1000_inhabitants")
    wait_for_ranking(page, api_ranking(dashboard, platform="facebook", metric="per_1000_inhabitants"))
    assert page.locator("#classement-fenetre").is_disabled()
    assert page.locator("#classement-col-valeur").inner_text().lower() == "pour 1 000 hab."
    console.assert_clean()


def test_rankings_refresh_live(dashboard: Dashboard, page: Page, console: Recorded) -> None:
    page.goto(dashboard.url + "/")
    before = api_ranking(dashboard, platform="facebook")
    wait_for_ranking(page, before)
    assert before[0] != GRENOBLE

    # Grenoble's Facebook account gains 100,000 followers: it leads the ranking within a refresh or two,
    # without reloading the page.
    grenoble = next(a for a in accounts() if a.entity_id == GRENOBLE and a.platform is Platform.FACEBOOK)
    world = dashboard.world
    observed = world.now + timedelta(minutes=1)
    world.add([world.snapshot(grenoble, observed, grenoble.followers(0) + 100_000)])
    deadline = time.monotonic() + 10  # the API serves answers up to 1 s old
    while (after := api_ranking(dashboard, platform="facebook"))[0] != GRENOBLE:
        assert time.monotonic() < deadline, f"Grenoble does not lead the API's ranking: {after}"
        time.sleep(0.2)
    wait_for_ranking(page, after)
    assert page.locator("#classement-etat").inner_text().startswith("Mis à jour à")
    console.assert_clean()


def test_entity_page_shows_each_account_history_and_the_score(
    dashboard: Dashboard, page: Page, console: Recorded
) -> None:
    page.goto(dashboard.url + "/")
    page.locator(f'#classement tbody tr[data-entity-id="{GRENOBLE}"] a').click()
    page.wait_for_url(re.compile(r"/entite/COM:38185$"))
    page.get_by_role("heading", level=1, name="Grenoble").wait_for()
    own: list[Account] = [a for a in accounts() if a.entity_id == GRENOBLE]
    cards = page.locator("#entite-comptes .account")
    cards.nth(len(own) - 1).locator("canvas").wait_for()
    assert cards.count() == len(own)
    assert {cards.nth(i).get_attribute("data-account-id") for i in range(len(own))} == {
        a.account_id for a in own
    }
    page.wait_for_function(
        "Array.from(document.querySelectorAll('.account__status')).every((p) => /relevés/.test(p.textContent))"
    )
    facts = page.locator("#entite-faits").inner_text()
    assert "Isère (38)" in facts
    assert "Auvergne-Rhône-Alpes" in facts
    assert "Score de bonnes pratiques" in facts
    save_screenshot(page, "dashboard-entite.png")

    # The same page loaded directly, and back to the home page.
    page.goto(dashboard.url + "/entite/" + GRENOBLE)
    page.get_by_role("heading", level=1, name="Grenoble").wait_for()
    page.get_by_role("link", name="← Tableau de bord").click()
    page.locator("#classement tbody tr[data-entity-id]").first.wait_for()
    console.assert_clean()


def publish_alert(dashboard: Dashboard, alert: dict[str, object]) -> None:
    """Publish ``alert`` as the scoring worker does: its row in the ``alerts`` table and its Alert v1
    record on ``alerts.v1`` (key = account_id), which the page's stream receives."""
    document = Alert.model_validate(alert)
    client = make_client(dashboard.settings)
    try:
        client.insert(
            f"{dashboard.settings.clickhouse_database}.alerts",
            [[*(getattr(document, k) for k in ALERT_COLUMNS), "{}", None, time.time_ns()]],
            column_names=[*ALERT_COLUMNS, "details", "inhibited_by", "version"],
        )
    finally:
        client.close()
    producer = KafkaProducer(bootstrap_servers=dashboard.settings.kafka_bootstrap, acks="all")
    try:
        producer.send(
            dashboard.settings.topic(Topic.ALERTS),
            key=document.account_id.encode(),
            value=document.to_event_bytes(),
        )
        producer.flush(30)
    finally:
        producer.close()


ALERT_COLUMNS = ("alert_id", "type", "account_id", "entity_id", "platform", "observed_at", "detected_at",
                 "value", "expected", "score", "severity")  # fmt: skip


def test_an_alert_appears_live(dashboard: Dashboard, page: Page, console: Recorded) -> None:
    page.goto(dashboard.url + "/")
    wait_for_live_feed(page)
    page.get_by_text("Aucune alerte.").wait_for()
    now = dashboard.world.now
    publish_alert(
        dashboard,
        {
            "alert_id": "00000000-0000-5000-8000-00000000a1e7",
            "type": "audience_spike",
            "account_id": "facebook:com-38185",
            "entity_id": GRENOBLE,
            "platform": "facebook",
            "observed_at": now,
            "detected_at": now,
            "value": 120_000.0,
            "expected": 20_000.0,
            "score": 9.5,
            "severity": "critical",
            "status": "open",
        },
    )
    item = page.locator('#alertes-liste li[data-alert-id="00000000-0000-5000-8000-00000000a1e7"]')
    item.wait_for(timeout=10_000)
    assert "alert--fresh" in (item.get_attribute("class") or "")  # came by the stream, not the list
    text = item.text_content() or ""  # as written (the badge is upper-cased by CSS)
    assert "Pic d'audience" in text
    assert "Critique" in text
    assert f"{fr_int(120_000)} abonnés (attendu : {fr_int(20_000)})" in text
    link = item.get_by_role("link", name="Grenoble")
    link.wait_for()
    assert link.get_attribute("href") == "/entite/" + GRENOBLE
    assert page.get_by_text("Aucune alerte.").is_hidden()
    save_screenshot(page, "dashboard-alerte.png")
    # The feed's list and the stream agree: reloading shows it from GET /v1/alerts.
    page.reload()
    item.wait_for()
    link.click()
    page.get_by_role("heading", level=1, name="Grenoble").wait_for()
    console.assert_clean()
