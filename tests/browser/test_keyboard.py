"""The dashboard's main path with the keyboard only: skip to the content, change the presence filters,
change the rankings, open an entity from the rankings, come back to the dashboard with its filters kept.
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

MAX_TABS = 120

# What the focused element shows: its own outline, or for the visually hidden checkbox of a filter pill,
# the outline of its label (dashboard.css: .check input:focus-visible + label).
FOCUS_SHOWN = """() => {
    const el = document.activeElement;
    if (!el || el === document.body) return {ok: false, what: 'nothing focused'};
    const shown = el.matches('.check input') ? el.nextElementSibling : el;
    const style = getComputedStyle(shown);
    const what = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' ' + (el.textContent || '').trim().slice(0, 40);
    return {
        ok: el.matches(':focus-visible') && style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2,
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


def walk_the_map(page: Page) -> None:
    """KEYBOARD STEPS OF THE MAP (issue 15, item 1): the map is not there yet. Its helper adds here the
    steps of the main path that go through it (Tab to the map's territories or its table, Enter or Space
    to open one, the focus visible on each), called from the main path below between the rankings and the
    entity page; ``tab_to`` already checks the visible focus of everything Tab crosses."""


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
