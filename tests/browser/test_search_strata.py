"""The search box (an ARIA combobox over GET /v1/entities?q=, usable with the keyboard alone) opens an
entity's page; the stratum filters change the presence chart and the rankings as the API answers them;
the entity page says where it stands among its peers (GET /v1/entities/{id}/peers)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser import conftest
from tests.browser.axe import assert_accessible
from tests.browser.conftest import Dashboard, Recorded, save_screenshot
from tests.browser.seed import GRENOBLE

if TYPE_CHECKING:
    from playwright.sync_api import Page

# kafka: the page's alert feed streams the alerts topic, as in test_dashboard.py.
pytestmark = [pytest.mark.browser, pytest.mark.clickhouse, pytest.mark.kafka]


@pytest.fixture(autouse=True)
def _own_ports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Served on ports of this feature's own range, apart from the other browser tests running beside.
    monkeypatch.setattr(conftest, "PORTS", range(41300, 41400))
    yield


def ranking_ids(page: Page) -> list[str]:
    rows = page.locator("#classement tbody tr[data-entity-id]")
    return [rows.nth(i).get_attribute("data-entity-id") or "" for i in range(rows.count())]


def wait_for_ranking(page: Page, expected: list[str]) -> None:
    page.wait_for_function(
        """(expected) => JSON.stringify(Array.from(
               document.querySelectorAll('#classement tbody tr[data-entity-id]'),
               (tr) => tr.dataset.entityId)) === JSON.stringify(expected)""",
        arg=expected,
    )


def test_search_strata_and_peers(dashboard: Dashboard, page: Page, console: Recorded) -> None:
    assert {"/v1/entities", "/v1/entities/{entity_id}/peers"} <= dashboard.routes
    page.goto(dashboard.url + "/")
    page.locator("#classement tbody tr[data-entity-id]").first.wait_for()

    # --- Strata: only the chosen category's strata are offered; the ranking follows the API.
    stratum = page.locator("#classement-strate")
    assert stratum.locator("option:not([disabled])").count() == 5  # "all" and the four commune bands
    with page.expect_response(re.compile(r"/v1/rankings\?.*stratum=commune_100000_plus")):
        stratum.select_option("commune_100000_plus")
    query = {"platform": "facebook", "category": "commune", "window": "30d", "metric": "growth_abs",
             "limit": "20", "stratum": "commune_100000_plus"}  # fmt: skip
    answer = dashboard.api("/v1/rankings", **query).json()
    expected = [item["entity_id"] for item in answer["items"]]
    assert expected and len(expected) < 15  # Chambéry (under 100,000) is left out
    assert "COM:73065" not in expected
    wait_for_ranking(page, expected)
    assert "strate=commune_100000_plus" in page.url
    # The caption names the stratum the ranking is limited to.
    page.wait_for_function(
        "document.querySelector('#classement-legende').textContent.includes('strate : 100 000 hab. et plus')"
    )
    # A category without strata: the stratum is reset and disabled.
    page.locator("#classement-categorie").select_option("departement")
    page.wait_for_function("document.querySelector('#classement-strate').disabled")
    assert stratum.input_value() == ""
    page.locator("#classement-categorie").select_option("epci")
    assert stratum.locator("option:not([disabled])").count() == 5  # "all" and the four EPCI natures
    assert stratum.locator("option[value=metropole]").is_enabled()
    # The presence chart by stratum.
    with page.expect_response(re.compile(r"/v1/presence/series\?.*stratum=commune_lt_3500")) as response:
        page.locator("#presence-strate").select_option("commune_lt_3500")
    assert response.value.status == 200
    page.wait_for_function("document.querySelectorAll('#presence-chiffres .kpi').length === 5")

    # --- Search with the keyboard alone: type, arrow down, Enter.
    field = page.get_by_role("combobox", name="Rechercher une collectivité")
    field.focus()
    field.press_sequentially("grenoble", delay=30)
    listbox = page.get_by_role("listbox", name="Collectivités trouvées")
    listbox.get_by_role("option").first.wait_for()
    assert field.get_attribute("aria-expanded") == "true"
    options = listbox.get_by_role("option")
    assert options.first.locator(".search__name").inner_text() == "Grenoble"
    assert "Grenoble-Alpes-Métropole" in options.nth(1).inner_text()
    assert_accessible(page)  # the list open, with the strata filters chosen above
    field.press("ArrowDown")
    first_id = options.first.get_attribute("id")
    assert field.get_attribute("aria-activedescendant") == first_id
    assert options.first.get_attribute("aria-selected") == "true"
    field.press("ArrowDown")
    assert options.nth(1).get_attribute("aria-selected") == "true"
    field.press("ArrowUp")
    field.press("Enter")
    page.wait_for_url(re.compile(r"/entite/COM:38185$"))
    page.get_by_role("heading", level=1, name="Grenoble").wait_for()
    assert field.get_attribute("aria-expanded") == "false"

    # --- Peers of Grenoble: the API's figures, in words.
    peers = dashboard.api(f"/v1/entities/{GRENOBLE}/peers", platform="facebook", metric="followers").json()
    assert peers["group"]["stratum"] == "commune_100000_plus" and peers["rank"] is not None
    block = page.locator("#pairs-chiffres")
    block.locator(".fact").first.wait_for()
    rank = f"{peers['rank']}{'er' if peers['rank'] == 1 else 'e'} sur {peers['count']}"
    assert block.locator(".fact").first.inner_text().endswith(rank)
    assert (
        "communes de 100 000 habitants et plus de la région Auvergne-Rhône-Alpes"
        in page.locator("#pairs-groupe").inner_text()
    )
    assert block.get_by_role("link", name=peers["best"]["name"]).get_attribute("href") == (
        "/entite/" + peers["best"]["entity_id"]
    )
    growth = dashboard.api(f"/v1/entities/{GRENOBLE}/peers", platform="facebook", metric="growth_abs").json()
    with page.expect_response(re.compile(r"/peers\?.*metric=growth_abs")):
        page.locator("#pairs-indicateur").select_option("growth_abs")
    rank = f"{growth['rank']}{'er' if growth['rank'] == 1 else 'e'} sur {growth['count']}"
    page.wait_for_function(
        "(rank) => document.querySelector('#pairs-chiffres .fact dd').textContent.endsWith(rank)", arg=rank
    )
    assert_accessible(page)  # the entity page with its peers

    # --- A postal code finds its commune; Escape closes the list; a click opens another entity.
    field.fill("")
    field.press_sequentially("69001", delay=30)
    listbox.get_by_role("option").first.wait_for()
    assert options.first.locator(".search__name").inner_text() == "Lyon"
    field.press("Escape")
    assert field.get_attribute("aria-expanded") == "false"
    assert listbox.is_hidden()
    field.fill("")
    field.press_sequentially("saint etienne", delay=30)
    page.wait_for_function(
        "document.querySelector('#recherche-liste .search__name')?.textContent === 'Saint-Étienne'"
    )
    save_screenshot(page, "search-strata.png")
    options.first.click()
    page.wait_for_url(re.compile(r"/entite/COM:42218$"))
    page.get_by_role("heading", level=1, name="Saint-Étienne").wait_for()
    page.locator("#pairs-chiffres .fact").first.wait_for()
    # Nothing found: said in the list and to screen readers.
    field.fill("")
    field.press_sequentially("zzqqxx", delay=30)
    page.get_by_text("Aucune collectivité trouvée").first.wait_for()
    assert page.locator("#recherche-annonce").inner_text() == "Aucune collectivité trouvée."
    page.wait_for_timeout(300)
    console.assert_clean()
