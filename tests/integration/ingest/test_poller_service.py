"""The poller service (services/ingest/polling/service.py) against the real Kafka and ClickHouse, with
Bluesky and Mastodon played by a local server replaying their documented answers (the recorded
fixtures of tests/unit/ingest/sources/poller_fixtures)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from services.common.accounts import read_account
from services.common.clickhouse import make_client
from services.common.kafka import ensure_topics
from services.common.names import AccountOrigin, Platform
from services.common.reference import AccountRecord
from services.common.registry import account_rows, user_version, write_accounts
from services.common.settings import Settings
from services.ingest.polling import state
from services.ingest.polling.service import PollerService, create_app
from tests.fixtures.replay import LocalService, Reply, Seen
from tests.integration.ingest.helpers import consume_all

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

FIXTURES = Path(__file__).parents[2] / "unit" / "ingest" / "sources" / "poller_fixtures"
GET_PROFILES = "/xrpc/app.bsky.actor.getProfiles"
LOOKUP = "/social.example/api/v1/accounts/lookup"
FOLLOWERS = {"grenoble.fr": 54_000, "lyon.fr": 800}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def profiles(seen: Seen) -> Reply:
    template = fixture("bluesky_get_profiles.json")["profiles"][0]
    found = [
        {
            **template,
            "did": f"did:plc:{actor.replace('.', '')}",
            "handle": actor,
            "followersCount": FOLLOWERS[actor],
        }
        for actor in seen.values("actors")
        if actor in FOLLOWERS
    ]
    return Reply(200, {"profiles": found})


def lookup(seen: Seen) -> Reply:
    if seen.values("acct") == ["grenoble"]:
        return Reply(200, {**fixture("mastodon_account.json"), "username": "grenoble", "acct": "grenoble"})
    return Reply(404, fixture("mastodon_error_not_found.json"))


@pytest.fixture
def settings(app_settings: Settings, local_service: LocalService) -> Settings:
    local_service.handle(GET_PROFILES, profiles)
    local_service.handle(LOOKUP, lookup)
    ensure_topics(app_settings)
    client = make_client(app_settings)
    db = app_settings.clickhouse_database
    write_accounts(
        client,
        db,
        [
            AccountRecord("COM:38185", Platform.BLUESKY, "bluesky:grenoble.fr", "grenoble.fr", None),
            AccountRecord("COM:69123", Platform.BLUESKY, "bluesky:lyon.fr", "lyon.fr", None),
            AccountRecord(
                "COM:38185",
                Platform.MASTODON,
                "mastodon:grenoble@social.example",
                "grenoble@social.example",
                None,
            ),
            AccountRecord(
                "COM:75056", Platform.MASTODON, "mastodon:paris@social.example", "paris@social.example", None
            ),
        ],
        user_version(),
    )
    # The simulator's invented account: the poller must never ask a platform about it.
    write_accounts(
        client,
        db,
        [AccountRecord("COM:13055", Platform.BLUESKY, "bluesky:invented.example", "invented.example", None)],
        user_version(),
        origin=AccountOrigin.SIMULATOR,
    )
    client.close()
    return app_settings.model_copy(
        update={
            "bluesky_api_url": local_service.url,
            "mastodon_url_template": local_service.url + "/{instance}",
            "poll_activity": False,
            "poller_max_attempts": 1,
        }
    )


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def run_once(settings: Settings) -> int:
    async with PollerService(settings) as service:
        return await service.poll_all_due()


def test_due_accounts_are_polled_published_and_remembered(
    settings: Settings, local_service: LocalService
) -> None:
    not_found = metric("barometre_poller_failures_total", platform="mastodon", reason="not_found")
    published = metric("barometre_poller_snapshots_published_total", platform="bluesky")
    requests = metric("barometre_poller_requests_total", platform="bluesky")

    assert asyncio.run(run_once(settings)) == 4

    records = dict(consume_all(settings, 3))
    assert {key: value["followers"] for key, value in records.items()} == {
        "bluesky:grenoble.fr": 54_000,
        "bluesky:lyon.fr": 800,
        "mastodon:grenoble@social.example": 5874,
    }
    assert {value["source"] for value in records.values()} == {"poller:bluesky", "poller:mastodon"}
    # One getProfiles request for both Bluesky accounts, never the simulated one.
    (batch,) = local_service.seen(GET_PROFILES)
    assert sorted(batch.values("actors")) == ["grenoble.fr", "lyon.fr"]
    assert not any("invented" in seen.url for seen in local_service.requests)

    client = make_client(settings)
    db = settings.clickhouse_database
    states = state.load_states(client, db)
    failures = client.query(f"SELECT account_id, reason, detail FROM {db}.poll_failures").result_rows
    client.close()
    assert set(states) == {
        "bluesky:grenoble.fr",
        "bluesky:lyon.fr",
        "mastodon:grenoble@social.example",
        "mastodon:paris@social.example",
    }
    big, small = states["bluesky:grenoble.fr"], states["bluesky:lyon.fr"]
    assert (big.cadence_s, small.cadence_s) == (3_600, 86_400)  # large hourly, small daily
    assert big.last_success_at == big.last_attempt_at and big.failures == 0 and big.last_reason == ""
    assert 3_240 <= (big.next_due - big.last_attempt_at).total_seconds() <= 3_600  # type: ignore[operator]
    paris = states["mastodon:paris@social.example"]
    assert (paris.last_reason, paris.failures, paris.last_success_at) == ("not_found", 1, None)
    assert (paris.next_due - paris.last_attempt_at).total_seconds() == pytest.approx(900)  # type: ignore[operator]
    assert [(row[0], row[1]) for row in failures] == [("mastodon:paris@social.example", "not_found")]
    assert failures[0][2]  # the platform's answer, for the operator

    assert metric("barometre_poller_failures_total", platform="mastodon", reason="not_found") == not_found + 1
    assert metric("barometre_poller_snapshots_published_total", platform="bluesky") == published + 2
    assert metric("barometre_poller_requests_total", platform="bluesky") == requests + 1

    # A restart reads the stored schedule: nobody is due yet, nothing is asked of the platforms.
    local_service.requests.clear()
    assert asyncio.run(run_once(settings)) == 0
    assert local_service.requests == []


def test_a_stored_due_time_in_the_past_is_polled_at_restart(
    settings: Settings, local_service: LocalService
) -> None:
    asyncio.run(run_once(settings))
    client = make_client(settings)
    db = settings.clickhouse_database
    rows = state.load_states(client, db)
    lyon = rows["bluesky:lyon.fr"]
    state.write_states(client, db, [state.PollState(**{**_fields(lyon), "next_due": lyon.last_attempt_at})])
    client.close()
    local_service.requests.clear()
    assert asyncio.run(run_once(settings)) == 1
    (batch,) = local_service.seen(GET_PROFILES)
    assert batch.values("actors") == ["lyon.fr"]


def _fields(row: state.PollState) -> dict[str, Any]:
    return {name: getattr(row, name) for name in row.__slots__}


def test_renamed_and_gone_accounts_update_the_registry(settings: Settings) -> None:
    # What the service writes after a poll whose result lists a rename and a gone account.
    service = PollerService(settings)
    why = "mastodon: not found by handle nor by stable id"
    service._write([], [], [("bluesky:lyon.fr", "ville.lyon.fr")], [("mastodon:paris@social.example", why)])
    service._write([], [], [("bluesky:never-registered", "x")], [])  # unregistered meanwhile: no row made
    asyncio.run(service.close())
    client = make_client(settings)
    db = settings.clickhouse_database
    rows = {row[0]: row for row in account_rows(client, db, ["bluesky", "mastodon"])}
    assert read_account(client, db, "bluesky:never-registered") is None
    reason = client.command(
        f"SELECT argMax(state_reason, version) FROM {db}.accounts WHERE account_id = 'mastodon:paris@social.example'"
    )
    client.close()
    assert rows["bluesky:lyon.fr"][3] == "ville.lyon.fr"
    assert rows["bluesky:lyon.fr"][2] == "COM:69123"  # the rest of the row is kept
    assert "mastodon:paris@social.example" not in rows  # gone: never polled again
    assert "not found" in str(reason)


def test_readiness_needs_kafka_and_clickhouse(settings: Settings) -> None:
    async def probe(s: Settings) -> httpx.Response:
        app = create_app(s, service=PollerService(s))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://poller"
        ) as client:
            assert (await client.get("/healthz")).json() == {"status": "ok", "service": "poller"}
            assert "barometre_poller_requests_total" in (await client.get("/metrics")).text
            return await client.get("/readyz")

    assert asyncio.run(probe(settings)).status_code == 200
    down = asyncio.run(probe(settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:1"})))
    assert down.status_code == 503
    assert down.json()["checks"]["clickhouse"] == "ok"
    assert down.json()["checks"]["kafka"] != "ok"


def test_the_plan_counts_the_registered_real_accounts(settings: Settings) -> None:
    from services.ingest.polling.plan import build_plans
    from services.ingest.polling.schedule import format_plan

    plans = {plan.platform: plan for plan in build_plans(settings)}
    assert (plans["bluesky"].accounts, plans["mastodon"].accounts) == (2, 2)  # not the simulated one
    assert plans["bluesky"].requests_per_round == 1
    assert plans["bluesky"].budget.requests == 2_700  # 3,000 per 5 minutes, 90% of it
    assert plans["mastodon"].keys == 1
    assert plans["mastodon"].late == 0
    text = format_plan(list(plans.values()))
    assert text.splitlines()[1].startswith("bluesky")
