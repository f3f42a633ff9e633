"""The Instagram poller against a local server replaying the Graph API's documented business discovery
answers and errors (110/2207013 for an unknown or personal account, 190, rate-limit codes in a 400)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.common.names import Platform
from services.common.settings import Settings
from services.ingest.sources.pollers import AccountRef, FailureReason, PollerConfigError
from services.ingest.sources.pollers.instagram import InstagramPoller, discovery_fields
from services.ingest.sources.pollers.runner import configured_platforms
from tests.fixtures.replay import FakeTime, LocalService, Reply, Seen
from tests.unit.ingest.sources.pollers_helpers import INSTAGRAM_TOKEN, INSTAGRAM_USER, fixture
from tests.unit.ingest.sources.pollers_helpers import make as make_poller
from tests.unit.ingest.sources.pollers_helpers import poll_now as poll

IG_USER = INSTAGRAM_USER
PATH = f"/v25.0/{IG_USER}"
TOKEN = INSTAGRAM_TOKEN


def make(server: LocalService, time: FakeTime, **overrides: Any) -> InstagramPoller:
    return make_poller(InstagramPoller, server, time, **{"poller_max_wait_seconds": 900.0, **overrides})


def ref(handle: str, entity_id: str = "COM:38185") -> AccountRef:
    return AccountRef.create("instagram", handle=handle, entity_id=entity_id)


def asked(seen: Seen) -> str:
    fields = seen.values("fields")[0]
    return fields[len("business_discovery.username(") : fields.index(")")]


def account(username: str, followers: int = 100) -> dict[str, Any]:
    return {
        "business_discovery": {
            "followers_count": followers,
            "follows_count": 5,
            "media_count": 40,
            "username": username,
            "id": "178414000000",
            "media": {"data": []},
        },
        "id": IG_USER,
    }


def test_a_batch_reads_figures_and_30_days_of_media(local_service: LocalService, fake_time: FakeTime) -> None:
    pages = {
        discovery_fields("villedegrenoble"): Reply(200, fixture("instagram_business_discovery.json")),
        discovery_fields("villedegrenoble", "QVFIUmJ3TVBpc2Jm"): Reply(
            200, fixture("instagram_business_discovery_page2.json")
        ),
    }
    local_service.handle(
        PATH,
        lambda seen: pages.get(seen.values("fields")[0]) or Reply(200, account(asked(seen))),
    )

    result = poll(make(local_service, fake_time), [ref("VilledeGrenoble"), ref("lyon", "COM:69123")])

    grenoble, lyon = result.snapshots
    assert (grenoble.followers, grenoble.following, grenoble.posts_total) == (48213, 312, 1740)
    # Four media within 30 days (the fifth, 2026-10-20, is older); likes + comments of those four.
    assert (grenoble.posts_30d, grenoble.interactions_30d) == (4, 835 + 467 + 1244 + 309)
    assert grenoble.replies_30d is None and grenoble.source == "poller:instagram"
    assert (lyon.followers, lyon.posts_30d, lyon.interactions_30d) == (100, 0, 0)
    calls = local_service.seen(PATH)
    assert [c.values("fields")[0] for c in calls[:2]] == [
        "business_discovery.username(villedegrenoble){followers_count,follows_count,media_count,username,id,"
        "media.limit(50){timestamp,like_count,comments_count}}",
        "business_discovery.username(villedegrenoble){followers_count,follows_count,media_count,username,id,"
        "media.after(QVFIUmJ3TVBpc2Jm).limit(50){timestamp,like_count,comments_count}}",
    ]
    assert len(calls) == 3  # two pages for Grenoble, one for Lyon
    assert calls[0].headers["Authorization"] == f"Bearer {TOKEN}" and TOKEN not in calls[0].url


def test_a_hidden_like_count_leaves_interactions_out(
    local_service: LocalService, fake_time: FakeTime
) -> None:
    body = account("grenoble")
    body["business_discovery"]["media"] = {
        "data": [
            {"timestamp": "2026-11-27T17:02:11+0000", "like_count": 12, "comments_count": 3, "id": "1"},
            {"timestamp": "2026-11-20T17:02:11+0000", "comments_count": 4, "id": "2"},
        ]
    }
    local_service.script(PATH, Reply(200, body))

    result = poll(make(local_service, fake_time), [ref("grenoble")])

    (snapshot,) = result.snapshots
    assert (snapshot.posts_30d, snapshot.interactions_30d) == (2, None)


def test_an_unknown_or_personal_account_is_not_found(
    local_service: LocalService, fake_time: FakeTime
) -> None:
    local_service.handle(
        PATH,
        lambda seen: (
            Reply(400, fixture("instagram_error_user_not_found.json"))
            if asked(seen) == "mairie_perso"
            else Reply(200, account(asked(seen)))
        ),
    )

    result = poll(make(local_service, fake_time), [ref("mairie_perso"), ref("grenoble")])

    (failure,) = result.failures
    assert failure.reason is FailureReason.NOT_FOUND
    assert "2207013" in failure.detail and "cannot be found" in failure.detail
    assert [s.account_id for s in result.snapshots] == ["instagram:grenoble"]
    assert fake_time.sleeps == []


def test_a_rate_limit_code_pauses_then_retries(local_service: LocalService, fake_time: FakeTime) -> None:
    usage = json.dumps({"call_count": 100, "total_cputime": 20, "total_time": 30})
    local_service.script(PATH, Reply(400, fixture("instagram_error_rate_limit.json"), {"X-App-Usage": usage}))
    local_service.handle(PATH, lambda seen: Reply(200, account(asked(seen))))

    result = poll(make(local_service, fake_time, facebook_usage_pause_seconds=120.0), [ref("grenoble")])

    assert [s.followers for s in result.snapshots] == [100]
    assert fake_time.sleeps == [120.0]


def test_a_429_with_retry_after_waits(local_service: LocalService, fake_time: FakeTime) -> None:
    local_service.script(PATH, Reply(429, "Too Many Requests", {"Retry-After": "30"}))
    local_service.handle(PATH, lambda seen: Reply(200, account(asked(seen))))

    result = poll(make(local_service, fake_time), [ref("grenoble")])

    assert len(result.snapshots) == 1
    assert fake_time.sleeps == [30.0]


def test_5xx_is_retried(local_service: LocalService, fake_time: FakeTime) -> None:
    transient = {"error": {"message": "An unexpected error has occurred.", "code": 2, "is_transient": True}}
    local_service.script(PATH, Reply(500, transient), Reply(502, "Bad Gateway"))
    local_service.handle(PATH, lambda seen: Reply(200, account(asked(seen))))

    result = poll(make(local_service, fake_time), [ref("grenoble")])

    assert len(result.snapshots) == 1
    assert fake_time.sleeps == [0.75, 1.5]


def test_an_expired_token_stops_polling(local_service: LocalService, fake_time: FakeTime) -> None:
    local_service.script(PATH, Reply(400, fixture("instagram_error_token_expired.json")))

    result = poll(make(local_service, fake_time), [ref("grenoble"), ref("lyon")])

    assert result.stopped is not None and "BAROMETRE_INSTAGRAM_TOKEN" in result.stopped
    assert {f.reason for f in result.failures} == {FailureReason.UNAUTHORIZED} and len(result.failures) == 2
    assert len(local_service.seen(PATH)) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"id": IG_USER},
        {"business_discovery": {"followers_count": "beaucoup", "username": "grenoble"}},
        {"business_discovery": {"followers_count": 10, "media": {"data": [{"timestamp": "hier"}]}}},
    ],
)
def test_a_malformed_answer_is_an_invalid_response_or_loses_only_the_activity(
    local_service: LocalService, fake_time: FakeTime, body: dict[str, Any]
) -> None:
    local_service.script(PATH, Reply(200, body))

    result = poll(make(local_service, fake_time), [ref("grenoble")])

    if "media" in body.get("business_discovery", {}):
        # Good figures are kept; unreadable media only leave the activity out.
        (snapshot,) = result.snapshots
        assert (snapshot.followers, snapshot.posts_30d) == (10, None)
    else:
        (failure,) = result.failures
        assert failure.reason is FailureReason.INVALID_RESPONSE


def test_usernames_instagram_cannot_have_are_refused_locally(
    local_service: LocalService, fake_time: FakeTime
) -> None:
    result = poll(make(local_service, fake_time), [ref("ville-de-grenoble")])

    assert [f.reason for f in result.failures] == [FailureReason.UNSUPPORTED]
    assert local_service.seen(PATH) == []


def test_configuration_needs_the_business_account_and_a_token() -> None:
    with pytest.raises(PollerConfigError, match="BAROMETRE_INSTAGRAM_BUSINESS_ACCOUNT_ID"):
        InstagramPoller(Settings(instagram_token=TOKEN))
    assert Platform.INSTAGRAM not in configured_platforms(Settings(instagram_token=TOKEN))
    # The Facebook token serves when no Instagram token of its own is set.
    both = Settings(instagram_business_account_id=IG_USER, facebook_token="EAAGfacebook")
    assert Platform.INSTAGRAM in configured_platforms(both)
