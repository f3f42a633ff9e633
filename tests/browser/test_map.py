"""The dashboard's map (services/api/static/map.js): every département (overseas included) drawn, coloured
by the figures of GET /v1/presence/territories, the table beside it showing the same figures, the
platform, date, scale and measure filters changing it, and a click or Enter on a territory opening its
entity page. The map is one tab stop, the arrows move between territories (roving tabindex); its filters
are kept in the address; a coverage line under it agrees with GET /v1/coverage; axe finds nothing in
any of its states."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

from services.common.clickhouse import make_client
from services.common.names import AccountOrigin
from services.common.reference.parsers import AccountRecord
from services.common.registry import user_version, write_accounts
from tests.browser.axe import assert_accessible
from tests.browser.conftest import ARTIFACTS, Dashboard, Recorded
from tests.browser.seed import accounts

if TYPE_CHECKING:
    from playwright.sync_api import Page

# kafka: the page's alert feed streams the alerts topic, as in test_dashboard.py.
pytestmark = [pytest.mark.browser, pytest.mark.clickhouse, pytest.mark.kafka]

# map.js's classes of the share of communes present: c0 none, c1 up to 20 %, … c5 above 80 %.
BOUNDS = (0, 0.2, 0.4, 0.6, 0.8, 1)


def rate_class(rate: float | None) -> str:
    if rate is None:
        return "none"
    return "c" + str(next(k for k, bound in enumerate(BOUNDS) if rate <= bound))


def fr_int(value: int) -> str:
    return f"{value:,}".replace(",", "\u202f")


def territories(dashboard: Dashboard, **params: str) -> dict[str, dict[str, Any]]:
    r = dashboard.api("/v1/presence/territories", **params)
    assert r.status_code == 200, r.text
    return {item["code"]: item for item in r.json()["items"]}


def wait_for(page: Page, caption: str) -> None:
    """Wait until the table's caption starts with ``caption`` and nothing is loading."""
    page.wait_for_function(
        "([c]) => document.querySelector('#carte-table caption').textContent.startsWith(c)"
        " && !document.querySelector('#carte').hasAttribute('aria-busy')",
        arg=[caption],
    )


def map_classes(page: Page) -> dict[str, str]:
    classes: dict[str, str] = page.eval_on_selector_all(
        "#carte-svg a.map-area:not(.map-area--zoom)",
        "els => Object.fromEntries(els.map(e => [e.dataset.code, e.dataset.class]))",
    )
    return classes


def table_rows(page: Page) -> dict[str, list[str]]:
    rows: list[list[str]] = page.eval_on_selector_all(
        "#carte-table tbody tr",
        "rows => rows.map(r => [r.dataset.code, ...Array.from(r.cells, c => c.textContent.trim())])",
    )
    # code -> ["name code", communes present, communes, share, collectivité present]
    return {row[0]: row[1:] for row in rows}


def check_against_api(page: Page, items: dict[str, dict[str, Any]]) -> None:
    """Each territory's colour class follows its rate; the table shows the same figures."""
    classes = map_classes(page)
    assert set(classes) == set(items)
    assert classes == {code: rate_class(item["rate"]) for code, item in items.items()}
    rows = table_rows(page)
    assert set(rows) == set(items)
    for code, item in items.items():
        assert rows[code][:3] == [f"{item['name']} {code}", fr_int(item["present"]), fr_int(item["total"])]


def test_map_renders_follows_the_figures_and_filters(
    dashboard: Dashboard, page: Page, console: Recorded
) -> None:
    page.goto(dashboard.url + "/")
    wait_for(page, "Présence sur Facebook par département aujourd'hui")

    # Every département, the five overseas ones included, each with a shape.
    items = territories(dashboard, platform="facebook")
    assert len(items) == 101
    assert page.locator("#carte-svg a.map-area:not(.map-area--zoom)").count() == 101
    for code in ("971", "972", "973", "974", "976", "2A", "2B", "38"):
        area = page.locator(f'#carte-svg a.map-area:not(.map-area--zoom)[data-code="{code}"]')
        box = area.bounding_box()
        assert box and box["width"] > 3 and box["height"] > 3, code
    check_against_api(page, items)
    # Paris and the petite couronne again, enlarged, in the same colours.
    zoom = page.eval_on_selector_all(
        "#carte-svg a.map-area--zoom", "els => els.map(e => [e.dataset.code, e.dataset.class])"
    )
    assert zoom == [[c, rate_class(items[c]["rate"])] for c in ("75", "92", "93", "94")]
    box = page.locator('#carte-svg a.map-area--zoom[data-code="75"]').bounding_box()
    assert box and box["width"] > 8
    # The seeded figures spread over several classes: Paris is the only commune of the 75.
    classes = map_classes(page)
    assert (classes["75"], classes["38"], classes["01"]) == ("c5", "c1", "c0")
    # The colour of an area is its legend entry's colour.
    legend = dict(
        page.eval_on_selector_all(
            "#carte-legende li", "els => els.map(e => [e.dataset.class, e.firstChild.dataset.color])"
        )
    )
    fills = dict(
        page.eval_on_selector_all(
            "#carte-svg a.map-area:not(.map-area--zoom)",
            "els => els.map(e => [e.dataset.code, e.getAttribute('fill')])",
        )
    )
    assert {fills[c] for c in ("75", "38", "01")} == {legend["c5"], legend["c1"], legend["c0"]}
    assert len({legend["c5"], legend["c1"], legend["c0"]}) == 3
    # The table is a real table with a caption; sorting by share puts the 75 first.
    assert page.locator("#carte-table caption").inner_text().startswith("Présence sur Facebook")
    page.locator("#carte-table thead button[data-key=rate]").click()
    assert page.locator("#carte-table tbody tr").first.get_attribute("data-code") == "75"
    assert (page.locator("#carte-table th[aria-sort=descending]").text_content() or "").startswith("Part")

    # Beside the map, the table fits its column (no sideways scrolling at 1,400 px).

    assert page.eval_on_selector(".map-table-wrap", "e => e.scrollWidth <= e.clientWidth")
    # Its fields are named for the map (the rankings have a "Réseau" too).
    assert page.get_by_role("combobox", name="Réseau (carte)").input_value() == "facebook"
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#carte").screenshot(path=str(ARTIFACTS / "map.png"), animations="disabled")
    assert_accessible(page)

    # Another platform: X. Paris has no X account.
    page.select_option("#carte-reseau", "x")
    wait_for(page, "Présence sur X par département")
    x_items = territories(dashboard, platform="x")
    check_against_api(page, x_items)
    assert map_classes(page)["75"] == "c0" and map_classes(page)["38"] == "c1"

    # Another date: 700 days ago Grenoble's Facebook account was open (24 months), Paris's not yet (20).
    page.select_option("#carte-reseau", "facebook")
    day = (datetime.now() - timedelta(days=700)).date()
    page.fill("#carte-date", day.isoformat())
    wait_for(page, "Présence sur Facebook par département au ")
    at = datetime.combine(day, datetime.max.time().replace(microsecond=0)).astimezone()
    past = territories(dashboard, platform="facebook", at=at.isoformat())
    check_against_api(page, past)
    assert (map_classes(page)["75"], map_classes(page)["38"]) == ("c0", "c1")
    page.fill("#carte-date", "")

    # Régions: 13 metropolitan and 5 overseas, each the group of its départements.
    page.select_option("#carte-niveau", "region")
    wait_for(page, "Présence sur Facebook par région aujourd'hui")
    regions = territories(dashboard, platform="facebook", level="region")
    check_against_api(page, regions)
    assert page.locator("#carte-svg a.map-area:not(.map-area--zoom)").count() == 18
    assert (
        page.locator('#carte-svg a.map-area:not(.map-area--zoom)[data-code="84"] path').count() == 12
    )  # ARA's départements
    page.locator("#carte").screenshot(path=str(ARTIFACTS / "map-regions.png"), animations="disabled")
    assert_accessible(page, include="#carte")

    # The collectivité itself: the seeded régions 84, 53 and 11 have a Facebook account.
    page.select_option("#carte-mesure", "collectivite")
    page.wait_for_selector('#carte-legende li[data-class="present"]')
    classes = map_classes(page)
    assert {c for c, k in classes.items() if k == "present"} == {"84", "53", "11"}
    assert {c for c, i in regions.items() if i["entity_present"]} == {"84", "53", "11"}
    assert table_rows(page)["84"][4] == "Oui" and table_rows(page)["93"][4] == "Non"
    assert_accessible(page, include="#carte")
    console.assert_clean()


def test_a_territory_opens_by_click_and_by_keyboard(
    dashboard: Dashboard, page: Page, console: Recorded
) -> None:
    page.goto(dashboard.url + "/")
    wait_for(page, "Présence sur Facebook par département")
    page.locator('#carte-svg a.map-area:not(.map-area--zoom)[data-code="38"]').click()
    page.wait_for_url("**/entite/DEP:38")
    page.wait_for_function("() => document.querySelector('#entite-titre').textContent.includes('Isère')")
    assert page.locator("#vue-accueil").is_hidden()

    page.go_back()
    wait_for(page, "Présence sur Facebook par département")
    page.locator('#carte-svg a.map-area:not(.map-area--zoom)[data-code="69"]').focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/entite/DEP:69")
    page.wait_for_function("() => document.querySelector('#entite-titre').textContent.includes('Rhône')")

    # The table's links open the same page.
    page.go_back()
    wait_for(page, "Présence sur Facebook par département")
    page.locator('#carte-table tbody tr[data-code="13"] a').click()
    page.wait_for_url("**/entite/DEP:13")
    console.assert_clean()


def map_params(page: Page) -> dict[str, list[str]]:
    return {k: v for k, v in parse_qs(urlsplit(page.url).query).items() if k.startswith("c_")}


def test_one_tab_stop_arrows_between_territories(dashboard: Dashboard, page: Page, console: Recorded) -> None:
    page.goto(dashboard.url + "/")
    wait_for(page, "Présence sur Facebook par département")
    areas = "#carte-svg a.map-area:not(.map-area--zoom)"
    # One tab stop for 101 territories (the zoomed Paris is never one): the first, by code.
    assert page.locator(areas).count() == 101
    assert (
        page.eval_on_selector_all("#carte-svg a.map-area", "els => els.filter(e => e.tabIndex >= 0).length")
        == 1
    )
    assert page.locator('#carte-svg a.map-area[tabindex="0"]').get_attribute("data-code") == "01"

    # Tab from the last filter (through the date's day, month and year) reaches it; the next Tab leaves
    # the map.
    page.locator("#carte-date").focus()
    for _ in range(4):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") != "carte-date":
            break
    assert page.evaluate("document.activeElement.dataset.code") == "01"
    page.keyboard.press("Tab")  # out of the map: the map's credits, then its table
    assert page.evaluate("!document.activeElement.closest('#carte-svg')")
    assert page.evaluate("document.activeElement.closest('.map-figure') !== null")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.dataset.code") == "01"

    # Arrows: to the nearest territory in that direction. From Isère (38), east is Savoie (73).
    page.locator(areas + '[data-code="38"]').focus()
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.dataset.code") == "73"
    centre = "() => { const b = document.activeElement.getBoundingClientRect(); return [b.x + b.width / 2, b.y + b.height / 2]; }"
    seen = ["73"]
    for key, axis, sign in (
        ("ArrowLeft", 0, -1),
        ("ArrowUp", 1, -1),
        ("ArrowDown", 1, 1),
        ("ArrowRight", 0, 1),
    ):
        before = page.evaluate(centre)
        page.keyboard.press(key)
        code = page.evaluate("document.activeElement.dataset.code")
        after = page.evaluate(centre)
        assert code and code != seen[-1], key
        assert (after[axis] - before[axis]) * sign > 0, (key, seen[-1], code)
        seen.append(code)
    # Roving: the focused territory holds the only tab stop, and says its name and figure (its link's
    # name) and shows them under the map.
    code = seen[-1]
    assert (
        page.eval_on_selector_all("#carte-svg a.map-area", "els => els.filter(e => e.tabIndex >= 0).length")
        == 1
    )
    focused = page.locator(f'{areas}[tabindex="0"]')
    assert focused.get_attribute("data-code") == code
    label = focused.get_attribute("aria-label") or ""
    item = territories(dashboard, platform="facebook")[code]
    assert label.startswith(f"{item['name']} ({code}) : ") and "%" in label
    assert page.locator("#carte-territoire").inner_text() == label
    # The focused territory is ringed (white and dark, above its neighbours).
    assert page.locator("#carte-svg .map-focus-mark path").count() >= 2
    # Home and End: the first and the last (Mayotte, in its inset).
    page.keyboard.press("End")
    assert page.evaluate("document.activeElement.dataset.code") == "976"
    page.keyboard.press("Home")
    assert page.evaluate("document.activeElement.dataset.code") == "01"
    # Régions: the same, one tab stop of 18.
    page.keyboard.press("ArrowDown")
    page.select_option("#carte-niveau", "region")
    wait_for(page, "Présence sur Facebook par région")
    assert (
        page.eval_on_selector_all("#carte-svg a.map-area", "els => els.filter(e => e.tabIndex >= 0).length")
        == 1
    )
    page.locator('#carte-svg a.map-area[tabindex="0"]').focus()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Enter")
    page.wait_for_url("**/entite/REG:*")
    console.assert_clean()


def test_map_filters_kept_in_the_address(dashboard: Dashboard, page: Page, console: Recorded) -> None:
    day = (datetime.now() - timedelta(days=700)).date().isoformat()
    page.goto(
        dashboard.url + f"/?p_categorie=epci&c_reseau=x&c_niveau=region&c_mesure=collectivite&c_date={day}"
    )
    wait_for(page, "Présence sur X par région au ")
    assert page.locator("#carte-reseau").input_value() == "x"
    assert page.locator("#carte-mesure").input_value() == "collectivite"
    assert page.locator("#carte-date").input_value() == day
    page.wait_for_selector('#carte-legende li[data-class="present"]')
    assert page.locator("#presence-categorie").input_value() == "epci"

    # Changing a map filter writes the address, the presence panel's filters kept; and the other way round.
    page.select_option("#carte-niveau", "departement")
    wait_for(page, "Présence sur X par département au ")
    assert map_params(page) == {
        "c_reseau": ["x"],
        "c_niveau": ["departement"],
        "c_mesure": ["collectivite"],
        "c_date": [day],
    }
    assert parse_qs(urlsplit(page.url).query)["p_categorie"] == ["epci"]
    page.fill("#carte-date", "")
    wait_for(page, "Présence sur X par département aujourd'hui")
    assert "c_date" not in map_params(page)
    page.select_option("#presence-categorie", "departement")
    page.wait_for_function("location.search.includes('p_categorie=departement')")
    assert map_params(page)["c_niveau"] == ["departement"]

    # Reloaded: as left.
    page.reload()
    wait_for(page, "Présence sur X par département aujourd'hui")
    assert page.locator("#carte-mesure").input_value() == "collectivite"
    assert page.locator("#carte-date").input_value() == ""

    # Through an entity page and back: still there.
    page.locator('#carte-table tbody tr[data-code="38"] a').click()
    page.wait_for_url("**/entite/DEP:38")
    page.locator("#vue-entite .breadcrumb a").click()
    wait_for(page, "Présence sur X par département aujourd'hui")
    assert map_params(page)["c_reseau"] == ["x"]

    # Nonsense in the address is ignored, not obeyed.
    page.goto(dashboard.url + "/?c_reseau=myspace&c_niveau=canton&c_date=hier")
    wait_for(page, "Présence sur Facebook par département aujourd'hui")
    console.assert_clean()


def test_coverage_line_under_the_map(dashboard: Dashboard, page: Page, console: Recorded) -> None:
    page.goto(dashboard.url + "/")
    wait_for(page, "Présence sur Facebook par département")
    line = page.locator("#carte-couverture")
    line.wait_for()
    row = dashboard.api("/v1/coverage", platform="facebook", category="commune").json()["items"][0]
    text = line.inner_text()
    assert text.startswith("Couverture sur Facebook (communes, aujourd'hui) : ")
    assert f"{fr_int(row['observed'])} observées sur {fr_int(row['entities'])}" in text
    assert "Toutes les observées viennent de comptes réels." in text
    assert not page.locator("#donnees-simulees").is_visible()
    # The collectivité itself: the coverage of the départements.
    page.select_option("#carte-mesure", "collectivite")
    line.filter(has_text="(départements, aujourd'hui)").wait_for()

    # The seeded accounts registered by the simulator: the line says which share is simulated, the
    # banner shows.
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
    page.reload()
    wait_for(page, "Présence sur Facebook par département")
    line.filter(has_text="Données simulées en partie.").wait_for()
    assert "100 % viennent de comptes simulés" in line.inner_text().replace("\u202f", " ").replace(
        "\xa0", " "
    )
    page.get_by_role("status").filter(has_text="Données simulées").wait_for()
    assert_accessible(page, include="#carte")
    console.assert_clean()
