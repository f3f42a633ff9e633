"""The platform pollers against a local HTTP server replaying the platforms' documented answers.

The server (aiohttp, in a thread, on 127.0.0.1 with an ephemeral port) plays scripted replies per path
and records every request. Time is a fake clock whose sleep only advances it and records how long
the poller chose to wait, so rate limits and back-off are asserted on without waiting. The only real
waits are the HTTP timeouts of the timeout test, a few tenths of a second.
"""

from __future__ import annotations

import inspect
import json
import zlib
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from services.common.names import AccountStatus, Platform
from services.common.settings import Settings
from services.ingest.sources.pollers import (
    AccountRef,
    FailureReason,
    Poller,
    PollerConfigError,
    PollResult,
    poll_accounts,
)
from services.ingest.sources.pollers.bluesky import BlueskyPoller
from services.ingest.sources.pollers.facebook import FacebookPoller
from services.ingest.sources.pollers.mastodon import MastodonPoller
from services.ingest.sources.pollers.ratelimit import (
    parse_facebook_usage,
    parse_reset,
    parse_retry_after,
)
from services.ingest.sources.pollers.runner import POLLER_CLASSES
from services.ingest.sources.pollers.youtube import YouTubePoller, next_quota_reset
from tests.fixtures.replay import NOW, FakeTime, LocalService, Reply, Seen
from tests.unit.ingest.sources.pollers_helpers import (
    by_account,
    fixture,
    make,
    poll,
    run,
    settings_for,
)

# --- The local platform: tests/fixtures/replay.py.


LocalPlatform = LocalService


def ref(platform: str, value: str, entity_id: str = "COM:38185") -> AccountRef:
    if ":" in value and not value.startswith("did:"):
        return AccountRef.create(platform, account_id=value, entity_id=entity_id)
    return AccountRef.create(platform, handle=value, entity_id=entity_id)


# --- Bluesky.

GET_PROFILES = "/xrpc/app.bsky.actor.getProfiles"
GET_PROFILE = "/xrpc/app.bsky.actor.getProfile"


def profile(actor: str, followers: int = 100) -> dict[str, Any]:
    template = dict(fixture("bluesky_get_profiles.json")["profiles"][1])
    template.update(
        did=f"did:plc:{zlib.crc32(actor.encode()):024d}", handle=actor, followersCount=followers, postsCount=7
    )
    return template


def echo_profiles(seen: Seen) -> Reply:
    return Reply(200, {"profiles": [profile(actor) for actor in seen.values("actors")]})


def test_bluesky_batches_26_actors_in_two_calls(server: LocalPlatform, time: FakeTime) -> None:
    server.handle(GET_PROFILES, echo_profiles)
    refs = [ref("bluesky", f"mairie{i}.bsky.social") for i in range(26)]

    result = run(poll(make(BlueskyPoller, server, time), refs))

    calls = server.seen(GET_PROFILES)
    assert [len(call.values("actors")) for call in calls] == [25, 1]
    assert len(result.snapshots) == 26 and not result.failures
    first = result.snapshots[0]
    assert first.account_id == "bluesky:mairie0.bsky.social"
    assert (first.followers, first.following, first.posts_total) == (100, 88, 7)
    assert first.source == "poller:bluesky" and first.observed_at == NOW and first.entity_id == "COM:38185"
    assert time.sleeps == []


def test_bluesky_matches_profiles_by_did_or_handle(server: LocalPlatform, time: FakeTime) -> None:
    server.script(GET_PROFILES, Reply(200, fixture("bluesky_get_profiles.json")))
    refs = [
        ref("bluesky", "GRENOBLE.fr"),
        ref("bluesky", "bluesky:did:plc:q4e7nb2wdl5ysx3hkm6tav2c", "DEP:38"),
        ref("bluesky", "auvergnerhonealpes.fr", "REG:84"),
    ]

    result = run(poll(make(BlueskyPoller, server, time), refs))

    assert server.seen(GET_PROFILES)[0].values("actors") == [
        "grenoble.fr",
        "did:plc:q4e7nb2wdl5ysx3hkm6tav2c",
        "auvergnerhonealpes.fr",
    ]
    snapshots = by_account(result)
    grenoble = snapshots["bluesky:grenoble.fr"]
    assert (grenoble.followers, grenoble.following, grenoble.posts_total) == (12873, 164, 2315)
    # Registered by DID: the id stays the DID, the handle comes from the profile.
    isere = snapshots["bluesky:did:plc:q4e7nb2wdl5ysx3hkm6tav2c"]
    assert (isere.followers, isere.handle, isere.entity_id) == (4021, "isere.fr", "DEP:38")
    assert snapshots["bluesky:auvergnerhonealpes.fr"].following == 0


def test_bluesky_accounts_left_out_are_asked_alone(server: LocalPlatform, time: FakeTime) -> None:
    server.script(GET_PROFILES, Reply(200, {"profiles": [profile("grenoble.fr")]}))
    answers = {
        "suspendu.bsky.social": Reply(400, fixture("bluesky_error_takedown.json")),
        "desactive.bsky.social": Reply(400, fixture("bluesky_error_deactivated.json")),
        "inconnu.bsky.social": Reply(400, fixture("bluesky_error_not_found.json")),
        "revenu.bsky.social": Reply(200, profile("revenu.bsky.social", followers=5)),
    }
    server.handle(GET_PROFILE, lambda seen: answers[seen.values("actor")[0]])
    refs = [ref("bluesky", name) for name in ["grenoble.fr", *answers]]

    result = run(poll(make(BlueskyPoller, server, time), refs))

    out = by_account(result)
    assert out["bluesky:grenoble.fr"].status is AccountStatus.ACTIVE
    suspended = out["bluesky:suspendu.bsky.social"]
    assert (suspended.status, suspended.followers) == (AccountStatus.SUSPENDED, 0)
    assert out["bluesky:desactive.bsky.social"].status is AccountStatus.DELETED
    assert out["bluesky:inconnu.bsky.social"].reason is FailureReason.NOT_FOUND
    assert "Profile not found" in out["bluesky:inconnu.bsky.social"].detail
    assert out["bluesky:revenu.bsky.social"].followers == 5
    assert len(server.seen(GET_PROFILE)) == 4


def test_bluesky_batch_refused_as_a_whole_is_asked_account_by_account(
    server: LocalPlatform, time: FakeTime
) -> None:
    server.script(GET_PROFILES, Reply(400, fixture("bluesky_error_invalid_actor.json")))
    server.handle(
        GET_PROFILE,
        lambda seen: (
            Reply(200, profile(seen.values("actor")[0]))
            if seen.values("actor")[0] != "bad_handle"
            else Reply(400, fixture("bluesky_error_invalid_actor.json"))
        ),
    )
    refs = [ref("bluesky", "grenoble.fr"), ref("bluesky", "bad_handle"), ref("bluesky", "lyon.fr")]

    result = run(poll(make(BlueskyPoller, server, time), refs))

    out = by_account(result)
    assert out["bluesky:grenoble.fr"].followers == 100 and out["bluesky:lyon.fr"].followers == 100
    assert out["bluesky:bad_handle"].reason is FailureReason.HTTP_ERROR
    assert "must be a valid did or a handle" in out["bluesky:bad_handle"].detail


# --- Retries, shared by every poller (exercised through Bluesky, the simplest).


def test_429_with_retry_after_seconds_then_success(server: LocalPlatform, time: FakeTime) -> None:
    server.script(GET_PROFILES, Reply(429, fixture("bluesky_error_rate_limit.json"), {"Retry-After": "7"}))
    server.handle(GET_PROFILES, echo_profiles)

    result = run(poll(make(BlueskyPoller, server, time), [ref("bluesky", "grenoble.fr")]))

    assert len(result.snapshots) == 1 and not result.failures
    assert time.sleeps == [7.0]
    assert len(server.seen(GET_PROFILES)) == 2


def test_retry_after_as_an_http_date(server: LocalPlatform, time: FakeTime) -> None:
    when = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    server.script(GET_PROFILES, Reply(503, "upstream overloaded", {"Retry-After": when}))
    server.handle(GET_PROFILES, echo_profiles)

    result = run(poll(make(BlueskyPoller, server, time), [ref("bluesky", "grenoble.fr")]))

    assert len(result.snapshots) == 1
    assert time.sleeps == [30.0]


def test_5xx_then_success_backs_off_exponentially(server: LocalPlatform, time: FakeTime) -> None:
    server.script(GET_PROFILES, Reply(502, "Bad Gateway"), Reply(503, {"error": "InternalServerError"}))
    server.handle(GET_PROFILES, echo_profiles)

    result = run(poll(make(BlueskyPoller, server, time), [ref("bluesky", "grenoble.fr")]))

    assert len(result.snapshots) == 1
    # Equal jitter with random() = 0.5: 3/4 of 1 s, then 3/4 of 2 s.
    assert time.sleeps == [0.75, 1.5]


def test_timeouts_then_success(server: LocalPlatform, time: FakeTime) -> None:
    server.script(
        GET_PROFILES, Reply(200, {"profiles": []}, delay=0.6), Reply(200, {"profiles": []}, delay=0.6)
    )
    server.handle(GET_PROFILES, echo_profiles)

    poller = make(BlueskyPoller, server, time, poller_timeout_seconds=0.2)
    result = run(poll(poller, [ref("bluesky", "grenoble.fr")]))

    assert [s.account_id for s in result.snapshots] == ["bluesky:grenoble.fr"]
    assert time.sleeps == [0.75, 1.5]


def test_retries_exhausted_fail_their_accounts_and_keep_the_others(
    server: LocalPlatform, time: FakeTime
) -> None:
    server.script(GET_PROFILES, *[Reply(500, {"error": "InternalServerError"})] * 4)
    server.handle(GET_PROFILES, echo_profiles)
    refs = [ref("bluesky", f"mairie{i}.bsky.social") for i in range(27)]

    result = run(poll(make(BlueskyPoller, server, time), refs))

    assert len(server.seen(GET_PROFILES)) == 5  # 4 attempts for the first batch, 1 for the second
    assert {f.reason for f in result.failures} == {FailureReason.HTTP_ERROR}
    assert len(result.failures) == 25
    assert "gave up after 4 attempts" in result.failures[0].detail
    assert [s.account_id for s in result.snapshots] == [
        "bluesky:mairie25.bsky.social",
        "bluesky:mairie26.bsky.social",
    ]
    assert time.sleeps == [0.75, 1.5, 3.0]  # no back-off after the last attempt
    assert result.stopped is None


def test_connection_refused_is_reported_as_unreachable(time: FakeTime) -> None:
    settings = Settings(bluesky_api_url="http://127.0.0.1:9", poller_max_attempts=2)
    poller = BlueskyPoller(settings, clock=time.clock, sleep=time.sleep, random=lambda: 0.5)

    result = run(poll(poller, [ref("bluesky", "grenoble.fr")]))

    assert [f.reason for f in result.failures] == [FailureReason.UNREACHABLE]
    assert "gave up after 2 attempts" in result.failures[0].detail


def test_ratelimit_remaining_zero_waits_until_reset(server: LocalPlatform, time: FakeTime) -> None:
    reset = int((NOW + timedelta(seconds=42)).timestamp())  # Bluesky: a Unix timestamp
    headers = {"RateLimit-Limit": "3000", "RateLimit-Remaining": "0", "RateLimit-Reset": str(reset)}
    server.handle(
        GET_PROFILES,
        lambda seen: Reply(
            200, echo_profiles(seen).body, headers if len(server.seen(GET_PROFILES)) == 1 else {}
        ),
    )
    refs = [ref("bluesky", f"m{i}.bsky.social") for i in range(26)]

    result = run(poll(make(BlueskyPoller, server, time), refs))

    assert len(result.snapshots) == 26
    assert time.sleeps == [42.0]


def test_low_budget_spreads_requests_over_the_window(server: LocalPlatform, time: FakeTime) -> None:
    headers = {"RateLimit-Limit": "3000", "RateLimit-Remaining": "10", "RateLimit-Reset": "100"}
    server.handle(GET_PROFILES, lambda seen: Reply(200, echo_profiles(seen).body, headers))
    refs = [ref("bluesky", f"m{i}.bsky.social") for i in range(50)]

    # Audience requests only: activity's feed requests would be paced too (test_poller_activity.py).
    result = run(poll(make(BlueskyPoller, server, time, poll_activity=False), refs))

    assert len(result.snapshots) == 50
    assert time.sleeps == [10.0]  # 100 s left for 10 requests


# --- Mastodon.


def lookup_path(instance: str) -> str:
    return f"/{instance}/api/v1/accounts/lookup"


def test_mastodon_reads_the_account_on_its_own_server(server: LocalPlatform, time: FakeTime) -> None:
    server.script(lookup_path("mastodon.social"), Reply(200, fixture("mastodon_account.json")))

    result = run(poll(make(MastodonPoller, server, time), [ref("mastodon", "@VilleDeLyon@mastodon.social")]))

    [snapshot] = result.snapshots
    assert snapshot.account_id == "mastodon:villedelyon@mastodon.social"
    assert (snapshot.followers, snapshot.following, snapshot.posts_total) == (5874, 37, 1203)
    assert snapshot.handle == "villedelyon@mastodon.social" and snapshot.source == "poller:mastodon"
    assert server.seen(lookup_path("mastodon.social"))[0].values("acct") == ["villedelyon"]


def test_mastodon_suspended_gone_missing_and_incomplete(server: LocalPlatform, time: FakeTime) -> None:
    server.handle(
        lookup_path("piaille.fr"),
        lambda seen: {
            "mairie_exemple": Reply(200, fixture("mastodon_account_suspended.json")),
            "ancienne": Reply(410, {"error": "Gone"}),
        }.get(seen.values("acct")[0], Reply(404, fixture("mastodon_error_not_found.json"))),
    )
    refs = [
        ref("mastodon", "mairie_exemple@piaille.fr"),
        ref("mastodon", "ancienne@piaille.fr"),
        ref("mastodon", "faute_de_frappe@piaille.fr"),
        ref("mastodon", "sans_serveur"),
        ref("mastodon", "intrus@127.0.0.1"),  # the server becomes a URL's host: only DNS names pass
    ]

    result = run(poll(make(MastodonPoller, server, time), refs))

    out = by_account(result)
    suspended = out["mastodon:mairie_exemple@piaille.fr"]
    assert (suspended.status, suspended.followers) == (AccountStatus.SUSPENDED, 0)
    assert out["mastodon:ancienne@piaille.fr"].status is AccountStatus.DELETED
    missing = out["mastodon:faute_de_frappe@piaille.fr"]
    assert missing.reason is FailureReason.NOT_FOUND and "Record not found" in missing.detail
    assert out["mastodon:sans_serveur"].reason is FailureReason.UNSUPPORTED
    assert out["mastodon:intrus@127.0.0.1"].reason is FailureReason.UNSUPPORTED
    assert len(server.seen(lookup_path("piaille.fr"))) == 3  # 404 and 410 are not retried
    assert time.sleeps == []


def test_mastodon_through_one_fixed_server(server: LocalPlatform, time: FakeTime) -> None:
    server.script("/relay/api/v1/accounts/lookup", Reply(200, fixture("mastodon_account.json")))
    poller = make(MastodonPoller, server, time, mastodon_url_template=server.url + "/relay")

    result = run(poll(poller, [ref("mastodon", "villedelyon@mastodon.social")]))

    assert [s.followers for s in result.snapshots] == [5874]
    assert server.seen("/relay/api/v1/accounts/lookup")[0].values("acct") == ["villedelyon@mastodon.social"]


def test_mastodon_other_4xx_is_not_retried(server: LocalPlatform, time: FakeTime) -> None:
    server.handle(
        lookup_path("mastodon.social"), lambda seen: Reply(403, {"error": "This action is not allowed"})
    )

    result = run(poll(make(MastodonPoller, server, time), [ref("mastodon", "ville@mastodon.social")]))

    assert [(f.reason, f.detail) for f in result.failures] == [
        (FailureReason.HTTP_ERROR, "HTTP 403 Forbidden: This action is not allowed")
    ]
    assert len(server.seen(lookup_path("mastodon.social"))) == 1


def test_mastodon_waits_for_x_ratelimit_reset_of_that_server(server: LocalPlatform, time: FakeTime) -> None:
    reset = (NOW + timedelta(seconds=90)).isoformat().replace("+00:00", ".123456Z")
    headers = {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
    server.script(lookup_path("mastodon.social"), Reply(200, fixture("mastodon_account.json"), headers))
    server.handle(lookup_path("mastodon.social"), lambda seen: Reply(200, fixture("mastodon_account.json")))
    refs = [ref("mastodon", "villedelyon@mastodon.social"), ref("mastodon", "lyon_metropole@mastodon.social")]

    result = run(poll(make(MastodonPoller, server, time), refs))

    assert len(result.snapshots) == 2
    assert time.sleeps == [90.123]


def test_mastodon_429_then_success(server: LocalPlatform, time: FakeTime) -> None:
    reset = (NOW + timedelta(seconds=20)).isoformat().replace("+00:00", "Z")
    limited = {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
    server.script(
        lookup_path("mastodon.social"), Reply(429, fixture("mastodon_error_too_many_requests.json"), limited)
    )
    server.handle(lookup_path("mastodon.social"), lambda seen: Reply(200, fixture("mastodon_account.json")))

    result = run(poll(make(MastodonPoller, server, time), [ref("mastodon", "villedelyon@mastodon.social")]))

    assert len(result.snapshots) == 1
    # Back-off (0.75 s) is shorter than the reset the server announced: the reset wins.
    assert time.sleeps == [20.0]


def test_mastodon_long_rate_limit_fails_only_that_servers_accounts(
    server: LocalPlatform, time: FakeTime
) -> None:
    reset = (NOW + timedelta(hours=1)).isoformat()
    limited = {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
    server.handle(
        lookup_path("piaille.fr"), lambda seen: Reply(200, fixture("mastodon_account.json"), limited)
    )
    server.handle(lookup_path("mastodon.social"), lambda seen: Reply(200, fixture("mastodon_account.json")))
    refs = [
        *[ref("mastodon", f"commune{i}@piaille.fr") for i in range(3)],
        ref("mastodon", "villedelyon@mastodon.social"),
    ]

    result = run(poll(make(MastodonPoller, server, time), refs))

    out = by_account(result)
    assert out["mastodon:commune0@piaille.fr"].status is AccountStatus.ACTIVE
    for i in (1, 2):
        failure = out[f"mastodon:commune{i}@piaille.fr"]
        assert failure.reason is FailureReason.RATE_LIMITED and "piaille.fr" in failure.detail
    assert out["mastodon:villedelyon@mastodon.social"].followers == 5874
    assert len(server.seen(lookup_path("piaille.fr"))) == 1
    assert result.stopped is None and time.sleeps == []


# --- Facebook.

GRAPH_ROOT = "/v25.0/"


def pages_for(seen: Seen, missing: frozenset[str] = frozenset()) -> Reply:
    ids = seen.values("ids")[0].split(",")
    gone = [i for i in ids if i in missing]
    if gone:
        return Reply(400, fixture("facebook_error_alias_not_exist.json"))
    return Reply(
        200,
        {i: {"followers_count": 1000 + n, "fan_count": 900, "name": i, "id": i} for n, i in enumerate(ids)},
    )


def test_facebook_batches_50_pages_with_the_token_in_a_header(server: LocalPlatform, time: FakeTime) -> None:
    server.handle(GRAPH_ROOT, pages_for)
    refs = [ref("facebook", f"facebook:{100000000000 + i}") for i in range(60)]

    result = run(poll(make(FacebookPoller, server, time), refs))

    calls = server.seen(GRAPH_ROOT)
    assert [len(call.values("ids")[0].split(",")) for call in calls] == [50, 10]
    # Activity on (the default): each page's posts are asked in the same request (field expansion).
    assert calls[0].values("fields")[0].startswith("followers_count,fan_count,name,posts.since(")
    assert calls[0].headers["Authorization"] == "Bearer EAAGm0PX4ZCpsBAtest"
    assert "EAAGm0PX4ZCpsBAtest" not in calls[0].url
    assert len(result.snapshots) == 60 and result.snapshots[0].followers == 1000
    assert result.snapshots[0].source == "poller:facebook"


def test_facebook_without_activity_asks_the_audience_alone(server: LocalPlatform, time: FakeTime) -> None:
    server.handle(GRAPH_ROOT, pages_for)

    result = run(poll(make(FacebookPoller, server, time, poll_activity=False), [ref("facebook", "grenoble")]))

    assert [call.values("fields") for call in server.seen(GRAPH_ROOT)] == [["followers_count,fan_count,name"]]
    assert result.snapshots[0].followers == 1000 and result.snapshots[0].posts_30d is None


def test_facebook_followers_fall_back_to_fan_count(server: LocalPlatform, time: FakeTime) -> None:
    server.script(GRAPH_ROOT, Reply(200, fixture("facebook_pages.json")))
    refs = [
        ref("facebook", "facebook:103254106379012"),
        ref("facebook", "VilleDeLyon", "COM:69123"),
        ref("facebook", "facebook:180954861916447", "COM:38382"),
    ]

    result = run(poll(make(FacebookPoller, server, time), refs))

    out = by_account(result)
    assert out["facebook:103254106379012"].followers == 98412
    assert out["facebook:villedelyon"].followers == 312876
    assert out["facebook:180954861916447"].followers == 15304  # no followers_count: fan_count


def test_facebook_missing_page_is_isolated_by_splitting_the_batch(
    server: LocalPlatform, time: FakeTime
) -> None:
    server.handle(GRAPH_ROOT, lambda seen: pages_for(seen, missing=frozenset({"mairie-inexistante"})))
    names = ["grenoble", "lyon", "mairie-inexistante", "isere"]

    result = run(poll(make(FacebookPoller, server, time), [ref("facebook", name) for name in names]))

    out = by_account(result)
    assert out["facebook:mairie-inexistante"].reason is FailureReason.NOT_FOUND
    assert "#803" in out["facebook:mairie-inexistante"].detail
    assert {s.account_id for s in result.snapshots} == {
        "facebook:grenoble",
        "facebook:lyon",
        "facebook:isere",
    }
    assert len(server.seen(GRAPH_ROOT)) == 5  # all 4, then 2 + 2, then 1 + 1 of the failing half
    assert time.sleeps == []


def test_facebook_one_page_per_request_mode(server: LocalPlatform, time: FakeTime) -> None:
    server.handle(
        "/v25.0/103254106379012", lambda seen: Reply(200, fixture("facebook_pages.json")["103254106379012"])
    )
    server.handle(
        "/v25.0/999999999999999", lambda seen: Reply(400, fixture("facebook_error_object_not_exist.json"))
    )
    refs = [ref("facebook", "facebook:103254106379012"), ref("facebook", "facebook:999999999999999")]

    result = run(poll(make(FacebookPoller, server, time, facebook_batch_size=1), refs))

    out = by_account(result)
    assert out["facebook:103254106379012"].followers == 98412
    assert out["facebook:999999999999999"].reason is FailureReason.NOT_FOUND


def page(page_id: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(
        200, {"followers_count": 1000, "fan_count": 900, "name": page_id, "id": page_id}, headers or {}
    )


def test_facebook_usage_at_95_percent_pauses(server: LocalPlatform, time: FakeTime) -> None:
    usage = {"X-App-Usage": json.dumps({"call_count": 95, "total_cputime": 12, "total_time": 20})}
    server.script("/v25.0/a", page("a", usage))
    server.script("/v25.0/b", page("b"))

    result = run(
        poll(
            make(FacebookPoller, server, time, facebook_batch_size=1),
            [ref("facebook", "a"), ref("facebook", "b")],
        )
    )

    assert len(result.snapshots) == 2
    assert time.sleeps == [300.0]  # facebook_usage_pause_seconds, Facebook giving no time


def test_facebook_business_use_case_usage_gives_the_pause(server: LocalPlatform, time: FakeTime) -> None:
    buc = {
        "1122334455": [
            {
                "type": "pages",
                "call_count": 98,
                "total_cputime": 30,
                "total_time": 41,
                "estimated_time_to_regain_access": 3,
            }
        ]
    }
    server.script("/v25.0/a", page("a", {"X-Business-Use-Case-Usage": json.dumps(buc)}))
    server.script("/v25.0/b", page("b"))

    result = run(
        poll(
            make(FacebookPoller, server, time, facebook_batch_size=1),
            [ref("facebook", "a"), ref("facebook", "b")],
        )
    )

    assert len(result.snapshots) == 2
    assert time.sleeps == [180.0]  # 3 minutes, as Facebook estimated


def test_facebook_usage_above_75_percent_slows_down(server: LocalPlatform, time: FakeTime) -> None:
    usage = {"X-App-Usage": json.dumps({"call_count": 80, "total_cputime": 5, "total_time": 5})}
    for name in ("a", "b", "c"):
        server.script(f"/v25.0/{name}", page(name, usage))
    refs = [ref("facebook", name) for name in ("a", "b", "c")]

    # Audience requests only: each page's posts request would be spaced too.
    result = run(poll(make(FacebookPoller, server, time, facebook_batch_size=1, poll_activity=False), refs))

    assert len(result.snapshots) == 3
    assert time.sleeps == [5.0, 5.0]  # facebook_slowdown_interval_seconds between requests


def test_facebook_rate_limit_error_pauses_then_retries(server: LocalPlatform, time: FakeTime) -> None:
    server.script(GRAPH_ROOT, Reply(403, fixture("facebook_error_app_rate_limit.json")))
    server.handle(GRAPH_ROOT, pages_for)

    result = run(poll(make(FacebookPoller, server, time), [ref("facebook", "grenoble")]))

    assert len(result.snapshots) == 1
    assert time.sleeps == [300.0]


def test_facebook_invalid_token_stops_with_a_clear_error(server: LocalPlatform, time: FakeTime) -> None:
    server.handle(GRAPH_ROOT, lambda seen: Reply(400, fixture("facebook_error_token_expired.json")))
    refs = [ref("facebook", f"facebook:{100000000000 + i}") for i in range(60)]

    result = run(poll(make(FacebookPoller, server, time), refs))

    assert result.snapshots == []
    assert len(server.seen(GRAPH_ROOT)) == 1  # neither retried nor tried on the next batch
    assert result.stopped is not None
    assert "Graph error 190/463" in result.stopped and "BAROMETRE_FACEBOOK_TOKEN" in result.stopped
    assert len(result.failures) == 60
    assert {f.reason for f in result.failures} == {FailureReason.UNAUTHORIZED}


def test_facebook_needs_a_token(server: LocalPlatform) -> None:
    with pytest.raises(PollerConfigError, match="BAROMETRE_FACEBOOK_TOKEN"):
        FacebookPoller(settings_for(server, facebook_token=None))


# --- YouTube.

CHANNELS = "/youtube/v3/channels"
GRENOBLE_TV = "UCq3Ts7nV2xWk9bLp4Rz8YmA"
HIDDEN = "UC8mZ2kXq5Rv1Ny7Tb3Wd9Lp"
DELETED = "UCzzzzzzzzzzzzzzzzzzzzzz"


def test_youtube_statistics_hidden_and_missing_channels(server: LocalPlatform, time: FakeTime) -> None:
    server.script(CHANNELS, Reply(200, fixture("youtube_channels.json")))
    refs = [ref("youtube", f"youtube:{channel}") for channel in (GRENOBLE_TV, HIDDEN, DELETED)]

    result = run(poll(make(YouTubePoller, server, time), refs))

    out = by_account(result)
    grenoble = out[f"youtube:{GRENOBLE_TV}"]
    assert (grenoble.followers, grenoble.posts_total, grenoble.following) == (18400, 742, None)
    assert out[f"youtube:{HIDDEN}"].reason is FailureReason.HIDDEN
    assert out[f"youtube:{DELETED}"].reason is FailureReason.NOT_FOUND
    [call] = server.seen(CHANNELS)
    # contentDetails too, for the uploads playlist that activity reads (same request, same unit).
    assert call.values("part") == ["statistics,contentDetails"]
    assert call.values("id") == [f"{GRENOBLE_TV},{HIDDEN},{DELETED}"]
    assert call.headers["X-Goog-Api-Key"] == "AIzaSyTestKey0123456789" and "AIzaSy" not in call.url


def test_youtube_handles_are_looked_up_one_by_one(server: LocalPlatform, time: FakeTime) -> None:
    channel = fixture("youtube_channels.json")["items"][0]
    server.handle(
        CHANNELS,
        lambda seen: Reply(
            200, {"items": [channel] if seen.values("forHandle") == ["@villedegrenoble"] else []}
        ),
    )
    refs = [ref("youtube", "@VilleDeGrenoble"), ref("youtube", "@PasDeChaine")]

    result = run(poll(make(YouTubePoller, server, time), refs))

    out = by_account(result)
    # No channel id known: the account id is the handle, lower-cased (YouTube handles ignore case).
    grenoble = out["youtube:villedegrenoble"]
    assert (grenoble.followers, grenoble.handle) == (18400, "@VilleDeGrenoble")
    assert out["youtube:pasdechaine"].reason is FailureReason.NOT_FOUND


def test_youtube_quota_exceeded_stops_until_midnight_pacific(server: LocalPlatform, time: FakeTime) -> None:
    server.handle(CHANNELS, lambda seen: Reply(403, fixture("youtube_error_quota_exceeded.json")))
    refs = [ref("youtube", f"youtube:UC{i:022d}") for i in range(60)] + [ref("youtube", "@VilleDeGrenoble")]

    async def twice() -> tuple[PollResult, PollResult]:
        async with make(YouTubePoller, server, time) as poller:
            return await poller.poll(refs, NOW), await poller.poll(refs, NOW)

    first, second = run(twice())

    assert len(server.seen(CHANNELS)) == 1  # no retry, no other batch, nothing on the second poll
    for result in (first, second):
        assert result.snapshots == []
        assert {f.reason for f in result.failures} == {FailureReason.QUOTA_EXCEEDED}
        assert len(result.failures) == 61
        assert result.stopped is not None
        assert "quota exceeded" in result.stopped and "2026-11-29T08:00:00+00:00" in result.stopped
    assert time.sleeps == []


def test_youtube_quota_pause_when_configured(server: LocalPlatform, time: FakeTime) -> None:
    server.script(CHANNELS, Reply(403, fixture("youtube_error_quota_exceeded.json")))
    server.handle(CHANNELS, lambda seen: Reply(200, fixture("youtube_channels.json")))

    poller = make(YouTubePoller, server, time, youtube_quota_pause_seconds=60)
    result = run(poll(poller, [ref("youtube", f"youtube:{GRENOBLE_TV}")]))

    assert [s.followers for s in result.snapshots] == [18400]
    assert time.sleeps == [60.0]


def test_youtube_rate_limit_exceeded_is_retried(server: LocalPlatform, time: FakeTime) -> None:
    server.script(CHANNELS, Reply(403, fixture("youtube_error_rate_limit.json")))
    server.handle(CHANNELS, lambda seen: Reply(200, fixture("youtube_channels.json")))

    result = run(poll(make(YouTubePoller, server, time), [ref("youtube", f"youtube:{GRENOBLE_TV}")]))

    assert len(result.snapshots) == 1
    assert time.sleeps == [0.75]


def test_youtube_invalid_key_stops_with_a_clear_error(server: LocalPlatform, time: FakeTime) -> None:
    server.handle(CHANNELS, lambda seen: Reply(400, fixture("youtube_error_key_invalid.json")))
    refs = [ref("youtube", f"youtube:{GRENOBLE_TV}"), ref("youtube", "@VilleDeGrenoble")]

    result = run(poll(make(YouTubePoller, server, time), refs))

    assert result.stopped is not None
    assert "API key not valid" in result.stopped and "BAROMETRE_YOUTUBE_API_KEY" in result.stopped
    assert {f.reason for f in result.failures} == {FailureReason.UNAUTHORIZED}
    assert len(result.failures) == 2 and len(server.seen(CHANNELS)) == 1


def test_next_quota_reset_is_midnight_in_california() -> None:
    assert next_quota_reset(NOW) == datetime(2026, 11, 29, 8, 0, tzinfo=UTC)  # PST, UTC-8
    summer = datetime(2026, 7, 1, 6, 59, tzinfo=UTC)  # 23:59 PDT
    assert next_quota_reset(summer) == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)


# --- The runner.


class BrokenPoller(BlueskyPoller):
    async def _poll(self, accounts: Any, now: datetime, result: PollResult) -> None:
        raise ZeroDivisionError("a bug")


def test_runner_polls_every_platform_and_accounts_for_every_account(
    server: LocalPlatform, time: FakeTime
) -> None:
    server.handle(GET_PROFILES, echo_profiles)
    server.handle(lookup_path("mastodon.social"), lambda seen: Reply(200, fixture("mastodon_account.json")))
    accounts = [
        ref("bluesky", "grenoble.fr"),
        ref("mastodon", "villedelyon@mastodon.social"),
        ref("bluesky", "lyon.fr"),
        ref("facebook", "villedelyon"),
    ]

    async def go() -> list[PollResult]:
        async with (
            make(BlueskyPoller, server, time) as bluesky,
            make(MastodonPoller, server, time) as mastodon,
        ):
            pollers = {Platform.BLUESKY: bluesky, Platform.MASTODON: mastodon}
            return [result async for result in poll_accounts(accounts, pollers, NOW)]

    results = {r.platform: r for r in run(go())}

    assert len(results[Platform.BLUESKY].snapshots) == 2
    assert len(results[Platform.MASTODON].snapshots) == 1
    [no_poller] = results[Platform.FACEBOOK].failures
    assert no_poller.reason is FailureReason.NO_POLLER and "BAROMETRE_FACEBOOK_TOKEN" in no_poller.detail


def test_runner_keeps_other_platforms_when_a_poller_breaks(server: LocalPlatform, time: FakeTime) -> None:
    server.handle(lookup_path("mastodon.social"), lambda seen: Reply(200, fixture("mastodon_account.json")))
    accounts = [ref("bluesky", "grenoble.fr"), ref("mastodon", "villedelyon@mastodon.social")]

    async def go() -> list[PollResult]:
        async with make(BrokenPoller, server, time) as broken, make(MastodonPoller, server, time) as mastodon:
            pollers = {Platform.BLUESKY: broken, Platform.MASTODON: mastodon}
            return [result async for result in poll_accounts(accounts, pollers, NOW)]

    results = {r.platform: r for r in run(go())}

    assert [f.reason for f in results[Platform.BLUESKY].failures] == [FailureReason.INTERNAL_ERROR]
    assert len(results[Platform.MASTODON].snapshots) == 1


# --- What every poller declares.

BASE_TYPES = {"batch_size": "int", "rate_budget": "tuple[int, float]"}


@pytest.mark.parametrize("platform", list(POLLER_CLASSES), ids=str)
def test_every_poller_declares_its_batch_size_and_rate_budget(platform: Platform) -> None:
    cls = POLLER_CLASSES[platform]
    assert cls.platform is platform and cls.label.lower() == platform.value
    # Declared by the class itself, annotated as the base declares them (the scheduler reads them).
    base = inspect.get_annotations(Poller)
    for name in ("batch_size", "rate_budget"):
        assert name in vars(cls), f"{cls.__name__} does not declare {name}"
        assert inspect.get_annotations(cls).get(name) == base[name] == f"ClassVar[{BASE_TYPES[name]}]"
    # Accounts per request: at least one, at most the 100 of the largest documented batch (X).
    assert type(cls.batch_size) is int and 1 <= cls.batch_size <= 100
    requests, window = cls.rate_budget
    assert type(requests) is int and requests >= 1
    assert type(window) is float and 0 < window <= 86_400.0  # no documented window is longer than a day


# --- Header parsing and references, without a server.


def test_retry_after_forms() -> None:
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after(format_datetime(NOW + timedelta(minutes=2), usegmt=True), NOW) == 120.0
    assert parse_retry_after(format_datetime(NOW - timedelta(minutes=2), usegmt=True), NOW) == 0.0
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None


def test_reset_forms() -> None:
    later = NOW + timedelta(seconds=60)
    assert parse_reset("60", NOW) == later  # IETF draft: delta seconds
    assert parse_reset(str(int(later.timestamp())), NOW) == later  # Bluesky: Unix timestamp
    assert parse_reset("2026-11-28T19:41:00.000000Z", NOW) == later  # Mastodon: ISO 8601
    assert parse_reset(format_datetime(later, usegmt=True), NOW) == later
    assert parse_reset("never", NOW) is None


def test_facebook_usage_takes_the_fullest_limit() -> None:
    headers = {
        "X-App-Usage": '{"call_count": 12, "total_cputime": 40, "total_time": 33}',
        "X-Business-Use-Case-Usage": json.dumps(
            {"42": [{"type": "pages", "call_count": 61, "total_cputime": 2, "total_time": 2}]}
        ),
    }
    usage = parse_facebook_usage(headers)
    assert usage is not None and (usage.percent, usage.regain_seconds) == (61.0, None)
    assert parse_facebook_usage({"X-App-Usage": "not json"}) is None
    assert parse_facebook_usage({}) is None


def test_account_refs() -> None:
    by_handle = AccountRef.create("twitter", handle="@Grenoble", entity_id="COM:38185")
    assert (by_handle.account_id, by_handle.platform, by_handle.lookup) == (
        "x:grenoble",
        Platform.X,
        "grenoble",
    )
    by_id = AccountRef.create(
        "bluesky", account_id="bluesky:did:plc:x7k2mf4qz3vwhc6ja5tyrnbe", handle="grenoble.fr"
    )
    assert by_id.lookup == "did:plc:x7k2mf4qz3vwhc6ja5tyrnbe" and by_id.handle == "grenoble.fr"
    # Channel ids are case-sensitive: kept as written.
    assert AccountRef.create("youtube", account_id=f"youtube:{GRENOBLE_TV}").lookup == GRENOBLE_TV
    with pytest.raises(ValueError, match="not a mastodon account"):
        AccountRef.create("mastodon", account_id="bluesky:grenoble.fr")
    with pytest.raises(ValueError, match="unknown platform"):
        AccountRef.create("myspace", handle="grenoble")
    with pytest.raises(ValueError, match="account_id or a handle"):
        AccountRef.create("bluesky")
