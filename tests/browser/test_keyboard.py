"""The dashboard's main path with the keyboard only: skip to the content, change the presence filters,
change the rankings, go to the map, change its scale and platform, move between its territories with the
arrows and open one, come back, open an entity from the rankings, come back to the dashboard with its
filters kept.
Tab moves, Enter follows a link, Space toggles a checkbox, and a closed <select> takes its next option
from the Down arrow (how a keyboard chooses an option in every browser); no mouse event is sent. Every
element Tab reaches shows where the focus is (a visible outline of at least 2 px)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import Dashboard, Recorded, save_screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

# kafka: the page's alert feed streams the alerts topic, as in test_dashboard.py.
pytestmark = [pytest.mark.browser, pytest.mark.clickhouse, pytest.mark.kafka]

# The map is one tab stop, but its table has a link per territory: from the rankings back to the map's
# filters is some 120 presses.
MAX_TABS = 200

# What the focused element shows: its own outline, or for the visually hidden checkbox of a filter pill,
# the outline of its label (dashboard.css: .check input:focus-visible + label), or for a territory of the
# map, the ring drawn around its shape (map.js: a white halo and a dark line, at least 2 px).
FOCUS_SHOWN = """() => {
    const el = document.activeElement;
    if (!el || el === document.body) return {ok: false, what: 'nothing focused'};
    const what = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' ' + (el.textContent || '').trim().slice(0, 40);
    if (el.matches('a.map-area')) {
        const ring = el.parentNode.querySelector(':scope > .map-focus-mark .map-focus-mark__ring');
        return {
            ok: el.matches(':focus-visible') && !!ring && getComputedStyle(ring).strokeOpacity !== '0'
                && parseFloat(getComputedStyle(ring).strokeWidth) >= 2,
            what: 'map territory ' + el.getAttribute('aria-label'),
        };
    }
    const shown = el.matches('.check input') ? el.nextElementSibling : el;
    const style = getComputedStyle(shown);
    return {
        // A date field's focus is in its day, month, year or calendar part: Chromium does not give the field
        // itself :focus-visible, so its outline is drawn while the focus is within (dashboard.css).
        ok: (el.matches(':focus-visible') || el.matches('input[type=date]:focus-within'))
            && style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2,
        what,
    };
}"""


def focused(page: Page, selector: str) -> bool:
    return bool(page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)", selector))


def assert_focus_visible(page: Page) -> None:
    state = page.evaluate(FOCUS_SHOWN)
    assert state["ok"], f"the focus is not visible on {state['what']}"


def tab_to(page: Page, selector: str, *, backwards: bool = False) -> None:
    """Press Tab (or Shift+Tab) until the focused element matches ``selector``, checking on the way that
    every element reached shows its focus."""
    key = "Shift+Tab" if backwards else "Tab"
    for _ in range(MAX_TABS):
        page.keyboard.press(key)
        assert_focus_visible(page)
        if focused(page, selector):
            return
    raise AssertionError(f"{selector} not reached in {MAX_TABS} presses of {key}")


def active_code(page: Page) -> str | None:
    code: str | None = page.evaluate("document.activeElement.dataset.code || null")
    return code


def walk_the_map(page: Page) -> None:
    """The map with the keyboard (issue 15, items 1 and 5): back from the rankings to its filters, the
    scale (Down arrow: Régions) and the platform (Down arrow: X) chosen, Tab to the map, which is one tab
    stop, the arrows from territory to territory (each says its name and figure), Enter opens the one
    reached, and the breadcrumb comes back with the map as it was left."""
    tab_to(page, "#carte-niveau", backwards=True)
    page.keyboard.press("ArrowDown")  # Départements -> Régions
    assert page.locator("#carte-niveau").input_value() == "region"
    page.wait_for_function(
        "document.querySelector('#carte-table caption').textContent.includes('par région')"
        " && !document.querySelector('#carte').hasAttribute('aria-busy')"
    )
    tab_to(page, "#carte-reseau", backwards=True)
    page.keyboard.press("ArrowDown")  # Facebook -> X
    assert page.locator("#carte-reseau").input_value() == "x"
    page.wait_for_function(
        "document.querySelector('#carte-table caption').textContent.startsWith('Présence sur X par région')"
        " && !document.querySelector('#carte').hasAttribute('aria-busy')"
    )

    # One tab stop: the first région by code; the Tab after it is the table, not another territory.
    tab_to(page, "#carte-svg a.map-area")
    assert active_code(page) == "01"
    stops = page.eval_on_selector_all(
        "#carte-svg a.map-area", "els => els.filter(e => e.tabIndex >= 0).length"
    )
    assert stops == 1
    # The arrows: from Guadeloupe (the first inset, on the left) right into metropolitan France, then
    # about; every step a new territory, named with its figure, and the tab stop follows.
    codes = ["01"]
    for key in ("ArrowRight", "ArrowDown", "ArrowRight", "ArrowUp"):
        page.keyboard.press(key)
        assert_focus_visible(page)
        code = active_code(page)
        assert code and code != codes[-1], key
        codes.append(code)
        label = page.evaluate("document.activeElement.getAttribute('aria-label')")
        assert f"({code}) : " in label and ("%" in label or "aucune commune" in label), label
        assert page.locator("#carte-territoire").inner_text() == label
    assert page.locator('#carte-svg a.map-area[tabindex="0"]').get_attribute("data-code") == codes[-1]
    region = codes[-1]
    save_screenshot(page, "keyboard-map.png")

    # Enter opens the région's page; the breadcrumb, with Enter, comes back to the map as it was.
    page.keyboard.press("Enter")
    page.wait_for_url("**/entite/REG:" + region)
    assert focused(page, "main#contenu")
    tab_to(page, "#vue-entite .breadcrumb a")
    page.keyboard.press("Enter")
    page.locator("#vue-accueil").wait_for()
    assert page.locator("#carte-niveau").input_value() == "region"
    assert page.locator("#carte-reseau").input_value() == "x"
    assert "c_niveau=region" in page.url
    assert page.locator('#carte-svg a.map-area[tabindex="0"]').get_attribute("data-code") == region


def test_main_path_with_the_keyboard_only(dashboard: Dashboard, page: Page, console: Recorded) -> None:
    page.goto(dashboard.url + "/")
    page.locator("#classement tbody tr[data-entity-id]").first.wait_for()
    page.wait_for_function("document.querySelectorAll('#presence-chiffres .kpi').length === 5")

    # The first Tab reaches the skip link; Enter moves the focus to the content.
    page.keyboard.press("Tab")
    assert focused(page, "a.skip-link")
    assert page.locator("a.skip-link").is_visible()
    assert_focus_visible(page)
    page.keyboard.press("Enter")
    assert focused(page, "main#contenu")

    # Presence filters: the category with the arrow of its select, a platform with Space.
    tab_to(page, "#presence-categorie")
    page.keyboard.press("ArrowDown")  # Communes -> Intercommunalités
    assert page.locator("#presence-categorie").input_value() == "epci"
    page.wait_for_function(
        "document.querySelector('#presence-etat').textContent.includes('intercommunalités')"
    )
    tab_to(page, "#presence-reseau-tiktok")
    page.keyboard.press("Space")
    assert page.locator("#presence-reseau-tiktok").is_checked()
    page.wait_for_function("document.querySelectorAll('#presence-chiffres .kpi').length === 6")

    # The data of the chart: a <details> opened with Enter.
    tab_to(page, "#presence .data-details summary")
    page.keyboard.press("Enter")
    assert page.locator("#presence .data-details").get_attribute("open") is not None

    # Rankings: the platform (Facebook -> X) and the automatic refresh switched off with Space.
    tab_to(page, "#classement-reseau")
    page.keyboard.press("ArrowDown")
    assert page.locator("#classement-reseau").input_value() == "x"
    expected = dashboard.api(
        "/v1/rankings", platform="x", category="commune", window="30d", metric="growth_abs", limit="20"
    ).json()["items"]
    first = expected[0]
    page.locator(f"#classement tbody tr[data-entity-id='{first['entity_id']}']").wait_for()
    page.locator("#classement-legende", has_text="sur X").wait_for()
    tab_to(page, "#classement-auto")
    page.keyboard.press("Space")
    assert not page.locator("#classement-auto").is_checked()
    save_screenshot(page, "keyboard.png")

    walk_the_map(page)

    # An entity from the rankings: Tab to its link, Enter.
    tab_to(page, f"#classement tbody a[href='/entite/{first['entity_id']}']")
    page.keyboard.press("Enter")
    page.locator("#entite-titre", has_text=first["name"]).wait_for()
    assert page.url.endswith("/entite/" + first["entity_id"])
    assert focused(page, "main#contenu")  # the new view's content has the focus
    page.locator("#entite-comptes .account").first.wait_for()

    # Back: the next Tab is the way back to the dashboard; Enter; the filters are as they were left.
    tab_to(page, "#vue-entite .breadcrumb a")
    page.keyboard.press("Enter")
    page.locator("#vue-accueil").wait_for()
    assert focused(page, "main#contenu")
    assert page.locator("#presence-categorie").input_value() == "epci"
    assert page.locator("#presence-reseau-tiktok").is_checked()
    assert page.locator("#classement-reseau").input_value() == "x"
    page.locator(f"#classement tbody tr[data-entity-id='{first['entity_id']}']").wait_for()

    # And backwards: Shift+Tab from the content reaches the site navigation, focus visible all the way.
    tab_to(page, ".site-nav a[href='/#classements']", backwards=True)
    page.keyboard.press("Enter")
    assert page.url.endswith("#classements")
    console.assert_clean()
