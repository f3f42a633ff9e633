"""The real world in, end to end: ``barometre discover --source all`` reads the recorded public registries
(Wikidata, the administration's directory: tests/fixtures/recorded) and registers the official accounts
of over 30 collectivités, links in every odd form among them; ``barometre poll`` reads them from a local
server playing every polled platform in its documented format (tests/fixtures/platforms.py); the scoring
worker and the API, as their own processes on a real Kafka broker and the real ClickHouse engine, then
show those accounts in rankings, scores, the entity page and coverage, with the figures the platforms
gave. Last, ``barometre poller`` (the service) publishes them too and counts it in /metrics.

Ports: api 52180, scoring 52181, poller 52182."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common import registry
from services.common.accounts import read_accounts, read_sources
from services.common.clickhouse import make_client
from services.common.names import AccountOrigin, Platform
from services.common.reference import AccountRecord
from services.common.settings import Settings
from services.scoring.maths.score import conversation, engagement, regularity
from tests.e2e.processes import Service, service_env
from tests.fixtures.platforms import Expected, expected, install_platforms
from tests.fixtures.recorded import install_registries
from tests.fixtures.replay import LocalService, serving

PORTS = {"api": 52180, "scoring": 52181, "poller": 52182}
POLLED = ("bluesky", "mastodon", "facebook", "youtube", "x", "instagram", "threads")
# Platforms whose pollers read posts, interactions and replies: with no 30-day history yet, those three
# components are what a first poll gives, and the score needs three (docs/SCORING.md).
SCORED = ("bluesky", "mastodon", "x")

# Links as the registries wrote them → the account and entity they must name (account_sources.url).
ODDITIES: dict[str, tuple[str, str]] = {
    "https://m.facebook.com/marseille?ref=bookmarks": ("facebook:marseille", "COM:13055"),
    "https://fr-fr.facebook.com/VilledeLyon/": ("facebook:villedelyon", "COM:69123"),
    "https://www.facebook.com/profile.php?id=100064512345678": ("facebook:100064512345678", "COM:06088"),
    "https://fb.me/nantesfr": ("facebook:nantesfr", "COM:44109"),
    "https://www.facebook.com/VilledeLimoges/about/?ref=page_internal": (
        "facebook:villedelimoges",
        "COM:87085",
    ),
    "www.facebook.com/besancon.fr": ("facebook:besancon.fr", "COM:25056"),
    "http://www.twitter.com/bordeaux/": ("x:bordeaux", "COM:33063"),
    "https://mobile.twitter.com/tours": ("x:tours", "COM:37261"),
    "https://twitter.com/Pau_fr?ref_src=twsrc%5Etfw": ("x:pau_fr", "COM:64445"),
    "https://twitter.com/#!/amiens": ("x:amiens", "COM:80021"),
    "https://x.com/metz": ("x:metz", "COM:57463"),
    "@strasbourg": ("x:strasbourg", "COM:67482"),
    "https://mastodon.social/@rennes": ("mastodon:rennes@mastodon.social", "COM:35238"),
    "rennes@mastodon.social": ("mastodon:rennes@mastodon.social", "COM:35238"),
    "grenoble.fr": ("bluesky:grenoble.fr", "COM:38185"),
    "https://bsky.app/profile/clermont-ferrand.fr": ("bluesky:clermont-ferrand.fr", "COM:63113"),
    "https://bsky.app/profile/did:plc:br3stv5ll3xq2m4n6p7r5t3w": (
        "bluesky:did:plc:br3stv5ll3xq2m4n6p7r5t3w",
        "COM:29019",
    ),
    "UCx7kV9bM2pQ4rT6wY8zA1cE": ("youtube:UCx7kV9bM2pQ4rT6wY8zA1cE", "COM:38185"),
    "https://www.youtube.com/user/VilleEchirolles": ("youtube:villeechirolles", "COM:38151"),
    "https://www.youtube.com/c/VilleDeVoiron": ("youtube:villedevoiron", "COM:38563"),
    "https://www.instagram.com/reims_ville/reels/": ("instagram:reims_ville", "COM:51454"),
    "https://www.instagram.com/villedegrenoble/?hl=fr": ("instagram:villedegrenoble", "COM:38185"),
    "https://www.threads.net/@dijon_ville": ("threads:dijon_ville", "COM:21231"),
    "https://www.tiktok.com/@villedelille?lang=fr": ("tiktok:villedelille", "COM:59350"),
    "https://www.linkedin.com/company/12345678/": ("linkedin:12345678", "COM:45234"),
}
# Links whose account is held back as a conflict, never guessed between: a /pages/Name/id page against
# the commune's page named by Wikidata; a YouTube /channel/ id against an @handle of the same commune.
CONFLICTS = (
    "conflict (several_accounts, facebook): COM:31555 has 2 facebook accounts: "
    "facebook:123456789012345 (annuaire), facebook:toulouse (wikidata)",
    "conflict (several_accounts, youtube): COM:34172 has 2 youtube accounts: "
    "youtube:UCm0ntp3ll13rV1ll3Off1c1 (annuaire, wikidata), youtube:montpellier (annuaire)",
)
# Invented by the simulator and registered as such: no poller may ask any platform about them.
SIMULATED = (
    AccountRecord("COM:38151", Platform.X, "x:simechirolles", "simechirolles", None),
    AccountRecord(
        "COM:38151", Platform.BLUESKY, "bluesky:simechirolles.bsky.social", "simechirolles.bsky.social", None
    ),
)


def run_cli(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """``barometre <args>`` as a user runs it; its output (stdout), after checking it succeeded."""
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"barometre {' '.join(args)} failed:\n{done.stdout}\n{done.stderr[-3000:]}"
    return done.stdout


def eventually(probe: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    """``probe()``'s first truthy answer; its last error (an AssertionError says what differs) if none."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = probe()
            if answer:
                return answer
            last: Exception = AssertionError(f"{what}: {answer!r}")
        except (AssertionError, httpx.HTTPError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}") from last
        time.sleep(0.5)


def get(service: Service, path: str, **params: Any) -> Any:
    r = httpx.get(f"{service.url}{path}", params=params, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def expected_score(e: Expected) -> float:
    """``score/1`` of a first poll: regularity, engagement and conversation (no 30-day growth yet)."""
    assert e.posts_30d and e.interactions_30d is not None and e.replies_30d is not None
    parts = [
        regularity(e.posts_30d),
        engagement(e.interactions_30d, e.posts_30d, e.followers),
        conversation(e.replies_30d, e.posts_30d),
    ]
    return 5 * math.fsum(parts) / len(parts)


@pytest.fixture
def env(app_settings: Settings, tmp_path: Path) -> dict[str, str]:
    return service_env(app_settings, tmp_path, PORTS)


@pytest.fixture
def stack(env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Service]]:
    """The scoring worker and the API, started first: they come up while discovery runs."""
    running = {name: Service(name, PORTS[name], env, tmp_path).start() for name in ("scoring", "api")}
    try:
        yield running
    finally:
        for service in running.values():
            service.stop()


@pytest.mark.kafka
@pytest.mark.clickhouse
@pytest.mark.slow
def test_discovered_accounts_are_polled_then_ranked_and_scored(
    app_settings: Settings, env: dict[str, str], stack: dict[str, Service], tmp_path: Path
) -> None:
    db = app_settings.clickhouse_database
    client = make_client(app_settings)
    try:
        # --- Discovery: the registries as recorded, Bluesky and Mastodon verifying.
        with serving() as registries:
            report = run_cli({**env, **install_registries(registries)}, "discover", "--source", "all")
        registered = read_accounts(client, db)
        sources = read_sources(client, db)

        kept = {a.account_id: a for a in registered.values() if a.state != "rejected"}
        entities = {a.entity_id for a in kept.values()}
        assert len(entities) >= 30, sorted(entities)
        assert {a.origin for a in registered.values()} == {"discover"}
        named = {(s.url, s.account_id, s.entity_id) for s in sources}
        for url, (account_id, entity_id) in ODDITIES.items():
            assert (url, account_id, entity_id) in named, url
            assert account_id in kept, account_id
        for conflict in CONFLICTS:
            assert conflict in report
        assert not {"facebook:123456789012345", "facebook:toulouse", "youtube:montpellier"} & set(registered)
        grenoble, rennes = kept["bluesky:grenoble.fr"], kept["mastodon:rennes@mastodon.social"]
        assert (grenoble.state, grenoble.platform_id) == ("verified", "did:plc:gr3n0bl3v5ll3d3gr3n0bl3")
        assert (rennes.state, rennes.platform_id) == ("verified", "109432100012345678")
        assert registered["bluesky:paris.fr"].state == "rejected"
        # The report: per platform, and in total, what the registry now holds.
        by_platform_table = report.split("\n\n")[0].splitlines()
        lines = {line.split()[0]: line.split()[1:] for line in by_platform_table if line.strip()}
        assert lines["x"] == ["32", "0", "0", "0", "0", "0", "0"]
        assert lines["bluesky"] == ["5", "0", "0", "0", "0", "1", "1"]
        new = sum(int(lines[p][0]) for p in (*POLLED, "linkedin", "tiktok"))
        assert new == len(registered) and f"{len(registered)} account rows written" in report
        assert lines["total"] == [str(len(registered)), "0", "0", "0", "8", "1", "2"]

        # Invented accounts sit in the same registry: the pollers must never ask about them.
        registry.write_accounts(
            client, db, SIMULATED, registry.user_version(), origin=AccountOrigin.SIMULATOR
        )
        polled = registry.account_rows(client, db, POLLED)
        by_platform: dict[str, list[str]] = {}
        for account_id, platform, *_ in polled:
            by_platform.setdefault(platform, []).append(account_id)
        assert set(by_platform) == set(POLLED)
        assert {a for a, *_ in polled} == {a for a in kept if a.partition(":")[0] in POLLED}

        with serving() as platforms:
            platform_env = {**env, **install_platforms(platforms)}

            # --- One polling round.
            out = run_cli(platform_env, "poll")
            for platform, accounts in by_platform.items():
                assert f"{platform}: {len(accounts)} snapshots, 0 failures" in out, out
            assert out.strip().endswith(f"{len(polled)} snapshots published")
            asked = " ".join(r.url.lower() for r in platforms.requests)
            assert "simechirolles" not in asked  # simulated
            assert "paris.fr" not in asked  # rejected at verification
            assert [r.values("acct") for r in platforms.requests if r.path.endswith("/accounts/lookup")] == [
                ["rennes"]
            ]

            # --- Through the API: rankings, scores, the entity page, coverage.
            for service in stack.values():
                service.wait_ready()
            api = stack["api"]
            for platform, accounts in by_platform.items():
                want: dict[str, int] = {}
                for account_id in accounts:
                    entity = kept[account_id].entity_id
                    want[entity] = want.get(entity, 0) + expected(account_id).followers

                def ranked(platform: str = platform, want: dict[str, int] = want) -> bool:
                    answer = get(api, "/v1/rankings", platform=platform, metric="followers", limit=500)
                    got = {i["entity_id"]: i["followers"] for i in answer["items"]}
                    assert got == want, (platform, got, want)
                    assert [i["value"] for i in answer["items"]] == sorted(want.values(), reverse=True)
                    assert answer["coverage"]["observed"] == len(want)
                    assert answer["coverage"]["simulated"] is (platform in ("x", "bluesky"))
                    return True

                eventually(ranked, f"the {platform} ranking")

            for platform in SCORED:
                scores = [expected_score(expected(a)) for a in by_platform[platform]]
                answer = get(api, "/v1/scores", platform=platform)
                assert answer["count"] == len(scores), (platform, answer)
                assert answer["score"] == pytest.approx(math.fsum(scores) / len(scores), abs=1e-3)
            # Facebook, YouTube and Instagram give no replies: two components on a first poll, no score.
            for platform in ("facebook", "youtube", "instagram"):
                assert get(api, "/v1/scores", platform=platform)["count"] == 0

            page = get(api, "/v1/entities/COM:38185")
            shown_by_id = {a["account_id"]: a for p in page["platforms"] for a in p["accounts"]}
            assert set(shown_by_id) == {a for a in kept if kept[a].entity_id == "COM:38185"}
            for account_id, shown in shown_by_id.items():
                e = expected(account_id)
                assert (shown["followers"], shown["posts_30d"], shown["fresh"]) == (
                    e.followers,
                    e.posts_30d,
                    True,
                ), account_id
                if account_id.partition(":")[0] in SCORED:
                    assert shown["score"] == pytest.approx(expected_score(e), abs=1e-3), account_id
                else:
                    assert shown["score"] is None, account_id
            assert set(page["present_on"]) == {"bluesky", "facebook", "x", "instagram", "youtube"}

            for platform, accounts in by_platform.items():
                cover = get(api, "/v1/coverage", platform=platform)
                assert cover["simulated"] is (platform in ("x", "bluesky")), platform
                observed = sum(row["accounts_observed"] for row in cover["items"])
                never = sum(row["accounts_never_observed"] for row in cover["items"])
                assert (observed, never) == (len(accounts), 1 if platform in ("x", "bluesky") else 0), (
                    platform
                )
                discovered = [
                    o for row in cover["items"] for o in row["by_origin"] if o["origin"] == "discover"
                ]
                assert sum(o["accounts_observed"] for o in discovered) == len(accounts)
            # A platform without a poller: its accounts are known, never observed, and said so.
            tiktok = get(api, "/v1/coverage", platform="tiktok", category="commune")["items"][0]
            assert (tiktok["with_account"], tiktok["observed"], tiktok["never_observed"]) == (2, 0, 2)

            # --- The poller service reads the same accounts on its own schedule.
            budgets = ",".join(f'"{p}": [100000, 60]' for p in POLLED)
            poller = Service(
                "poller",
                PORTS["poller"],
                {**platform_env, "BAROMETRE_POLLER_RATE_BUDGETS": f"{{{budgets}}}"},
                tmp_path,
            )
            poller.start()
            try:
                poller.wait_ready()

                def published() -> bool:
                    metrics = httpx.get(f"{poller.url}/metrics", timeout=5).text
                    counts = re.findall(r'^barometre_poller_snapshots_published_total\{platform="(\w+)"\} (\S+)$',
                                        metrics, re.MULTILINE)  # fmt: skip
                    got = {platform: int(float(n)) for platform, n in counts}
                    assert got == {p: len(a) for p, a in by_platform.items()}, got
                    return True

                eventually(published, "the poller service's snapshots", timeout=60)
            finally:
                poller.stop()
            asked = " ".join(r.url.lower() for r in platforms.requests)
            assert "simechirolles" not in asked
    finally:
        client.close()


def test_install_platforms_refuses_a_missing_credential(local_service: LocalService) -> None:
    """The scripted platforms check credentials as documented, so a poller sending none is caught."""
    install_platforms(local_service)
    url = local_service.url
    x = httpx.get(f"{url}/2/users/by", params={"usernames": "villedegrenoble"}, timeout=5)
    graph = httpx.get(f"{url}/v25.0/", params={"ids": "villedegrenoble"}, timeout=5)
    youtube = httpx.get(
        f"{url}/youtube/v3/channels", params={"part": "statistics", "id": "UC" + "a" * 22}, timeout=5
    )
    assert (x.status_code, x.json()["title"]) == (401, "Unauthorized")
    assert (graph.status_code, graph.json()["error"]["code"]) == (400, 190)
    assert youtube.status_code == 400 and "API_KEY_INVALID" in youtube.text
