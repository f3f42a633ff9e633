"""The dashboard's map (services/api/static/map.js): every département (overseas included) drawn, coloured
by the figures of GET /v1/presence/territories, the table beside it showing the same figures, the
platform, date, scale and measure filters changing it, and a click or Enter on a territory opening its
entity page."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import ARTIFACTS, Dashboard, Recorded

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

    # The collectivité itself: the seeded régions 84, 53 and 11 have a Facebook account.
    page.select_option("#carte-mesure", "collectivite")
    page.wait_for_selector('#carte-legende li[data-class="present"]')
    classes = map_classes(page)
    assert {c for c, k in classes.items() if k == "present"} == {"84", "53", "11"}
    assert {c for c, i in regions.items() if i["entity_present"]} == {"84", "53", "11"}
    assert table_rows(page)["84"][4] == "Oui" and table_rows(page)["93"][4] == "Non"
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
