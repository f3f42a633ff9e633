"""The parts of the API the dashboard showed nothing of, in a real browser against the real api over a seeded
database: presence on several platforms at once, incidents in the alert feed with their alerts grouped,
acknowledging and silencing from an alert (with a token asked once per browser session), and the links to
the monthly report and to the CSV/Parquet exports."""

from __future__ import annotations

import io
import json
import time
import zipfile
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from kafka import KafkaProducer

from services.common.clickhouse import make_client
from services.common.names import Topic
from services.common.tokens import Scope, create_token
from tests.browser.axe import assert_accessible
from tests.browser.conftest import Dashboard, Recorded, save_screenshot
from tests.browser.seed import GRENOBLE
from tests.browser.test_dashboard import fr_int, publish_alert, wait_for_live_feed

if TYPE_CHECKING:
    from playwright.sync_api import Page

# kafka: the alert feed is a live stream of alerts.v1 and incidents.v1 (GET /v1/alerts/stream).
pytestmark = [pytest.mark.browser, pytest.mark.clickhouse, pytest.mark.kafka]

BOOTSTRAP = "test-bootstrap-token-0123456789abcdef"  # tests/conftest.py's app_settings


def overlap(dashboard: Dashboard, platforms: str, category: str = "commune") -> dict[str, Any]:
    response = dashboard.api("/v1/presence/overlap", platforms=platforms, category=category)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_for_overlap(page: Page, present: int, total: int) -> None:
    page.wait_for_function(
        """([present, total]) => {
             const out = document.querySelector('#recoupement-resultat');
             const p = out.querySelector('[data-present-all]'), t = out.querySelector('[data-total]');
             return p && t && Number(p.dataset.presentAll) === present && Number(t.dataset.total) === total;
           }""",
        arg=[present, total],
    )


def test_overlap_of_platforms(dashboard: Dashboard, page: Page, console: Recorded) -> None:
    page.goto(dashboard.url + "/")
    section = page.locator("#recoupement")
    section.get_by_role("heading", name="Présence sur plusieurs réseaux").wait_for()

    # Facebook + X by default, as the API counts them.
    both = overlap(dashboard, "facebook,x")
    assert 0 < both["present_all"] < both["total"]
    wait_for_overlap(page, both["present_all"], both["total"])
    assert "Facebook + X" in section.locator("#recoupement-resultat").inner_text()

    # A third platform narrows it.
    section.get_by_role("checkbox", name="Instagram").click()
    three = overlap(dashboard, "facebook,x,instagram")
    assert three["present_all"] < both["present_all"]
    wait_for_overlap(page, three["present_all"], three["total"])

    # Another category.
    section.get_by_label("Catégorie").select_option("departement")
    deps = overlap(dashboard, "facebook,x,instagram", "departement")
    wait_for_overlap(page, deps["present_all"], deps["total"])

    # Fewer than two platforms: said, not computed.
    section.get_by_label("Catégorie").select_option("commune")
    for name in ("X", "Instagram"):
        section.get_by_role("checkbox", name=name, exact=True).click()
    page.wait_for_function(
        "document.querySelector('#recoupement-resultat').textContent === 'Choisissez au moins deux réseaux.'"
    )

    # The pairwise matrix of the default platforms: an accessible table whose cells agree with the API.
    table = page.get_by_role("table", name="Part des communes présentes sur le réseau de la ligne")
    table.wait_for()
    assert table.locator("thead th[scope=col]").count() == 5
    assert table.locator("tbody th[scope=row]").count() == 5
    page.wait_for_function("document.querySelectorAll('#recoupement-matrice td[data-pair]').length === 25")
    cell = table.locator('td[data-pair="facebook,x"]')
    assert (
        cell.locator(".overlap-cell__count").inner_text()
        == f"{fr_int(both['present_all'])} / {fr_int(both['total'])}"
    )
    alone = overlap(dashboard, "instagram")
    diagonal = table.locator('td[data-pair="instagram,instagram"] .overlap-cell__count').inner_text()
    assert diagonal == f"{fr_int(alone['present_all'])} / {fr_int(alone['total'])}"
    section.scroll_into_view_if_needed()
    save_screenshot(page, "overlap.png")
    assert_accessible(page, include="#recoupement")  # the block and its matrix, drawn
    console.assert_clean()


def alert_doc(
    n: int, account_id: str, entity_id: str, type: str, minutes_ago: float, now: datetime
) -> dict[str, Any]:
    moment = now - timedelta(minutes=minutes_ago)
    return {
        "alert_id": f"00000000-0000-5000-8000-{n:012d}", "type": type, "account_id": account_id,
        "entity_id": entity_id, "platform": account_id.split(":")[0], "observed_at": moment,
        "detected_at": moment, "value": 1_000.0 + n, "expected": 5_000.0, "score": 8.0,
        "severity": "warning", "status": "open",
    }  # fmt: skip


def store_inhibited(dashboard: Dashboard, alert: dict[str, Any], incident_id: str) -> None:
    """An alert the incident inhibited: stored with ``inhibited_by``, never published on alerts.v1."""
    columns = [k for k in alert if k != "status"]
    client = make_client(dashboard.settings)
    try:
        client.insert(
            f"{dashboard.settings.clickhouse_database}.alerts",
            [[*(alert[k] for k in columns), "{}", incident_id, time.time_ns()]],
            column_names=[*columns, "details", "inhibited_by", "version"],
        )
    finally:
        client.close()


def publish_incident(dashboard: Dashboard, incident: dict[str, Any]) -> None:
    """As the scoring worker does: the row in ``incidents`` and the record on incidents.v1."""
    client = make_client(dashboard.settings)
    try:
        row = [datetime.fromisoformat(v) if k.endswith("_at") else v for k, v in incident.items()]
        client.insert(
            f"{dashboard.settings.clickhouse_database}.incidents",
            [[*row, time.time_ns()]],
            column_names=[*incident, "version"],
        )
    finally:
        client.close()
    producer = KafkaProducer(bootstrap_servers=dashboard.settings.kafka_bootstrap, acks="all")
    try:
        producer.send(
            dashboard.settings.topic(Topic.INCIDENTS),
            key=incident["platform"].encode(),
            value=json.dumps(incident).encode(),
        )
        producer.flush(30)
    finally:
        producer.close()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_incidents_in_the_feed_group_their_alerts(
    dashboard: Dashboard, page: Page, console: Recorded
) -> None:
    now = dashboard.world.now
    page.goto(dashboard.url + "/")
    wait_for_live_feed(page)
    # Published before the incident formed: shown as single alerts at first.
    member = alert_doc(1, "facebook:com-38185", GRENOBLE, "audience_drop", 30, now)
    other = alert_doc(2, "x:com-69123", "COM:69123", "audience_spike", 20, now)
    publish_alert(dashboard, member)
    publish_alert(dashboard, other)
    feed = page.locator("#alertes-liste")
    feed.locator(f'> li[data-alert-id="{member["alert_id"]}"]').wait_for()
    feed.locator(f'> li[data-alert-id="{other["alert_id"]}"]').wait_for()

    incident_id = "00000000-0000-5000-8000-0000000000c1"
    inhibited = alert_doc(3, "facebook:com-69266", "COM:69266", "audience_drop", 10, now)
    store_inhibited(dashboard, inhibited, incident_id)
    incident = {
        "incident_id": incident_id, "type": "audience_drop", "platform": "facebook",
        "first_observed_at": iso(now - timedelta(minutes=40)), "last_observed_at": iso(now - timedelta(minutes=5)),
        "detected_at": iso(now - timedelta(minutes=5)), "updated_at": iso(now - timedelta(minutes=5)),
        "accounts": 12, "members": ["facebook:com-38185", "facebook:com-69266"] + [f"facebook:m{i}" for i in range(10)],
        "emitted_before": ["facebook:com-38185"], "active_accounts": 200, "share": 0.06, "threshold": 10,
        "total_change": -42_000.0, "severity": "critical", "status": "open", "silenced_by": None,
    }  # fmt: skip
    publish_incident(dashboard, incident)

    item = feed.locator(f'> li[data-incident-id="{incident_id}"]')
    item.wait_for(timeout=10_000)
    assert "alert--incident" in (item.get_attribute("class") or "")
    text = item.text_content() or ""
    assert "Incident" in text and "Chute d'audience" in text and "12 comptes touchés" in text
    group = item.locator(".incident__alerts")
    # The member alert moved under the incident, the inhibited one fetched into it, the other left alone.
    group.locator(f'li[data-alert-id="{member["alert_id"]}"]').wait_for(state="attached")
    group.locator(f'li[data-alert-id="{inhibited["alert_id"]}"]').wait_for(state="attached")
    assert feed.locator(f'> li[data-alert-id="{member["alert_id"]}"]').count() == 0
    assert feed.locator(f'> li[data-alert-id="{other["alert_id"]}"]').count() == 1
    page.wait_for_function(
        f"""document.querySelector('[data-incident-id="{incident_id}"] .incident__count').textContent === '2'"""
    )
    item.locator("summary").click()
    assert group.locator(f'li[data-alert-id="{inhibited["alert_id"]}"]').is_visible()
    save_screenshot(page, "incidents.png")
    assert_accessible(page, include="#alertes")  # the feed with an incident, opened

    # Silencing the incident mutes its platform and type (the matchers that mute an incident).
    item.locator(":scope > .alert__actions").get_by_role("button", name="Mettre en sourdine…").click()
    page.get_by_role("dialog", name="Mettre en sourdine").wait_for()
    assert_accessible(page)  # the silence dialog of an incident, open over the page
    page.get_by_role("dialog", name="Mettre en sourdine").get_by_role(
        "button", name="Mettre en sourdine"
    ).click()
    dialog = page.get_by_role("dialog", name="Jeton d'accès")
    dialog.wait_for()
    assert_accessible(page)  # the token dialog, open
    dialog.get_by_label("Jeton").fill(BOOTSTRAP)
    dialog.get_by_role("button", name="Valider").click()
    item.locator(":scope > .alert__message").filter(has_text="En sourdine jusqu'au").wait_for()
    silences = dashboard.api("/v1/silences", active="true").json()["items"]
    assert [(s["platform"], s["type"], s["account_id"], s["created_by"]) for s in silences] == [
        ("facebook", "audience_drop", None, "bootstrap")
    ]

    # Reloaded: the incident comes from GET /v1/incidents, grouped the same way.
    page.reload()
    item.wait_for()
    group.locator(f'li[data-alert-id="{member["alert_id"]}"]').wait_for(state="attached")
    group.locator(f'li[data-alert-id="{inhibited["alert_id"]}"]').wait_for(state="attached")
    console.assert_clean()


def store_alert(dashboard: Dashboard, alert: dict[str, Any]) -> None:
    store_inhibited(dashboard, alert, None)  # type: ignore[arg-type]


def test_acknowledge_and_silence_from_an_alert(dashboard: Dashboard, page: Page, console: Recorded) -> None:
    now = dashboard.world.now
    first = alert_doc(11, "facebook:com-38185", GRENOBLE, "audience_drop", 15, now)
    second = alert_doc(12, "x:com-69123", "COM:69123", "audience_spike", 10, now)
    store_alert(dashboard, first)
    store_alert(dashboard, second)
    client = make_client(dashboard.settings)
    try:
        db = dashboard.settings.clickhouse_database
        ingest_only = create_token(client, db, {Scope.INGEST})
        writer = create_token(client, db, {Scope.ALERTS_WRITE})
    finally:
        client.close()

    page.goto(dashboard.url + "/")
    wait_for_live_feed(page)
    item = page.locator(f'#alertes-liste li[data-alert-id="{first["alert_id"]}"]')
    ack = item.get_by_role("button", name="Prendre en compte")
    ack.wait_for()
    assert page.locator("#alertes-jeton-oublier").is_hidden()

    # No token yet: asked in a dialog. An unknown token is refused (401), one without the scope too (403).
    ack.click()
    dialog = page.get_by_role("dialog", name="Jeton d'accès")
    dialog.wait_for()
    token_field = dialog.get_by_label("Jeton")
    assert token_field.evaluate("el => document.activeElement === el")
    token_field.fill("brm_00000000_not-a-token")
    dialog.get_by_role("button", name="Valider").click()
    dialog.get_by_role("alert").filter(has_text="401").wait_for()
    assert "unknown or revoked token" in dialog.get_by_role("alert").inner_text()
    assert_accessible(page)  # the token dialog saying why the token was refused
    token_field.fill(ingest_only)
    dialog.get_by_role("button", name="Valider").click()
    dialog.get_by_role("alert").filter(has_text="403").wait_for()
    assert "alerts:write" in dialog.get_by_role("alert").inner_text()
    assert page.evaluate("sessionStorage.length") == 0  # refused tokens are not kept
    # Cancelled: the alert says why nothing happened.
    dialog.get_by_role("button", name="Annuler").click()
    item.locator(".alert__message").filter(has_text="403").wait_for()
    assert ack.evaluate("el => document.activeElement === el")  # the focus is back on the button
    assert dashboard.api(f"/v1/alerts/{first['alert_id']}").json()["status"] == "open"

    # The right token, by keyboard only: the alert is acknowledged, in the API too.
    page.keyboard.press("Enter")
    dialog.wait_for()
    page.keyboard.type(writer)
    page.keyboard.press("Enter")
    item.locator(".alert__message").filter(has_text="Prise en compte par brm_").wait_for()
    assert "alert--ack" in (item.get_attribute("class") or "")
    assert item.get_by_role("button", name="Prendre en compte").count() == 0
    detail = dashboard.api(f"/v1/alerts/{first['alert_id']}").json()
    assert detail["status"] == "acknowledged"
    assert detail["ack"]["acked_by"] == writer[:12]
    # Kept for the session only: sessionStorage, never localStorage.
    assert page.evaluate("Object.values(sessionStorage)") == [writer]
    assert page.evaluate("localStorage.length") == 0
    assert page.locator("#alertes-jeton-oublier").is_visible()

    # Silence the other alert's account for 6 hours: no token asked again, the silence exists.
    other = page.locator(f'#alertes-liste li[data-alert-id="{second["alert_id"]}"]')
    other.get_by_role("button", name="Mettre en sourdine…").click()
    silence = page.get_by_role("dialog", name="Mettre en sourdine")
    silence.wait_for()
    assert silence.get_by_label("Durée").input_value() == "24h"  # the default
    assert silence.get_by_role("radio", name="ce compte (x:com-69123)").is_checked()
    silence.get_by_label("Durée").select_option("6h")
    silence.get_by_label("Motif").fill("Concours en cours")
    assert_accessible(page)  # the silence dialog of an alert, filled in
    before = datetime.now(UTC)
    silence.get_by_role("button", name="Mettre en sourdine").click()
    other.locator(".alert__message").filter(has_text="En sourdine jusqu'au").wait_for()
    assert (
        page.get_by_role("dialog", name="Jeton d'accès").count() == 0
        or not page.get_by_role("dialog", name="Jeton d'accès").is_visible()
    )
    silences = dashboard.api("/v1/silences", active="true").json()["items"]
    assert len(silences) == 1
    created = silences[0]
    assert (created["account_id"], created["comment"], created["created_by"]) == (
        "x:com-69123",
        "Concours en cours",
        writer[:12],
    )
    ends = datetime.fromisoformat(created["ends_at"].replace("Z", "+00:00"))
    assert timedelta(hours=5, minutes=55) < ends - before < timedelta(hours=6, minutes=5)
    save_screenshot(page, "alerts-actions.png")
    assert_accessible(page, include="#alertes")  # acknowledged and silenced alerts, their messages

    # Forget the token: gone from the session, asked again next time.
    page.get_by_role("button", name="Oublier le jeton").click()
    page.get_by_text("Jeton oublié.").wait_for()
    assert page.evaluate("sessionStorage.length") == 0
    other.get_by_role("button", name="Prendre en compte").click()
    page.get_by_role("dialog", name="Jeton d'accès").wait_for()
    page.keyboard.press("Escape")
    other.locator(".alert__message").filter(has_text="aucun jeton").wait_for()
    assert dashboard.api(f"/v1/alerts/{second['alert_id']}").json()["status"] == "open"
    # Chromium logs every 4xx answer to fetch() in the console: the two refusals this test asked for,
    # exactly once each, are expected; anything else is an error.
    refused = [
        "console.error: Failed to load resource: the server responded with a status of 401 (Unauthorized)",
        "console.error: Failed to load resource: the server responded with a status of 403 (Forbidden)",
    ]
    assert sorted(e for e in console.errors if e in refused) == refused
    console.errors[:] = [e for e in console.errors if e not in refused]
    console.assert_clean()


def test_report_and_export_links(dashboard: Dashboard, page: Page, console: Recorded) -> None:
    page.goto(dashboard.url + "/")
    section = page.locator("#donnees")
    section.get_by_role("heading", name="Données").wait_for()
    links = section.locator("a[data-download]")
    page.wait_for_function("document.querySelectorAll('#donnees a[data-download^=presence-]').length === 10")

    def check(link_selector: str, content_type: str) -> httpx.Response:
        href = section.locator(link_selector).first.get_attribute("href") or ""
        response = httpx.get(dashboard.url + href, timeout=30)
        assert response.status_code == 200, (href, response.text[:300])
        assert response.headers["content-type"].startswith(content_type), href
        return response

    report = check('a[data-download="report:html"]', "text/html")
    assert "<html" in report.text
    assert check('a[data-download="report:csv"]', "text/csv").text.startswith("section,")
    check('a[data-download="report:json"]', "application/json")
    package = check('a[data-download="opendata:zip"]', "application/zip").content
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        assert "datapackage.json" in archive.namelist()
    ranking_csv = check('a[data-download="rankings:csv"]', "text/csv")
    assert ranking_csv.text.splitlines()[0].startswith("rank,")
    assert (
        check('a[data-download="rankings:parquet"]', "application/vnd.apache.parquet").content[:4] == b"PAR1"
    )
    check('a[data-download="presence-facebook:csv"]', "text/csv")
    # Links follow the filters: the X ranking, then a real download through the browser.
    page.locator("#classement-reseau").select_option("x")
    page.wait_for_function(
        "document.querySelector('#donnees a[data-download=\"rankings:csv\"]').href.includes('platform=x')"
    )
    x_csv = check('a[data-download="rankings:csv"]', "text/csv")
    assert x_csv.text != ranking_csv.text
    with page.expect_download() as download:
        section.locator('a[data-download="rankings:parquet"]').click()
    assert download.value.suggested_filename.endswith(".parquet")
    assert links.count() >= 15
    # The monthly report of an earlier month.
    options = section.get_by_label("Mois").locator("option")
    previous = options.nth(1).get_attribute("value") or ""
    section.get_by_label("Mois").select_option(previous)
    assert f"month={previous}" in (
        section.locator('a[data-download="report:csv"]').get_attribute("href") or ""
    )
    check('a[data-download="report:csv"]', "text/csv")
    assert_accessible(page, include="#donnees")  # the Données section, its links following the filters

    # An entity page: each account's history as a file.
    page.goto(dashboard.url + "/entite/" + GRENOBLE)
    card = page.locator('#entite-comptes .account[data-account-id="facebook:com-38185"]')
    card.locator('a[data-download="history:csv"]').wait_for()
    href = card.locator('a[data-download="history:csv"]').get_attribute("href") or ""
    response = httpx.get(dashboard.url + href, timeout=30)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv"), href
    assert len(response.text.splitlines()) > 10
    console.assert_clean()
