"""Renamed and gone accounts, confirmed by the stable id recorded at verification (``platform_id``),
against a local server replaying each API's documented answers.

A not-found by handle with a known stable id is asked again by that id: found, a normal snapshot with
the new handle under the same ``account_id`` (``PollResult.renamed``); not found either, a ``deleted``
snapshot (``PollResult.gone``). Without a stable id a not-found stays a ``not_found`` failure.
"""

from __future__ import annotations

from typing import Any

import pytest

from services.common.clickhouse import make_client
from services.common.names import AccountStatus
from services.common.settings import Settings
from services.ingest.poll import load_refs
from services.ingest.sources.pollers import AccountRef, FailureReason
from services.ingest.sources.pollers.bluesky import BlueskyPoller
from services.ingest.sources.pollers.facebook import FacebookPoller
from services.ingest.sources.pollers.mastodon import MastodonPoller
from services.ingest.sources.pollers.youtube import YouTubePoller
from tests.fixtures.replay import FakeTime, LocalService, Reply, Seen
from tests.unit.ingest.sources.pollers_helpers import P, by_account, fixture, poll, run
from tests.unit.ingest.sources.pollers_helpers import make as make_poller


def make(cls: type[P], server: LocalService, time: FakeTime, **overrides: Any) -> P:
    # Renames alone; activity after a rename has its own test.
    return make_poller(cls, server, time, **{"poller_max_attempts": 2, "poll_activity": False, **overrides})


# --- Bluesky.

GET_PROFILES = "/xrpc/app.bsky.actor.getProfiles"
GET_PROFILE = "/xrpc/app.bsky.actor.getProfile"
AUTHOR_FEED = "/xrpc/app.bsky.feed.getAuthorFeed"
RENAMED_DID = "did:plc:x7k2mf4qz3vwhc6ja5tyrnbe"
GONE_DID = "did:plc:g0n3g0n3g0n3g0n3g0n3g0n3"
TAKEN_DID = "did:plc:q4e7nb2wdl5ysx3hkm6tav2c"


def bluesky_profile(did: str, handle: str, followers: int = 100) -> dict[str, Any]:
    template = dict(fixture("bluesky_get_profiles.json")["profiles"][1])
    template.update(did=did, handle=handle, followersCount=followers)
    return template


def bluesky_answers(seen: Seen) -> Reply:
    actor = seen.values("actor")[0]
    if actor == RENAMED_DID:
        return Reply(200, bluesky_profile(RENAMED_DID, "grenoble.fr", 12873))
    if actor == TAKEN_DID:
        return Reply(200, bluesky_profile(TAKEN_DID, "isere.fr", 4021))
    return Reply(400, fixture("bluesky_error_not_found.json"))


def test_bluesky_renamed_gone_taken_over_and_typo(server: LocalService, time: FakeTime) -> None:
    # getProfiles leaves out the handles that no longer resolve, and answers the handle given up by the
    # Isère for the account that took it.
    server.script(
        GET_PROFILES, Reply(200, {"profiles": [bluesky_profile("did:plc:someoneelse", "departement38.fr")]})
    )
    server.handle(GET_PROFILE, bluesky_answers)
    refs = [
        AccountRef.create("bluesky", handle="villedegrenoble.bsky.social", platform_id=RENAMED_DID),
        AccountRef.create("bluesky", handle="disparue.bsky.social", platform_id=GONE_DID),
        AccountRef.create("bluesky", handle="departement38.fr", platform_id=TAKEN_DID, entity_id="DEP:38"),
        AccountRef.create("bluesky", handle="faute-de-frappe.bsky.social"),
    ]

    result = run(poll(make(BlueskyPoller, server, time), refs))

    out = by_account(result)
    renamed = out["bluesky:villedegrenoble.bsky.social"]  # same account id, new handle
    assert (renamed.status, renamed.followers, renamed.handle) == (AccountStatus.ACTIVE, 12873, "grenoble.fr")
    gone = out["bluesky:disparue.bsky.social"]
    assert (gone.status, gone.followers) == (AccountStatus.DELETED, 0)
    taken = out["bluesky:departement38.fr"]
    assert (taken.followers, taken.handle, taken.entity_id) == (4021, "isere.fr", "DEP:38")
    typo = out["bluesky:faute-de-frappe.bsky.social"]
    assert typo.reason is FailureReason.NOT_FOUND
    assert result.renamed == [
        ("bluesky:departement38.fr", "isere.fr"),  # the batch's accounts come first
        ("bluesky:villedegrenoble.bsky.social", "grenoble.fr"),
    ]
    assert result.gone == ["bluesky:disparue.bsky.social"]
    asked = [seen.values("actor")[0] for seen in server.seen(GET_PROFILE)]
    # The taken-over handle goes to its DID at once; the typo is asked once, never by an id.
    assert asked == [
        TAKEN_DID,
        "villedegrenoble.bsky.social",
        RENAMED_DID,
        "disparue.bsky.social",
        GONE_DID,
        "faute-de-frappe.bsky.social",
    ]


def test_bluesky_registered_by_did_and_not_found_is_gone_without_asking_twice(
    server: LocalService, time: FakeTime
) -> None:
    server.script(GET_PROFILES, Reply(200, {"profiles": []}))
    server.handle(GET_PROFILE, bluesky_answers)
    ref = AccountRef.create("bluesky", account_id=f"bluesky:{GONE_DID}", platform_id=GONE_DID)

    result = run(poll(make(BlueskyPoller, server, time), [ref]))

    assert result.gone == [f"bluesky:{GONE_DID}"] and result.snapshots[0].status is AccountStatus.DELETED
    assert len(server.seen(GET_PROFILE)) == 1


def test_bluesky_deactivated_when_asked_by_did_is_not_gone(server: LocalService, time: FakeTime) -> None:
    server.script(GET_PROFILES, Reply(200, {"profiles": []}))
    server.script(GET_PROFILE, Reply(400, fixture("bluesky_error_not_found.json")))
    server.script(GET_PROFILE, Reply(400, fixture("bluesky_error_deactivated.json")))
    ref = AccountRef.create("bluesky", handle="pause.bsky.social", platform_id=GONE_DID)

    result = run(poll(make(BlueskyPoller, server, time), [ref]))

    # Deactivated can come back: a deleted snapshot, as before, but the account is not listed as gone.
    assert result.snapshots[0].status is AccountStatus.DELETED
    assert result.gone == [] and result.renamed == []


def test_bluesky_renamed_account_has_its_activity_read_by_did(server: LocalService, time: FakeTime) -> None:
    server.script(GET_PROFILES, Reply(200, {"profiles": []}))
    server.handle(GET_PROFILE, bluesky_answers)
    server.script(AUTHOR_FEED, Reply(200, {"feed": []}))
    ref = AccountRef.create("bluesky", handle="villedegrenoble.bsky.social", platform_id=RENAMED_DID)

    result = run(poll(make(BlueskyPoller, server, time, poll_activity=True), [ref]))

    [snapshot] = result.snapshots
    assert (snapshot.posts_30d, snapshot.interactions_30d, snapshot.replies_30d) == (0, 0, 0)
    assert server.seen(AUTHOR_FEED)[0].values("actor") == [RENAMED_DID]


def test_rename_is_reported_only_with_its_snapshot(server: LocalService, time: FakeTime) -> None:
    server.script(GET_PROFILES, Reply(200, {"profiles": []}))
    server.script(GET_PROFILE, Reply(400, fixture("bluesky_error_not_found.json")))
    broken = bluesky_profile(RENAMED_DID, "grenoble.fr")
    broken["followersCount"] = -1  # the contract refuses it
    server.script(GET_PROFILE, Reply(200, broken))
    ref = AccountRef.create("bluesky", handle="villedegrenoble.bsky.social", platform_id=RENAMED_DID)

    result = run(poll(make(BlueskyPoller, server, time), [ref]))

    assert [f.reason for f in result.failures] == [FailureReason.INVALID_RESPONSE]
    assert result.renamed == [] and result.snapshots == []


# --- Mastodon.

LOOKUP = "/piaille.fr/api/v1/accounts/lookup"


def mastodon_account(account_id: str, username: str) -> dict[str, Any]:
    account = fixture("mastodon_account.json")
    account.update(id=account_id, username=username, acct=username, followers_count=321)
    return account


def test_mastodon_renamed_gone_and_typo(server: LocalService, time: FakeTime) -> None:
    server.handle(LOOKUP, lambda seen: Reply(404, fixture("mastodon_error_not_found.json")))
    server.script(
        "/piaille.fr/api/v1/accounts/110000000000000001",
        Reply(200, mastodon_account("110000000000000001", "mairie_de_voiron")),
    )
    server.script(
        "/piaille.fr/api/v1/accounts/110000000000000002", Reply(404, fixture("mastodon_error_not_found.json"))
    )
    server.script("/piaille.fr/api/v1/accounts/110000000000000003", Reply(410, {"error": "Gone"}))
    refs = [
        AccountRef.create("mastodon", handle="voiron@piaille.fr", platform_id="110000000000000001"),
        AccountRef.create("mastodon", handle="ancienne@piaille.fr", platform_id="110000000000000002"),
        AccountRef.create("mastodon", handle="supprimee@piaille.fr", platform_id="110000000000000003"),
        AccountRef.create("mastodon", handle="faute@piaille.fr"),
    ]

    result = run(poll(make(MastodonPoller, server, time), refs))

    out = by_account(result)
    renamed = out["mastodon:voiron@piaille.fr"]
    assert (renamed.followers, renamed.handle) == (321, "mairie_de_voiron@piaille.fr")
    assert result.renamed == [("mastodon:voiron@piaille.fr", "mairie_de_voiron@piaille.fr")]
    assert result.gone == ["mastodon:ancienne@piaille.fr", "mastodon:supprimee@piaille.fr"]
    assert out["mastodon:ancienne@piaille.fr"].status is AccountStatus.DELETED
    assert out["mastodon:faute@piaille.fr"].reason is FailureReason.NOT_FOUND
    assert len(server.requests) == 7  # 4 lookups, 3 by id: none for the typo


def test_mastodon_name_taken_by_another_account_is_asked_by_id(server: LocalService, time: FakeTime) -> None:
    server.script(LOOKUP, Reply(200, mastodon_account("110000000000000099", "voiron")))
    server.script(
        "/piaille.fr/api/v1/accounts/110000000000000001",
        Reply(200, mastodon_account("110000000000000001", "ville_voiron")),
    )
    ref = AccountRef.create("mastodon", handle="voiron@piaille.fr", platform_id="110000000000000001")

    result = run(poll(make(MastodonPoller, server, time), [ref]))

    assert result.renamed == [("mastodon:voiron@piaille.fr", "ville_voiron@piaille.fr")]


def test_mastodon_through_a_fixed_server_ids_are_not_used(server: LocalService, time: FakeTime) -> None:
    server.handle(
        "/relay/api/v1/accounts/lookup", lambda seen: Reply(404, fixture("mastodon_error_not_found.json"))
    )
    ref = AccountRef.create("mastodon", handle="voiron@piaille.fr", platform_id="110000000000000001")

    result = run(poll(make(MastodonPoller, server, time, mastodon_url_template=server.url + "/relay"), [ref]))

    # Ids are per server: the relay's ids are not the account's own server's.
    assert [f.reason for f in result.failures] == [FailureReason.NOT_FOUND]
    assert len(server.requests) == 1 and result.gone == []


# --- Facebook.

GRENOBLE_PAGE = "103254106379012"


def test_facebook_renamed_and_gone_pages_are_isolated_then_asked_by_id(
    server: LocalService, time: FakeTime
) -> None:
    def pages(seen: Seen) -> Reply:
        ids = seen.values("ids")[0].split(",")
        if "villedegrenoble" in ids or "disparue" in ids:
            return Reply(400, fixture("facebook_error_alias_not_exist.json"))
        return Reply(200, {i: {"followers_count": 1000, "name": i, "id": "157341334281567"} for i in ids})

    server.handle("/v25.0/", pages)
    page = dict(fixture("facebook_pages.json")[GRENOBLE_PAGE], username="VilleDeGrenoble38")
    server.script(f"/v25.0/{GRENOBLE_PAGE}", Reply(200, page))
    server.script("/v25.0/999000111222333", Reply(400, fixture("facebook_error_object_not_exist.json")))
    refs = [
        AccountRef.create("facebook", handle="villedegrenoble", platform_id=GRENOBLE_PAGE),
        AccountRef.create("facebook", handle="villedelyon", platform_id="157341334281567"),
        AccountRef.create("facebook", handle="disparue", platform_id="999000111222333"),
    ]

    result = run(poll(make(FacebookPoller, server, time), refs))

    out = by_account(result)
    assert (out["facebook:villedegrenoble"].followers, out["facebook:villedegrenoble"].handle) == (
        98412,
        "VilleDeGrenoble38",
    )
    assert out["facebook:villedelyon"].followers == 1000
    assert out["facebook:disparue"].status is AccountStatus.DELETED
    assert result.renamed == [("facebook:villedegrenoble", "VilleDeGrenoble38")]
    assert result.gone == ["facebook:disparue"]
    assert server.seen(f"/v25.0/{GRENOBLE_PAGE}")[0].values("fields") == [
        "followers_count,fan_count,name,username"
    ]


def test_facebook_page_registered_by_id_and_missing_is_gone(server: LocalService, time: FakeTime) -> None:
    server.handle("/v25.0/", lambda seen: Reply(400, fixture("facebook_error_object_not_exist.json")))
    ref = AccountRef.create("facebook", account_id="facebook:999000111222333", platform_id="999000111222333")
    typo = AccountRef.create("facebook", account_id="facebook:999000111222334")

    result = run(poll(make(FacebookPoller, server, time, facebook_batch_size=50), [ref, typo]))

    out = by_account(result)
    assert out["facebook:999000111222333"].status is AccountStatus.DELETED
    assert out["facebook:999000111222334"].reason is FailureReason.NOT_FOUND
    assert result.gone == ["facebook:999000111222333"]
    assert len(server.requests) == 3  # both, then each alone; no second request by the same id


# --- YouTube.

CHANNELS = "/youtube/v3/channels"
GRENOBLE_TV = "UCq3Ts7nV2xWk9bLp4Rz8YmA"
GONE_CHANNEL = "UCzzzzzzzzzzzzzzzzzzzzzz"


def youtube_channels(seen: Seen) -> Reply:
    if seen.values("id") == [GRENOBLE_TV]:
        item = dict(fixture("youtube_channels.json")["items"][0])
        item["snippet"] = {"title": "Ville de Grenoble", "customUrl": "@grenoble-officiel", "country": "FR"}
        return Reply(200, {"kind": "youtube#channelListResponse", "items": [item]})
    return Reply(200, {"kind": "youtube#channelListResponse", "pageInfo": {"totalResults": 0}})


def test_youtube_renamed_handle_gone_channel_and_typo(server: LocalService, time: FakeTime) -> None:
    server.handle(CHANNELS, youtube_channels)
    refs = [
        AccountRef.create("youtube", handle="@VilleDeGrenoble", platform_id=GRENOBLE_TV),
        AccountRef.create("youtube", account_id=f"youtube:{GONE_CHANNEL}", platform_id=GONE_CHANNEL),
        AccountRef.create("youtube", handle="@FauteDeFrappe"),
    ]

    result = run(poll(make(YouTubePoller, server, time), refs))

    out = by_account(result)
    renamed = out["youtube:villedegrenoble"]
    assert (renamed.followers, renamed.handle) == (18400, "@grenoble-officiel")
    assert out[f"youtube:{GONE_CHANNEL}"].status is AccountStatus.DELETED
    assert out["youtube:fautedefrappe"].reason is FailureReason.NOT_FOUND
    assert result.renamed == [("youtube:villedegrenoble", "@grenoble-officiel")]
    assert result.gone == [f"youtube:{GONE_CHANNEL}"]
    by_id = [s for s in server.seen(CHANNELS) if s.values("id") == [GRENOBLE_TV]]
    assert [s.values("part") for s in by_id] == [["statistics,snippet"]]  # snippet: the new handle
    assert len(server.seen(CHANNELS)) == 4  # the id batch, two forHandle, one by id


# --- The registry gives the stable id to the pollers.


@pytest.mark.clickhouse
def test_load_refs_carries_the_recorded_platform_id(app_settings: Settings) -> None:
    client = make_client(app_settings)
    try:
        client.insert(
            f"{app_settings.clickhouse_database}.accounts",
            [
                [
                    "bluesky:grenoble.fr",
                    "bluesky",
                    "COM:38185",
                    "grenoble.fr",
                    "",
                    0,
                    "discover",
                    "verified",
                    RENAMED_DID,
                    1,
                ],
                ["bluesky:lyon.fr", "bluesky", "COM:69123", "lyon.fr", "", 0, "import", "verified", None, 1],
                [
                    "bluesky:parti.fr",
                    "bluesky",
                    "COM:38421",
                    "parti.fr",
                    "",
                    0,
                    "discover",
                    "gone",
                    GONE_DID,
                    1,
                ],
            ],
            column_names=[
                "account_id",
                "platform",
                "entity_id",
                "handle",
                "url",
                "deleted",
                "origin",
                "state",
                "platform_id",
                "version",
            ],
        )
    finally:
        client.close()

    refs = {ref.account_id: ref for ref in load_refs(app_settings)}

    assert set(refs) == {"bluesky:grenoble.fr", "bluesky:lyon.fr"}  # a gone account is not polled
    assert refs["bluesky:grenoble.fr"].platform_id == RENAMED_DID
    assert refs["bluesky:lyon.fr"].platform_id is None
