"""The X poller against a local server replaying the X API v2's documented answers (user lookup,
per-item errors inside a 200, the user timeline, problem bodies, x-rate-limit-* headers).

Time is a fake clock whose sleep only advances it, so rate limits and back-off are asserted on
without waiting.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from services.common.names import AccountStatus, Platform
from services.common.settings import Settings
from services.ingest.sources.pollers import AccountRef, FailureReason, PollerConfigError, PollResult
from services.ingest.sources.pollers.runner import _NEEDS, configured_platforms, poll_accounts
from services.ingest.sources.pollers.x import XPoller, activity_of
from tests.fixtures.replay import NOW, FakeTime, LocalService, Reply, Seen
from tests.unit.ingest.sources.pollers_helpers import X_TOKEN, by_account, fixture
from tests.unit.ingest.sources.pollers_helpers import make as make_poller
from tests.unit.ingest.sources.pollers_helpers import poll_now as poll

USERS_BY = "/2/users/by"
USERS = "/2/users"
GRENOBLE_ID = "221532651"
TIMELINE = f"/2/users/{GRENOBLE_ID}/tweets"
TOKEN = X_TOKEN


def make(server: LocalService, time: FakeTime, **overrides: Any) -> XPoller:
    return make_poller(XPoller, server, time, **{"poller_max_wait_seconds": 900.0, **overrides})


def ref(handle: str, entity_id: str = "COM:38185", platform_id: str | None = None) -> AccountRef:
    return AccountRef.create("x", handle=handle, entity_id=entity_id, platform_id=platform_id)


def user(username: str, user_id: str, followers: int = 10) -> dict[str, Any]:
    return {
        "id": user_id,
        "username": username,
        "protected": False,
        "public_metrics": {
            "followers_count": followers,
            "following_count": 1,
            "tweet_count": 2,
            "listed_count": 0,
        },
    }


def echo_users(seen: Seen) -> Reply:
    names = seen.values("usernames")[0].split(",")
    return Reply(200, {"data": [user(name, str(1000 + i)) for i, name in enumerate(names)]})


def test_a_batch_of_usernames_with_a_missing_and_a_suspended_account(
    local_service: LocalService, fake_time: FakeTime
) -> None:
    local_service.script(USERS_BY, Reply(200, fixture("x_users_by.json")))
    refs = [
        ref("@VilledeGrenoble"),
        ref("lyon", "COM:69123"),
        ref("mairie_inconnue", "COM:01001"),
        ref("compte_suspendu", "COM:01002"),
    ]

    result = poll(make(local_service, fake_time), refs)

    (call,) = local_service.seen(USERS_BY)
    assert call.values("usernames") == ["villedegrenoble,lyon,mairie_inconnue,compte_suspendu"]
    assert call.values("user.fields") == ["public_metrics,username,id,created_at,protected"]
    assert call.headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in call.url
    out = by_account(result)
    grenoble = out["x:villedegrenoble"]
    assert (grenoble.followers, grenoble.following, grenoble.posts_total) == (61234, 812, 18850)
    assert (grenoble.handle, grenoble.source, grenoble.entity_id) == (
        "VilledeGrenoble",
        "poller:x",
        "COM:38185",
    )
    assert grenoble.posts_30d is None  # posts are not read unless x_read_posts is on
    assert out["x:lyon"].followers == 180456
    missing = out["x:mairie_inconnue"]
    assert missing.reason is FailureReason.NOT_FOUND
    assert missing.detail == "Could not find user with usernames: [mairie_inconnue]."
    suspended = out["x:compte_suspendu"]
    assert (suspended.status, suspended.followers) == (AccountStatus.SUSPENDED, 0)
    assert fake_time.sleeps == [] and result.stopped is None


def test_101_usernames_take_two_requests(local_service: LocalService, fake_time: FakeTime) -> None:
    local_service.handle(USERS_BY, echo_users)
    refs = [ref(f"mairie{i}") for i in range(101)]

    result = poll(make(local_service, fake_time), refs)

    assert [len(c.values("usernames")[0].split(",")) for c in local_service.seen(USERS_BY)] == [100, 1]
    assert len(result.snapshots) == 101 and not result.failures


def test_stable_ids_are_asked_by_id(local_service: LocalService, fake_time: FakeTime) -> None:
    local_service.script(USERS, Reply(200, {"data": [user("VilledeGrenoble", GRENOBLE_ID, 61234)]}))

    result = poll(make(local_service, fake_time), [AccountRef.create("x", account_id=f"x:{GRENOBLE_ID}")])

    assert local_service.seen(USERS)[0].values("ids") == [GRENOBLE_ID]
    (snapshot,) = result.snapshots
    assert (snapshot.account_id, snapshot.followers, snapshot.handle) == (
        f"x:{GRENOBLE_ID}",
        61234,
        "VilledeGrenoble",
    )


def test_a_renamed_account_is_found_by_its_stable_id_and_a_deleted_one_is_gone(
    local_service: LocalService, fake_time: FakeTime
) -> None:
    not_found = {
        "errors": [
            {
                "value": name,
                "detail": f"Could not find user with usernames: [{name}].",
                "title": "Not Found Error",
                "resource_type": "user",
                "parameter": "usernames",
                "resource_id": name,
                "type": "https://api.twitter.com/2/problems/resource-not-found",
            }
            for name in ("ancien_nom", "disparue")
        ]
    }
    local_service.script(USERS_BY, Reply(200, not_found))
    local_service.script(
        USERS,
        Reply(
            200,
            {
                "data": [user("NouveauNom", "111")],
                "errors": [
                    {
                        "value": "222",
                        "detail": "Could not find user with ids: [222].",
                        "title": "Not Found Error",
                        "resource_type": "user",
                        "parameter": "ids",
                        "resource_id": "222",
                        "type": "https://api.twitter.com/2/problems/resource-not-found",
                    }
                ],
            },
        ),
    )
    refs = [ref("ancien_nom", platform_id="111"), ref("disparue", "COM:01003", platform_id="222")]

    result = poll(make(local_service, fake_time), refs)

    assert local_service.seen(USERS)[0].values("ids") == ["111,222"]
    out = by_account(result)
    renamed = out["x:ancien_nom"]
    assert (renamed.status, renamed.handle, renamed.followers) == (AccountStatus.ACTIVE, "NouveauNom", 10)
    assert out["x:disparue"].status is AccountStatus.DELETED
    assert result.renamed == [("x:ancien_nom", "NouveauNom")] and result.gone == ["x:disparue"]


def test_malformed_usernames_are_refused_locally(local_service: LocalService, fake_time: FakeTime) -> None:
    local_service.handle(USERS_BY, echo_users)

    result = poll(make(local_service, fake_time), [ref("ville.de.test"), ref("grenoble")])

    out = by_account(result)
    assert out["x:ville.de.test"].reason is FailureReason.UNSUPPORTED
    assert out["x:grenoble"].followers == 10
    assert local_service.seen(USERS_BY)[0].values("usernames") == ["grenoble"]


def test_a_batch_refused_with_400_is_split_until_the_culprit_is_alone(
    local_service: LocalService, fake_time: FakeTime
) -> None:
    def answer(seen: Seen) -> Reply:
        names = seen.values("usernames")[0].split(",")
        if "refusee" in names:
            return Reply(400, fixture("x_error_invalid_request.json"))
        return echo_users(seen)

    local_service.handle(USERS_BY, answer)
    refs = [ref("grenoble"), ref("lyon"), ref("refusee"), ref("nantes")]

    result = poll(make(local_service, fake_time), refs)

    out = by_account(result)
    assert out["x:refusee"].reason is FailureReason.HTTP_ERROR
    assert "Invalid Request" in out["x:refusee"].detail
    assert {s.account_id for s in result.snapshots} == {"x:grenoble", "x:lyon", "x:nantes"}


def test_429_waits_until_the_x_rate_limit_reset(local_service: LocalService, fake_time: FakeTime) -> None:
    reset = int((NOW + timedelta(seconds=420)).timestamp())
    headers = {"x-rate-limit-limit": "300", "x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)}
    local_service.script(USERS_BY, Reply(429, fixture("x_error_too_many_requests.json"), headers))
    local_service.handle(USERS_BY, echo_users)

    result = poll(make(local_service, fake_time), [ref("grenoble")])

    assert [s.account_id for s in result.snapshots] == ["x:grenoble"]
    assert fake_time.sleeps == [420.0]
    assert len(local_service.seen(USERS_BY)) == 2


def test_remaining_zero_on_a_success_holds_the_next_request(
    local_service: LocalService, fake_time: FakeTime
) -> None:
    reset = int((NOW + timedelta(seconds=60)).timestamp())
    headers = {"x-rate-limit-limit": "300", "x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)}
    local_service.handle(USERS_BY, lambda seen: Reply(200, echo_users(seen).body, headers))

    result = poll(make(local_service, fake_time), [ref(f"mairie{i}") for i in range(101)])

    assert len(result.snapshots) == 101
    assert fake_time.sleeps == [60.0]


def test_a_429_longer_than_a_poll_may_wait_stops_the_poll(
    local_service: LocalService, fake_time: FakeTime
) -> None:
    reset = int((NOW + timedelta(hours=2)).timestamp())
    headers = {"x-rate-limit-limit": "300", "x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)}
    local_service.script(USERS_BY, Reply(429, fixture("x_error_too_many_requests.json"), headers))

    result = poll(make(local_service, fake_time), [ref("grenoble")])

    (failure,) = result.failures
    assert failure.reason is FailureReason.RATE_LIMITED
    assert result.stopped is not None and "2026-11-28T21:40:00" in result.stopped
    assert fake_time.sleeps == []


def test_usage_cap_pauses_x_polling(local_service: LocalService, fake_time: FakeTime) -> None:
    local_service.script(USERS_BY, Reply(429, fixture("x_error_usage_capped.json")))

    result = poll(make(local_service, fake_time), [ref("grenoble")])

    (failure,) = result.failures
    assert failure.reason is FailureReason.QUOTA_EXCEEDED
    assert result.stopped is not None and "usage cap" in result.stopped
    assert len(local_service.seen(USERS_BY)) == 1


def test_5xx_is_retried_with_back_off(local_service: LocalService, fake_time: FakeTime) -> None:
    local_service.script(USERS_BY, Reply(503, "Service Unavailable"), Reply(500, {"title": "Internal Error"}))
    local_service.handle(USERS_BY, echo_users)

    result = poll(make(local_service, fake_time), [ref("grenoble")])

    assert len(result.snapshots) == 1
    assert fake_time.sleeps == [0.75, 1.5]


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (401, "x_error_unauthorized.json", "set BAROMETRE_X_BEARER_TOKEN"),
        (403, "x_error_client_forbidden.json", "Client Forbidden"),
    ],
)
def test_a_refused_token_stops_polling_with_a_message(
    local_service: LocalService, fake_time: FakeTime, status: int, body: str, words: str
) -> None:
    local_service.script(USERS_BY, Reply(status, fixture(body)))

    result = poll(make(local_service, fake_time), [ref(f"mairie{i}") for i in range(150)])

    assert result.stopped is not None and words in result.stopped
    assert TOKEN not in result.stopped
    assert len(result.failures) == 150
    assert {f.reason for f in result.failures} == {FailureReason.UNAUTHORIZED}
    assert len(local_service.seen(USERS_BY)) == 1  # the second batch is never sent


@pytest.mark.parametrize(
    "body",
    [
        "<html>upstream error</html>",
        {"data": {"id": "1"}},
        {"data": [{"id": "1", "username": "grenoble"}]},  # no public_metrics
        {"data": [{"id": "1", "username": "grenoble", "public_metrics": {"followers_count": "many"}}]},
    ],
)
def test_a_malformed_answer_is_an_invalid_response(
    local_service: LocalService, fake_time: FakeTime, body: Any
) -> None:
    local_service.script(USERS_BY, Reply(200, body))

    result = poll(make(local_service, fake_time), [ref("grenoble")])

    (failure,) = result.failures
    assert failure.reason is FailureReason.INVALID_RESPONSE
    assert not result.snapshots


def test_activity_over_30_days_follows_the_pages(local_service: LocalService, fake_time: FakeTime) -> None:
    local_service.script(USERS_BY, Reply(200, {"data": [user("VilledeGrenoble", GRENOBLE_ID, 61234)]}))
    local_service.script(
        TIMELINE, Reply(200, fixture("x_timeline_page1.json")), Reply(200, fixture("x_timeline_page2.json"))
    )

    result = poll(make(local_service, fake_time, x_read_posts=True), [ref("villedegrenoble")])

    (snapshot,) = result.snapshots
    # Posts: 9, 6 (a reply to itself: a thread) and 5 (a quote); 8 and 4 are replies to others, 7 a
    # retweet. Interactions: (40+5+7+1) + (25+4+6+2) + (18+3+2+1).
    assert (snapshot.posts_30d, snapshot.interactions_30d, snapshot.replies_30d) == (3, 114, 2)
    first, second = local_service.seen(TIMELINE)
    assert first.values("start_time") == ["2026-10-29T19:40:00Z"]
    assert first.values("max_results") == ["100"]
    assert first.values("tweet.fields") == ["public_metrics,created_at,in_reply_to_user_id,referenced_tweets"]
    assert first.values("pagination_token") == []
    assert second.values("pagination_token") == ["7140dibdnow9c7btw4a2m1yj0p5rrf1lwocaehhzcqp8f"]


def test_a_refused_timeline_keeps_the_audience_and_stops_reading_posts(
    local_service: LocalService, fake_time: FakeTime
) -> None:
    local_service.script(USERS_BY, Reply(200, {"data": [user("grenoble", "1"), user("lyon", "2")]}))
    local_service.handle(
        "/2/users/1/tweets", lambda seen: Reply(403, fixture("x_error_client_forbidden.json"))
    )

    result = poll(make(local_service, fake_time, x_read_posts=True), [ref("grenoble"), ref("lyon")])

    assert [(s.followers, s.posts_30d) for s in result.snapshots] == [(10, None), (10, None)]
    assert result.stopped is None
    assert local_service.seen("/2/users/2/tweets") == []


def test_no_posts_in_30_days_is_zero_activity(local_service: LocalService, fake_time: FakeTime) -> None:
    local_service.script(USERS_BY, Reply(200, {"data": [user("grenoble", "1")]}))
    local_service.script("/2/users/1/tweets", Reply(200, {"meta": {"result_count": 0}}))

    result = poll(make(local_service, fake_time, x_read_posts=True), [ref("grenoble")])

    (snapshot,) = result.snapshots
    assert (snapshot.posts_30d, snapshot.interactions_30d, snapshot.replies_30d) == (0, 0, 0)


def test_activity_of_refuses_a_post_without_its_counts() -> None:
    tweets = [{"id": "1", "created_at": "2026-11-20T10:00:00.000Z", "public_metrics": {"like_count": 3}}]
    with pytest.raises(ValueError, match="public_metrics"):
        activity_of(tweets, "9", NOW - timedelta(days=30), NOW)


def test_the_poller_needs_a_token_and_is_configured_with_one() -> None:
    with pytest.raises(PollerConfigError, match="BAROMETRE_X_BEARER_TOKEN"):
        XPoller(Settings(x_bearer_token=None))
    assert Platform.X not in configured_platforms(Settings(x_bearer_token=None))
    assert Platform.X in configured_platforms(Settings(x_bearer_token=TOKEN))


def test_tiktok_and_linkedin_accounts_fail_with_the_reason_they_are_import_only() -> None:
    refs = [
        AccountRef.create("tiktok", handle="villedegrenoble"),
        AccountRef.create("linkedin", handle="grenoble"),
    ]

    async def go() -> list[PollResult]:
        return [result async for result in poll_accounts(refs, {}, NOW)]

    out = {r.platform: r.failures[0] for r in asyncio.run(go())}
    assert out[Platform.TIKTOK].reason is FailureReason.NO_POLLER
    assert "Research API" in out[Platform.TIKTOK].detail and "import-only" in out[Platform.TIKTOK].detail
    assert "administrator" in out[Platform.LINKEDIN].detail
    assert set(_NEEDS) >= {Platform.TIKTOK, Platform.LINKEDIN, Platform.INSTAGRAM, Platform.THREADS}
