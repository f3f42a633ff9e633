"""axe-core finds no WCAG 2.1 A/AA violation on any view of the dashboard: the home page (presence
barometer with its data table open, rankings, alert feed), an entity page, an unknown entity, and the
same while the scoring worker catches up and the figures include simulated data. And the charts are
honest: months before any observation are "pas de données" (a shaded gap in the chart, words in the
table and in the chart's description), not 0 %; while the worker catches up every figure is marked
"provisoire", visibly and in the accessible description of the charts and tables."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.axe import assert_accessible, axe_version, run_axe
from tests.browser.conftest import Dashboard, Recorded, save_screenshot
from tests.browser.seed import GRENOBLE

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

# kafka: the page's alert feed streams the alerts topic, as in test_dashboard.py.
pytestmark = [pytest.mark.browser, pytest.mark.clickhouse, pytest.mark.kafka]

PROVISIONAL_STATUS: dict[str, Any] = {
    "checked_at": "2026-03-10T12:00:00.000Z",
    "scoring": {
        "events_received": 2_900_000,
        "events_scored": 2_648_766,
        "events_behind": 251_234,
        "partitions": 6,
        "rate_per_s": 3500.0,
        "seconds_to_catch_up": 118.0,
        "provisional": True,
        "threshold_events": 20_000,
    },
}


def wait_for_home(page: Page) -> None:
    page.locator("#classement tbody tr[data-entity-id]").first.wait_for()
    page.wait_for_function("document.querySelectorAll('#presence-chiffres .kpi').length === 5")
    page.locator("#presence-couverture li").first.wait_for()


def open_presence_table(page: Page) -> None:
    page.locator("#presence .data-details summary").click()
    page.locator("#presence-table tbody tr").first.wait_for()


def wait_for_entity(page: Page) -> None:
    page.wait_for_function(
        """() => {
            const cards = document.querySelectorAll('#entite-comptes .account');
            return cards.length > 0 && Array.from(cards).every(
                (c) => !c.querySelector('.account__status').textContent.startsWith('Chargement'));
        }"""
    )


def test_axe_finds_what_it_should(dashboard: Dashboard, page: Page) -> None:
    """The helper fails on a page that breaks the rules (so that its zero below means something)."""
    page.goto(dashboard.url + "/")
    wait_for_home(page)
    assert axe_version(page).startswith("4.")
    page.evaluate(
        """() => document.querySelector('#presence .panel__head').append(
            Object.assign(document.createElement('img'), {src: 'data:,', id: 'sans-alt'}),
            Object.assign(document.createElement('p'), {textContent: 'gris sur gris', id: 'gris',
                style: 'color:#aaaaaa;background:#ffffff'}))"""
    )
    found = {v["id"]: v for v in run_axe(page)}
    assert {"image-alt", "color-contrast"} <= set(found)
    assert found["image-alt"]["nodes"][0]["target"] == ["#sans-alt"]
    with pytest.raises(AssertionError, match="image-alt"):
        assert_accessible(page)
    assert_accessible(page, exclude=["#sans-alt", "#gris"])


def test_every_view_has_no_axe_violation(dashboard: Dashboard, page: Page, console: Recorded) -> None:
    page.goto(dashboard.url + "/")
    wait_for_home(page)
    open_presence_table(page)
    assert_accessible(page)
    save_screenshot(page, "accessibility.png")

    # Another filter state: every platform, another category, the table redrawn.
    for platform in ("tiktok", "mastodon", "bluesky", "threads"):
        page.check(f"#presence-reseau-{platform}")
    page.select_option("#presence-categorie", "departement")
    page.wait_for_function("document.querySelectorAll('#presence-chiffres .kpi').length === 9")
    page.select_option("#classement-indicateur", "per_1000_inhabitants")
    page.locator("#classement-col-valeur", has_text="Pour 1 000 hab.").wait_for()
    assert_accessible(page)

    # An entity page, its account histories drawn.
    page.goto(dashboard.url + "/entite/" + GRENOBLE)
    page.locator("#entite-titre", has_text="Grenoble").wait_for()
    wait_for_entity(page)
    assert_accessible(page)

    # An entity that does not exist: the page says so, accessibly.
    page.goto(dashboard.url + "/entite/COM:99999")
    page.locator("#entite-etat", has_text="introuvable").wait_for()
    assert_accessible(page)
    console.errors[:] = [e for e in console.errors if "404" not in e]  # the lookup of COM:99999
    console.assert_clean()


def test_honest_charts_and_provisional_figures(dashboard: Dashboard, page: Page, console: Recorded) -> None:
    from playwright.sync_api import expect  # here: without playwright the browser fixture skips

    status = {"body": PROVISIONAL_STATUS}

    def serve_status(route: Route) -> None:
        route.fulfill(status=200, content_type="application/json", body=json.dumps(status["body"]))

    def simulated_coverage(route: Route) -> None:
        # The real answer, said to include simulated accounts: the "Données simulées" banner shows too.
        response = route.fetch()
        body: dict[str, Any] = response.json()
        body["simulated"] = True
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/v1/status", serve_status)
    page.route("**/v1/coverage?*", simulated_coverage)
    series_urls: list[str] = []
    page.on("request", lambda r: series_urls.append(r.url) if "/v1/presence/series?" in r.url else None)
    page.goto(dashboard.url + "/?p_mois=60")
    wait_for_home(page)
    page.locator("#calcul-en-cours strong").wait_for()
    page.locator("#donnees-simulees strong").wait_for()

    # Provisional: a visible badge beside each figure's title, and the description of the chart and
    # tables says so.
    for heading in ("#presence-titre", "#classements-titre"):
        assert page.locator(heading + " .badge--provisional").is_visible()
    assert page.locator("#presence-titre").inner_text().lower().endswith("provisoire")
    description = "Chiffres provisoires : le calcul est en cours, ils peuvent encore changer."
    for selector in ("#presence-graphique", "#presence-chiffres", "#presence-table", "#classement"):
        ids = (page.locator(selector).get_attribute("aria-describedby") or "").split()
        assert "chiffres-provisoires" in ids, selector
    assert page.locator("#chiffres-provisoires").text_content() == description
    # What a screen reader is given (Chromium's accessibility tree), not only the attributes.
    expect(page.locator("#presence-graphique")).to_have_accessible_description(description)
    expect(page.locator("#classement")).to_have_accessible_description(re.compile(re.escape(description)))

    # Honest: 60 months asked, two years of data. The API says which points have no observation; the
    # chart leaves them out (a gap, shaded, "pas de données"), the table and the description say so.
    facebook_url = next(u for u in series_urls if "platform=facebook" in u)
    points = httpx.get(facebook_url, timeout=10).json()["points"]
    assert len(points) == 60
    n = sum(not p["observed"] for p in points)
    assert n > 20, "the seed has two years of data: three years of 60 months are not observed"
    assert all(not p["observed"] and p["rate"] is None for p in points[:n])
    assert all(p["observed"] and p["rate"] is not None for p in points[n:]), points
    open_presence_table(page)
    assert page.locator("#presence-table caption .badge--provisional").is_visible()
    rows = page.locator("#presence-table tbody tr")  # newest first; Facebook is the first column
    facebook = [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())]
    assert facebook[-n:] == ["pas de données"] * n
    assert all("%" in cell for cell in facebook[:-n])
    first_month = page.locator("#presence-table tbody tr th").nth(len(points) - n - 1).inner_text()
    chart = page.locator("#presence-graphique")
    assert f"Pas de données avant {first_month}" in (chart.get_attribute("aria-label") or "")
    assert "ce n'est pas 0 %" in page.locator("#presence-etat").inner_text()
    # The months without data are a shaded band on the chart (no line, no point at 0 %), the months
    # with data are not.
    band, data = page.evaluate(
        """() => {
            const canvas = document.querySelector('#presence-graphique canvas');
            const over = document.querySelector('#presence-graphique .u-over').getBoundingClientRect();
            const box = canvas.getBoundingClientRect();
            const ratio = canvas.width / box.width;
            // The share of a vertical line of the plot painted in the band's colour (#f1f5f9).
            const shaded = (x) => {
                const column = canvas.getContext('2d').getImageData(Math.round((x - box.left) * ratio),
                    Math.round((over.top - box.top) * ratio), 1, Math.round(over.height * ratio)).data;
                let n = 0;
                for (let i = 0; i < column.length; i += 4) {
                    if (column[i] === 0xf1 && column[i + 1] === 0xf5 && column[i + 2] === 0xf9) n += 1;
                }
                return n / (column.length / 4);
            };
            return [shaded(over.left + 4), shaded(over.right - 4)];
        }"""
    )
    assert band > 0.5 and data == 0, (band, data)
    assert_accessible(page)
    save_screenshot(page, "honest-chart.png")

    # The entity page while catching up: its accounts' figures are provisional too.
    page.goto(dashboard.url + "/entite/" + GRENOBLE)
    wait_for_entity(page)
    assert page.locator("#entite-comptes-titre .badge--provisional").is_visible()
    expect(page.locator("#entite-faits")).to_have_accessible_description(description)
    assert_accessible(page)

    # Caught up: the badges go, the description is empty.
    status["body"] = {
        **PROVISIONAL_STATUS,
        "scoring": {**PROVISIONAL_STATUS["scoring"], "provisional": False},
    }
    page.wait_for_function("!document.documentElement.dataset.provisional", timeout=12_000)
    assert not page.locator("#entite-comptes-titre .badge--provisional").is_visible()
    assert page.locator("#chiffres-provisoires").text_content() == ""
    expect(page.locator("#entite-faits")).to_have_accessible_description("")
    console.assert_clean()
