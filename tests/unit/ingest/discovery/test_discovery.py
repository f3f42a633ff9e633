"""Discovery's sources, verification, merge and report, against the recorded answers (tests/fixtures/recorded)
replayed by a local server; time is a fake clock, so back-off and Retry-After are asserted on exactly."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from services.common.accounts import AccountRow, SourceRow
from services.common.links import parse_link
from services.common.names import Platform
from services.common.reference import collect, parse_accounts_csv
from services.common.settings import Settings
from services.ingest.discovery import merge
from services.ingest.discovery.annuaire import (
    PAGE_LIMIT,
    harvest_annuaire,
    parse_page,
    record_candidates,
    where_clause,
)
from services.ingest.discovery.http import Fetcher
from services.ingest.discovery.model import Candidate, DiscoverySource, EntityIndex, Harvest
from services.ingest.discovery.report import build, render, write_csv
from services.ingest.discovery.verify import Verdict, Verification, verify_links
from services.ingest.discovery.wikidata import MalformedResults, build_query, harvest_wikidata, parse_results
from tests.fixtures.recorded import ANNUAIRE_PATH, SPARQL_PATH, install_registries, load
from tests.fixtures.replay import NOW, FakeTime, LocalService, Reply, Seen

T = TypeVar("T")

ENTITIES = EntityIndex(
    known=frozenset(
        {
            "COM:38185",
            "COM:75056",
            "COM:69123",
            "COM:13055",
            "COM:31555",
            "COM:06088",
            "COM:44109",
            "COM:67482",
            "COM:34172",
            "COM:33063",
            "COM:59350",
            "COM:35238",
            "COM:21231",
            "COM:63113",
            "COM:29019",
            "COM:76540",
            "COM:80021",
            "COM:87085",
            "COM:2A004",
            "COM:97411",
            "COM:74010",
            "COM:38421",
            "COM:38151",
            "COM:38563",
            "COM:64445",
            "COM:25056",
            "COM:57463",
            "COM:51454",
            "COM:45234",
            "COM:37261",
            "COM:30189",
            "COM:66136",
            "DEP:38",
            "DEP:75",
            "DEP:33",
            "DEP:13",
            "DEP:69",
            "DEP:2A",
            "DEP:974",
            "REG:84",
            "REG:11",
            "REG:53",
            "REG:93",
            "REG:94",
            "EPCI:200040715",
            "EPCI:200046977",
            "EPCI:244400404",
            "EPCI:243500139",
            "EPCI:243300316",
            "EPCI:243100518",
        }
    ),
    departement={
        "COM:38185": "38",
        "COM:33063": "33",
        "COM:13055": "13",
        "COM:69123": "69",
        "COM:35238": "35",
    },
    region={"COM:38185": "84", "COM:33063": "75", "COM:13055": "93", "COM:69123": "84", "COM:35238": "53"},
)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def settings_for(service: LocalService, **overrides: Any) -> Settings:
    env = install_registries(service)
    values: dict[str, Any] = {k.removeprefix("BAROMETRE_").lower(): v for k, v in env.items()}
    values.update(discovery_backoff_seconds=1.0, discovery_contact="ops@example.org", **overrides)
    return Settings.model_validate(values)


def fetcher(settings: Settings, time: FakeTime) -> Fetcher:
    return Fetcher(settings, clock=time.clock, sleep=time.sleep, random=lambda: 0.5)


async def wikidata(settings: Settings, time: FakeTime) -> Harvest:
    async with fetcher(settings, time) as f:
        return await harvest_wikidata(f, settings, ENTITIES)


async def annuaire(settings: Settings, time: FakeTime) -> Harvest:
    async with fetcher(settings, time) as f:
        return await harvest_annuaire(f, settings, ENTITIES)


def by_account(harvest: Harvest) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for c in harvest.candidates:
        out.setdefault(c.link.account_id, set()).add(c.entity_id)
    return out


# --- Wikidata.


def test_query_is_paged_in_a_total_order_and_epci_leaves_communes_out() -> None:
    query = build_query("P1616", "P2002", 5000, 10000)
    assert "wdt:P1616 ?code" in query and "wdt:P2002 ?value" in query
    assert "FILTER NOT EXISTS { ?item wdt:P374 [] . }" in query
    assert "ORDER BY ?item ?code ?value" in query and "LIMIT 5000" in query and "OFFSET 10000" in query
    assert "FILTER NOT EXISTS" not in build_query("P374", "P2002", 10, 0)
    with pytest.raises(ValueError):
        build_query("P31", "P2002", 10, 0)


def test_results_are_read_strictly() -> None:
    rows, problems, count = parse_results(load("wikidata/P374-P2002.json"))
    assert count == len(rows) + len(problems) == 14
    assert any("is not a Wikidata item IRI" in p for p in problems)
    assert any("?value is missing" in p for p in problems)
    assert {"item": "Q1289", "code": "38185", "value": "VilledeGrenoble"} in [vars_of(r) for r in rows]
    bad: Any
    for bad in (
        {},
        {"head": {}},
        {"head": {"vars": ["item"]}, "results": {"bindings": []}},
        {"head": {"vars": ["item", "code", "value"]}},
        [],
    ):
        with pytest.raises(MalformedResults):
            parse_results(bad)
    lang = {
        "head": {"vars": ["item", "code", "value"]},
        "results": {
            "bindings": [
                {
                    "item": {"type": "uri", "value": "http://www.wikidata.org/entity/Q1289"},
                    "code": {"type": "literal", "value": "38185"},
                    "value": {"type": "literal", "value": "VilledeGrenoble", "xml:lang": "fr"},
                },
                {
                    "item": {"type": "uri", "value": "http://www.wikidata.org/entity/Q1289"},
                    "code": {"type": "literal", "value": "38185", "datatype": 5},
                    "value": {"type": "literal", "value": "x"},
                },
            ]
        },
    }
    rows, problems, _ = parse_results(lang)
    assert [r.value for r in rows] == ["VilledeGrenoble"] and "non-string datatype" in problems[0]


def vars_of(row: Any) -> dict[str, str]:
    return {"item": row.item, "code": row.code, "value": row.value}


def test_wikidata_harvest_maps_codes_to_registry_entities(
    local_service: LocalService, fake_time: FakeTime
) -> None:
    settings = settings_for(local_service)
    harvest = run(wikidata(settings, fake_time))

    accounts = by_account(harvest)
    assert accounts["x:villedegrenoble"] == {"COM:38185"}
    assert accounts["facebook:paris"] == {"COM:75056", "DEP:75"}  # Paris is a commune and a département
    assert accounts["x:laregionaura"] == {"REG:84"}
    assert accounts["x:corsedusud"] == {"DEP:2A"}
    assert accounts["x:grenoblemetro"] == {"EPCI:200040715"}
    assert accounts["mastodon:rennes@mastodon.social"] == {"COM:35238"}
    assert accounts["youtube:UCx7kV9bM2pQ4rT6wY8zA1cE"] == {"COM:38185"}
    assert (
        "x:mairie1paris" not in accounts
        and "x:rhonealpes" not in accounts
        and "x:edfofficiel" not in accounts
    )
    assert harvest.skipped == {
        "commune code not in the registry": 1,
        "region code not in the registry": 1,
        "epci code not in the registry": 1,
    }
    assert len(harvest.issues) == 3 and harvest.failed is None
    # One POST per (code, account) pair, the query as a form, the SPARQL JSON format asked for, and a
    # User-Agent that names the tool and how to reach its operator.
    seen = local_service.seen(SPARQL_PATH)
    assert len(seen) == harvest.requests == 36
    assert {s.method for s in seen} == {"POST"}
    assert seen[0].headers["Accept"] == "application/sparql-results+json"
    assert "barometre-discover/" in seen[0].headers["User-Agent"]
    assert "ops@example.org" in seen[0].headers["User-Agent"]
    assert "SELECT ?item ?code ?value" in seen[0].form()["query"]


def test_wikidata_pages_until_a_short_page(local_service: LocalService, fake_time: FakeTime) -> None:
    settings = settings_for(local_service, discovery_sparql_page_size=4)
    harvest = run(wikidata(settings, fake_time))
    offsets = [
        s.form()["query"].split("OFFSET ")[1].strip()
        for s in local_service.seen(SPARQL_PATH)
        if "wdt:P374 ?code ;\n        wdt:P2002 ?value" in s.form()["query"]
    ]
    assert offsets == ["0", "4", "8", "12"]  # 14 bindings: 4 + 4 + 4 + 2
    assert by_account(harvest)["x:villedelille"] == {"COM:59350"}


def test_429_with_retry_after_then_success(local_service: LocalService, fake_time: FakeTime) -> None:
    settings = settings_for(local_service)
    local_service.script(SPARQL_PATH, Reply(429, "Too Many Requests", headers={"Retry-After": "7"}))
    harvest = run(wikidata(settings, fake_time))
    assert fake_time.sleeps == [7.0]
    assert harvest.failed is None and len(local_service.seen(SPARQL_PATH)) == 37


def test_5xx_until_attempts_run_out_loses_one_query_only(
    local_service: LocalService, fake_time: FakeTime
) -> None:
    settings = settings_for(local_service, discovery_max_attempts=3)
    local_service.script(SPARQL_PATH, *[Reply(503, "Service Unavailable")] * 3)
    harvest = run(wikidata(settings, fake_time))
    assert fake_time.sleeps == [0.75, 1.5]  # equal jitter at 0.5: 1 s then 2 s ceilings
    assert harvest.failed is not None and "gave up after 3 attempts" in harvest.issues[0].reason
    assert len(harvest.candidates) > 40  # the other 35 queries were read


def test_timeout_is_retried(local_service: LocalService, fake_time: FakeTime) -> None:
    settings = settings_for(local_service, discovery_timeout_seconds=0.2)
    local_service.script(SPARQL_PATH, Reply(200, "{}", delay=0.6))
    harvest = run(wikidata(settings, fake_time))
    assert fake_time.sleeps == [0.75] and harvest.failed is None


def test_an_unusable_document_is_reported(local_service: LocalService, fake_time: FakeTime) -> None:
    settings = settings_for(local_service)
    local_service.script(SPARQL_PATH, Reply(200, "<html>maintenance</html>", content_type="text/html"))
    harvest = run(wikidata(settings, fake_time))
    assert harvest.failed and "unusable answer" in harvest.issues[0].reason


# --- The annuaire.


def test_annuaire_offices_and_links(local_service: LocalService, fake_time: FakeTime) -> None:
    settings = settings_for(local_service)
    harvest = run(annuaire(settings, fake_time))

    accounts = by_account(harvest)
    # Every URL form lands on one account id.
    assert accounts["facebook:villedelyon"] == {"COM:69123"}  # fr-fr. host, trailing slash
    assert accounts["facebook:marseille"] == {"COM:13055"}  # m. host, query string
    assert accounts["facebook:123456789012345"] == {"COM:31555"}  # /pages/Name/id
    assert accounts["facebook:100064512345678"] == {"COM:06088"}  # profile.php?id=
    assert accounts["x:strasbourg"] == {"COM:67482"}  # bare @handle, named Twitter
    assert accounts["x:tours"] == {"COM:37261"}  # mobile.twitter.com
    assert accounts["facebook:besancon.fr"] == {"COM:25056"}  # no scheme
    assert accounts["mastodon:rennes@mastodon.social"] == {"COM:35238"}  # https://server/@user
    assert accounts["bluesky:did:plc:br3stv5ll3xq2m4n6p7r5t3w"] == {"COM:29019"}
    # Councils are matched through the commune they sit in, EPCI by SIREN.
    assert accounts["facebook:isere.departement"] == {"DEP:38"}
    assert accounts["x:laregionaura"] == {"REG:84"}
    assert accounts["x:bxmetropole"] == {"EPCI:243300316"}
    assert accounts["facebook:grenoblealpesmetropole"] == {"EPCI:200040715", "COM:38421"}
    assert "facebook:seynod" not in accounts and "facebook:mairiedeparis1" not in accounts
    assert harvest.skipped == {
        "commune not in the registry": 1,
        "mairie annexe or déléguée": 1,
        "network barometre does not follow": 1,
        "not a mairie office": 1,
    }
    reasons = " | ".join(i.reason for i in harvest.issues)
    assert "reseau_social is not valid JSON" in reasons and "without a valid siren" in reasons
    assert "'not a link'" in reasons
    # One page per office type (few records), each filtered on the server, ordered and bounded.
    seen = local_service.seen(ANNUAIRE_PATH)
    assert len(seen) == 4
    assert all(s.values("limit") == ["100"] and s.values("order_by") == ["id"] for s in seen)
    assert seen[0].values("where") == [where_clause("mairie")]


def test_annuaire_beyond_the_window_is_asked_per_departement(
    local_service: LocalService, fake_time: FakeTime
) -> None:
    settings = settings_for(local_service)
    big = {"total_count": 12_000, "results": [{"id": f"r{i}"} for i in range(PAGE_LIMIT)]}

    def answer(seen: Seen) -> Reply:
        where = seen.values("where")[0]
        if "startswith" in where or "mairie" not in where:
            return Reply(200, {"total_count": 0, "results": []})
        return Reply(200, big)

    local_service.handle(ANNUAIRE_PATH, answer)
    run(annuaire(settings, fake_time))
    mairie = [s for s in local_service.seen(ANNUAIRE_PATH) if '"mairie"' in s.values("where")[0]]
    windowed = [s for s in mairie if "startswith" not in s.values("where")[0]]
    assert len(windowed) == 100  # offsets 0..9900: the last page that fits offset + limit <= 10000
    assert max(int(s.values("offset")[0]) for s in windowed) == 9_900
    per_dep = {s.values("where")[0] for s in mairie} - {s.values("where")[0] for s in windowed}
    assert len(per_dep) == 7  # one query per département of the registry


def test_annuaire_page_format_is_checked() -> None:
    assert parse_page({"total_count": 0, "results": []}) == (0, [])
    bad: Any
    for bad in ([], {"results": []}, {"total_count": "3", "results": []}, {"total_count": 1}):
        with pytest.raises(ValueError):
            parse_page(bad)
    harvest = Harvest(DiscoverySource.ANNUAIRE)
    record_candidates("not a record", "mairie", ENTITIES, harvest)
    record_candidates({"nom": "no id"}, "mairie", ENTITIES, harvest)
    assert [i.reason for i in harvest.issues] == ["a record is not a JSON object", "a record without an id"]


# --- Verification.


def test_verification_on_bluesky_and_mastodon(local_service: LocalService, fake_time: FakeTime) -> None:
    settings = settings_for(local_service, discovery_max_attempts=2)
    links = [
        parse_link(text, platform)
        for text, platform in [
            ("grenoble.fr", Platform.BLUESKY),
            ("paris.fr", Platform.BLUESKY),
            ("strasbourg.eu", Platform.BLUESKY),
            ("https://bsky.app/profile/did:plc:br3stv5ll3xq2m4n6p7r5t3w", None),
            ("rennes@mastodon.social", Platform.MASTODON),
            ("nantesfr@mastodon.social", Platform.MASTODON),
            ("VilledeGrenoble", Platform.X),
        ]
    ]

    async def go() -> dict[str, Verification]:
        async with fetcher(settings, fake_time) as f:
            return await verify_links(settings, f, links)

    found = run(go())
    assert found["bluesky:grenoble.fr"] == Verification(
        Verdict.VERIFIED, "resolved on bluesky", "did:plc:gr3n0bl3v5ll3d3gr3n0bl3", "grenoble.fr"
    )
    assert found["bluesky:paris.fr"].verdict is Verdict.NOT_FOUND
    assert found["bluesky:strasbourg.eu"].verdict is Verdict.UNVERIFIABLE
    assert "gave up after 2 attempts" in found["bluesky:strasbourg.eu"].detail
    assert found["bluesky:did:plc:br3stv5ll3xq2m4n6p7r5t3w"].handle == "brest.fr"
    assert found["mastodon:rennes@mastodon.social"].platform_id == "109432100012345678"
    assert found["mastodon:nantesfr@mastodon.social"] == Verification(
        Verdict.NOT_FOUND, "not found on mastodon"
    )
    assert "x:villedegrenoble" not in found  # X cannot be verified without credentials
    webfinger = local_service.seen("/mastodon.social/.well-known/webfinger")
    assert webfinger[0].values("resource") == ["acct:rennes@mastodon.social"]


# --- Merge (pure).

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def cand(source: str, entity: str, text: str, platform: Platform | None = None, ref: str = "r") -> Candidate:
    return Candidate(DiscoverySource(source), entity, parse_link(text, platform), text, ref)


def row(account_id: str, entity: str, *, origin: str = "discover", state: str = "candidate") -> AccountRow:
    platform, _, handle = account_id.partition(":")
    return AccountRow(account_id, platform, entity, handle, None, origin, state, discovered_at=T0)


def test_two_sources_naming_one_account_are_one_account_with_two_provenances() -> None:
    candidates = [
        cand("wikidata", "COM:38185", "VilledeGrenoble", Platform.X, "Q1289"),
        cand("annuaire", "COM:38185", "https://twitter.com/VilledeGrenoble?lang=fr", ref="rec-1"),
        cand("annuaire", "COM:38185", "https://x.com/villedegrenoble/", ref="rec-2"),
    ]
    analysis = merge.analyse(candidates, {})
    plan = merge.plan(analysis, {}, {}, {}, NOW)
    assert [(a.account_id, a.state, a.origin, a.handle, a.discovered_at) for a in plan.accounts] == [
        ("x:villedegrenoble", "candidate", "discover", "VilledeGrenoble", NOW)
    ]
    assert [(s.source, s.reference, s.url) for s in plan.sources] == [
        ("annuaire", "rec-1,rec-2", "https://twitter.com/VilledeGrenoble?lang=fr"),
        ("wikidata", "Q1289", "VilledeGrenoble"),
    ]
    assert plan.outcomes[0].status is merge.Status.NEW and plan.outcomes[0].sources == (
        "annuaire",
        "wikidata",
    )


def test_an_account_claimed_by_two_entities_is_a_conflict_not_registered() -> None:
    candidates = [
        cand("annuaire", "COM:38421", "https://www.facebook.com/GrenobleAlpesMetropole"),
        cand("wikidata", "EPCI:200040715", "GrenobleAlpesMetropole", Platform.FACEBOOK),
    ]
    plan = merge.plan(merge.analyse(candidates, {}), {}, {}, {}, NOW)
    assert plan.accounts == []
    assert [c.kind for c in plan.conflicts] == [merge.ConflictKind.SEVERAL_ENTITIES]
    assert {o.entity_id for o in plan.outcomes} == {"COM:38421", "EPCI:200040715"}
    assert len(plan.sources) == 2  # the evidence is kept


def test_an_entity_with_two_accounts_holds_the_new_ones() -> None:
    candidates = [
        cand("wikidata", "COM:31555", "toulouse", Platform.FACEBOOK),
        cand("annuaire", "COM:31555", "https://www.facebook.com/pages/Toulouse/123456789012345"),
    ]
    plan = merge.plan(merge.analyse(candidates, {}), {}, {}, {}, NOW)
    assert plan.accounts == [] and plan.conflicts[0].kind is merge.ConflictKind.SEVERAL_ACCOUNTS
    # Against an imported account: the discovered one is held, the import is untouched.
    existing = {
        "facebook:mairietoulouse": row(
            "facebook:mairietoulouse", "COM:31555", origin="import", state="verified"
        )
    }
    plan = merge.plan(merge.analyse(candidates[:1], existing), existing, {}, {}, NOW)
    assert plan.accounts == [] and "facebook:mairietoulouse (registered, import)" in plan.conflicts[0].detail
    # Once a person rejected the intruder, nothing is held.
    existing["facebook:toulouse"] = row("facebook:toulouse", "COM:31555", state="rejected")
    plan = merge.plan(merge.analyse(candidates[:1], existing), existing, {}, {}, NOW)
    assert plan.conflicts == [] and plan.accounts == [] and plan.outcomes[0].status is merge.Status.KEPT


def test_an_imported_account_wins() -> None:
    existing = {"x:lyon": row("x:lyon", "COM:69123", origin="import", state="verified")}
    plan = merge.plan(
        merge.analyse([cand("wikidata", "COM:69123", "Lyon", Platform.X)], existing), existing, {}, {}, NOW
    )
    assert plan.accounts == [] and plan.outcomes[0].status is merge.Status.KEPT and len(plan.sources) == 1
    # Named for another entity than the import's: a conflict, the import untouched.
    plan = merge.plan(
        merge.analyse([cand("wikidata", "REG:84", "Lyon", Platform.X)], existing), existing, {}, {}, NOW
    )
    assert plan.accounts == [] and plan.conflicts[0].kind is merge.ConflictKind.REGISTERED_ELSEWHERE


def test_verification_and_idempotence() -> None:
    candidates = [
        cand("wikidata", "COM:38185", "grenoble.fr", Platform.BLUESKY),
        cand("wikidata", "COM:75056", "paris.fr", Platform.BLUESKY),
        cand("wikidata", "COM:67482", "strasbourg.eu", Platform.BLUESKY),
    ]
    analysis = merge.analyse(candidates, {})
    assert {link.account_id for link in merge.needs_verification(analysis, {})} == {
        "bluesky:grenoble.fr",
        "bluesky:paris.fr",
        "bluesky:strasbourg.eu",
    }
    verdicts = {
        "bluesky:grenoble.fr": Verification(Verdict.VERIFIED, "resolved", "did:plc:abc", "grenoble.fr"),
        "bluesky:paris.fr": Verification(Verdict.NOT_FOUND, "not found on bluesky"),
        "bluesky:strasbourg.eu": Verification(Verdict.UNVERIFIABLE, "HTTP 502"),
    }
    plan = merge.plan(analysis, {}, {}, verdicts, NOW)
    states = {a.account_id: (a.state, a.platform_id, a.verified_at, a.state_reason) for a in plan.accounts}
    assert states == {
        "bluesky:grenoble.fr": ("verified", "did:plc:abc", NOW, "resolved"),
        "bluesky:paris.fr": ("rejected", None, None, "not found on bluesky"),
        "bluesky:strasbourg.eu": ("candidate", None, None, ""),
    }
    report = build(plan, [], dry_run=False)
    assert report.total("new") == 3 and report.total("rejected") == 1 and report.total("unverifiable") == 1
    # Again, with what was written: nothing to write, only the unverified one asked again.
    existing = {a.account_id: a for a in plan.accounts}
    first_seen = merge.first_seen_of(plan.sources)
    again = merge.analyse(candidates, existing)
    assert [link.account_id for link in merge.needs_verification(again, existing)] == [
        "bluesky:strasbourg.eu"
    ]
    later = datetime(2026, 12, 1, tzinfo=UTC)
    replan = merge.plan(again, existing, first_seen, {}, later)
    assert replan.accounts == []
    assert {o.status for o in replan.outcomes} == {merge.Status.UNCHANGED, merge.Status.KEPT}
    assert {(s.first_seen, s.last_seen) for s in replan.sources} == {(NOW, later)}


def test_a_source_changing_its_mind_changes_a_discovered_account() -> None:
    existing = {"x:metz": row("x:metz", "COM:57463")}
    plan = merge.plan(
        merge.analyse([cand("annuaire", "EPCI:200039865", "https://x.com/Metz")], existing),
        existing,
        {},
        {},
        NOW,
    )
    assert plan.outcomes[0].status is merge.Status.CHANGED and plan.accounts[0].entity_id == "EPCI:200039865"
    assert plan.accounts[0].discovered_at == T0  # carried over


# --- Report and review CSV.


def test_review_csv_imports_as_it_is() -> None:
    candidates = [
        cand("wikidata", "COM:38185", "VilledeGrenoble", Platform.X),
        cand("annuaire", "COM:06088", "https://www.facebook.com/profile.php?id=100064512345678"),
        cand("annuaire", "COM:38421", "https://www.facebook.com/GrenobleAlpesMetropole"),
        cand("annuaire", "EPCI:200040715", "https://www.facebook.com/GrenobleAlpesMetropole"),
    ]
    plan = merge.plan(merge.analyse(candidates, {}), {}, {}, {}, NOW)
    out = io.StringIO()
    assert write_csv(plan, out) == 4
    lines = out.getvalue().splitlines()
    assert lines[0] == "entity_id,platform,handle,account_id,url,state,sources"
    assert "COM:06088,facebook,100064512345678,facebook:100064512345678," in out.getvalue()
    good, bad = collect(parse_accounts_csv(lines))
    assert len(good) == 3 and len(bad) == 1 and "facebook:grenoblealpesmetropole" in bad[0][1]
    text = render(build(plan, [], dry_run=True))
    assert "dry run: nothing written" in text and "conflict (several_entities, facebook)" in text
    facebook = next(line for line in text.splitlines() if line.startswith("facebook"))
    assert facebook.split() == ["facebook", "1", "0", "0", "0", "2", "0", "0"]


def test_provenance_rows_are_whole() -> None:
    plan = merge.plan(
        merge.analyse([cand("wikidata", "COM:38185", "VilledeGrenoble", Platform.X, "Q1289")], {}),
        {},
        {},
        {},
        NOW,
    )
    assert plan.sources == [
        SourceRow(
            "x:villedegrenoble",
            "wikidata",
            "COM:38185",
            "x",
            "VilledeGrenoble",
            "VilledeGrenoble",
            "Q1289",
            NOW,
            NOW,
        )
    ]
    assert json.dumps([s.reference for s in plan.sources]) == '["Q1289"]'
