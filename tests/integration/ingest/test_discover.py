"""`barometre discover` and `barometre accounts` as a user runs them, against the real ClickHouse engine and
the recorded registries (tests/fixtures/recorded) replayed by a local server."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from services.cli import main
from services.common.accounts import read_accounts, read_sources
from services.common.clickhouse import make_client
from services.common.registry import account_rows
from services.common.settings import Settings
from tests.fixtures.recorded import SPARQL_PATH, install_registries
from tests.fixtures.replay import LocalService, Reply

pytestmark = pytest.mark.clickhouse


def cli(settings: Settings, env: dict[str, str], *args: str) -> Result:
    full = {
        **env,
        "BAROMETRE_CLICKHOUSE_URL": settings.clickhouse_url,
        "BAROMETRE_CLICKHOUSE_DATABASE": settings.clickhouse_database,
    }
    return CliRunner().invoke(main, list(args), env=full, catch_exceptions=False)


def test_discover_registers_accounts_and_is_idempotent(
    app_settings: Settings, local_service: LocalService, tmp_path: Path
) -> None:
    env = install_registries(local_service)

    dry = cli(app_settings, env, "discover", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run: nothing written" in dry.output
    client = make_client(app_settings)
    db = app_settings.clickhouse_database
    try:
        assert read_accounts(client, db) == {} and read_sources(client, db) == []

        out = tmp_path / "review.csv"
        first = cli(app_settings, env, "discover", "--source", "all", "--out", str(out))
        assert first.exit_code == 0, first.output
        registered = read_accounts(client, db)
        entities = {r.entity_id for r in registered.values() if r.state != "rejected"}
        assert len(entities) >= 30
        assert {r.origin for r in registered.values()} == {"discover"}
        grenoble = registered["bluesky:grenoble.fr"]
        assert (grenoble.state, grenoble.platform_id) == ("verified", "did:plc:gr3n0bl3v5ll3d3gr3n0bl3")
        assert grenoble.verified_at is not None and grenoble.discovered_at is not None
        assert registered["bluesky:paris.fr"].state == "rejected"
        assert registered["bluesky:paris.fr"].state_reason == "not found on bluesky"
        assert registered["bluesky:strasbourg.eu"].state == "candidate"
        assert registered["mastodon:rennes@mastodon.social"].platform_id == "109432100012345678"
        # Conflicts are not registered: a page claimed by a commune and its métropole, Paris named as
        # commune and département, two Facebook accounts for Toulouse.
        for held in ("facebook:grenoblealpesmetropole", "facebook:paris", "facebook:toulouse"):
            assert held not in registered
        assert "conflict (several_entities, facebook): named for COM:38421" in first.output
        assert "unverifiable: bluesky:strasbourg.eu" in first.output
        # Every URL oddity landed on one account.
        for account_id in (
            "facebook:villedelyon",
            "facebook:marseille",
            "facebook:100064512345678",
            "facebook:nantesfr",
            "x:strasbourg",
            "x:bordeaux",
            "x:amiens",
            "x:tours",
            "x:pau_fr",
            "facebook:villedelimoges",
            "facebook:besancon.fr",
            "instagram:reims_ville",
            "instagram:villedegrenoble",
            "youtube:villeechirolles",
            "youtube:villedevoiron",
            "linkedin:12345678",
            "tiktok:villedelille",
            "threads:dijon_ville",
            "bluesky:clermont-ferrand.fr",
            "bluesky:did:plc:br3stv5ll3xq2m4n6p7r5t3w",
        ):
            assert account_id in registered, account_id
        sources = {(s.account_id, s.source) for s in read_sources(client, db)}
        assert {("x:villedegrenoble", "wikidata"), ("x:villedegrenoble", "annuaire")} <= sources
        # The pollers read candidates and verified accounts, not rejected ones.
        polled = {r[0] for r in account_rows(client, db, ["bluesky"])}
        assert "bluesky:grenoble.fr" in polled and "bluesky:paris.fr" not in polled

        with out.open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        assert {"entity_id", "platform", "handle", "account_id", "url", "state", "sources"} == set(rows[0])
        assert {"state": "conflict", "account_id": "facebook:toulouse"}.items() <= next(
            r for r in rows if r["account_id"] == "facebook:toulouse"
        ).items()

        # Again: nothing new, nothing changed.
        again = cli(app_settings, env, "discover")
        assert again.exit_code == 0, again.output
        total = next(line for line in again.output.splitlines() if line.startswith("total"))
        assert total.split()[1:3] == ["0", "0"]
        assert read_accounts(client, db) == registered

        # The review file imports as it is (conflicting rows refused, the rest a person's word).
        imported = cli(app_settings, env, "import", "accounts", str(out))
        # Conflicting rows come out one per entity: a second row for the same account is refused.
        assert imported.output.strip().endswith("imported, 2 refused"), imported.output
    finally:
        client.close()


def test_accounts_list_show_reject(app_settings: Settings, local_service: LocalService) -> None:
    env = install_registries(local_service)
    assert cli(app_settings, env, "discover", "--no-verify").exit_code == 0
    assert local_service.seen("/xrpc/com.atproto.identity.resolveHandle") == []

    listed = cli(app_settings, env, "accounts", "list", "--platform", "twitter", "--entity", "COM:38185")
    assert listed.exit_code == 0
    assert listed.output.splitlines()[1:] == [
        "x:villedegrenoble\tx\tCOM:38185\tcandidate\tdiscover\tVilledeGrenoble\thttps://x.com/VilledeGrenoble"
    ]
    assert len(cli(app_settings, env, "accounts", "list", "--limit", "3").output.splitlines()) == 4

    shown = cli(app_settings, env, "accounts", "show", "https://twitter.com/VilledeGrenoble")
    assert "origin: discover" in shown.output
    assert "wikidata for COM:38185: VilledeGrenoble (ref Q1289" in shown.output
    assert "annuaire for COM:38185: https://twitter.com/VilledeGrenoble" in shown.output

    conflict = cli(app_settings, env, "accounts", "show", "facebook:toulouse")
    assert "not registered" in conflict.output
    assert "COM:31555 is also named with facebook:123456789012345 on facebook" in conflict.output

    # Rejecting the wrong one settles the conflict: the next run registers the other.
    rejected = cli(
        app_settings, env, "accounts", "reject", "facebook:123456789012345", "--reason", "old page"
    )
    assert rejected.exit_code == 0 and "rejected (old page)" in rejected.output
    assert cli(app_settings, env, "discover", "--no-verify").exit_code == 0
    client = make_client(app_settings)
    try:
        registered = read_accounts(client, app_settings.clickhouse_database)
    finally:
        client.close()
    assert registered["facebook:toulouse"].state == "candidate"
    assert registered["facebook:123456789012345"].state == "rejected"

    assert (
        "facebook:123456789012345\t"
        in cli(app_settings, env, "accounts", "list", "--state", "rejected").output
    )
    missing = cli(app_settings, env, "accounts", "reject", "x:nobody", "--reason", "x")
    assert missing.exit_code == 1


def test_a_failing_source_is_reported_and_the_rest_goes_in(
    app_settings: Settings, local_service: LocalService
) -> None:
    env = install_registries(local_service)
    env["BAROMETRE_DISCOVERY_MAX_ATTEMPTS"] = "2"
    local_service.script(SPARQL_PATH, Reply(500, "boom"), Reply(500, "boom"))
    result = cli(app_settings, env, "discover", "--source", "wikidata", "--no-verify")
    assert result.exit_code == 1
    assert "incomplete: some Wikidata queries failed" in result.output
    client = make_client(app_settings)
    try:
        assert "x:villedegrenoble" in read_accounts(client, app_settings.clickhouse_database)
    finally:
        client.close()
