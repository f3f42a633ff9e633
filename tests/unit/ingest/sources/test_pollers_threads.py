"""The Threads poller against a local server replaying the Threads Profile Discovery API's documented
answers (profile_lookup, profile_posts) and Graph-style errors."""

from __future__ import annotations

from typing import Any

import pytest

from services.common.names import Platform
from services.common.settings import Settings
from services.ingest.sources.pollers import AccountRef, FailureReason, PollerConfigError
from services.ingest.sources.pollers.runner import configured_platforms
from services.ingest.sources.pollers.threads import ThreadsPoller
from tests.fixtures.replay import NOW, FakeTime, LocalService, Reply, Seen
from tests.unit.ingest.sources.pollers_helpers import THREADS_TOKEN, fixture
from tests.unit.ingest.sources.pollers_helpers import make as make_poller
from tests.unit.ingest.sources.pollers_helpers import poll_now as poll

LOOKUP = "/v1.0/profile_lookup"
POSTS = "/v1.0/profile_posts"
TOKEN = THREADS_TOKEN


def make(server: LocalService, time: FakeTime, **overrides: Any) -> ThreadsPoller:
    return make_poller(ThreadsPoller, server, time, **overrides)


def ref(handle: str, entity_id: str = "COM:38185") -> AccountRef:
    return AccountRef.create("threads", handle=handle, entity_id=entity_id)


def profile(seen: Seen) -> Reply:
    return Reply(200, {"username": seen.values("username")[0], "follower_count": 2000, "is_verified": False})


def test_profiles_are_looked_up_one_by_one(local_service: LocalService, fake_time: FakeTime) -> None:
    local_service.script(LOOKUP, Reply(200, fixture("threads_profile_lookup.json")))
    local_service.handle(LOOKUP, profile)

    result = poll(make(local_service, fake_time), [ref("@VilledeGrenoble"), ref("lyon", "COM:69123")])

    grenoble, lyon = result.snapshots
    assert (grenoble.account_id, grenoble.followers, grenoble.handle) == (
        "threads:villedegrenoble",
        15320,
        "villedegrenoble",
    )
    # likes_count and the other counts cover 7 days, not the contract's 30: no activity without profile_posts.
    assert (grenoble.posts_30d, grenoble.interactions_30d) == (None, None)
    assert lyon.followers == 2000 and grenoble.source == "poller:threads"
    calls = local_service.seen(LOOKUP)
    assert [c.values("username") for c in calls] == [["villedegrenoble"], ["lyon"]]
    assert calls[0].headers["Authorization"] == f"Bearer {TOKEN}" and TOKEN not in calls[0].url
    assert local_service.seen(POSTS) == []


def test_posts_of_30_days_follow_the_pages(local_service: LocalService, fake_time: FakeTime) -> None:
    local_service.handle(LOOKUP, profile)
    local_service.script(
        POSTS,
        Reply(200, fixture("threads_profile_posts.json")),
        Reply(200, fixture("threads_profile_posts_page2.json")),
    )

    result = poll(make(local_service, fake_time, threads_read_posts=True), [ref("villedegrenoble")])

    (snapshot,) = result.snapshots
    # 11-28, 11-12 and 11-01; the 11-25 repost is not a post, 10-28 is older than 30 days.
    assert snapshot.posts_30d == 3 and snapshot.interactions_30d is None
    first, second = local_service.seen(POSTS)
    assert first.values("since") == [str(int(NOW.timestamp()) - 30 * 86400)]
    assert first.values("limit") == ["100"] and first.values("after") == []
    assert second.values("after") == ["AFTER_CURSOR"]


def test_a_missing_profile_is_not_found(local_service: LocalService, fake_time: FakeTime) -> None:
    local_service.script(LOOKUP, Reply(400, fixture("threads_error_not_found.json")))
    local_service.handle(LOOKUP, profile)

    result = poll(make(local_service, fake_time), [ref("inconnue"), ref("grenoble")])

    failure = result.failures[0]
    assert (failure.account_id, failure.reason) == ("threads:inconnue", FailureReason.NOT_FOUND)
    assert "100/33" in failure.detail
    assert [s.account_id for s in result.snapshots] == ["threads:grenoble"]


def test_a_429_with_retry_after_waits_and_5xx_is_retried(
    local_service: LocalService, fake_time: FakeTime
) -> None:
    local_service.script(LOOKUP, Reply(429, "Too Many Requests", {"Retry-After": "12"}), Reply(503, "busy"))
    local_service.handle(LOOKUP, profile)

    result = poll(make(local_service, fake_time), [ref("grenoble")])

    assert len(result.snapshots) == 1
    assert fake_time.sleeps == [12.0, 1.5]


def test_a_graph_rate_limit_code_pauses(local_service: LocalService, fake_time: FakeTime) -> None:
    limited = {"error": {"message": "Application request limit reached", "code": 4, "is_transient": True}}
    local_service.script(LOOKUP, Reply(400, limited))
    local_service.handle(LOOKUP, profile)

    result = poll(make(local_service, fake_time, facebook_usage_pause_seconds=60.0), [ref("grenoble")])

    assert len(result.snapshots) == 1 and fake_time.sleeps == [60.0]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("threads_error_token_invalid.json", "set BAROMETRE_THREADS_TOKEN"),
        ("threads_error_permission.json", "threads_profile_discovery"),
    ],
)
def test_a_refused_token_stops_polling(
    local_service: LocalService, fake_time: FakeTime, body: str, words: str
) -> None:
    local_service.script(LOOKUP, Reply(400, fixture(body)))

    result = poll(make(local_service, fake_time), [ref("grenoble"), ref("lyon")])

    assert result.stopped is not None and words in result.stopped
    assert {f.reason for f in result.failures} == {FailureReason.UNAUTHORIZED}
    assert len(local_service.seen(LOOKUP)) == 1


@pytest.mark.parametrize("body", ["not json", [1, 2], {"username": "grenoble", "follower_count": -4}])
def test_a_malformed_answer_is_an_invalid_response(
    local_service: LocalService, fake_time: FakeTime, body: Any
) -> None:
    local_service.script(LOOKUP, Reply(200, body))

    result = poll(make(local_service, fake_time), [ref("grenoble")])

    assert [f.reason for f in result.failures] == [FailureReason.INVALID_RESPONSE]


def test_configuration_needs_a_token() -> None:
    with pytest.raises(PollerConfigError, match="BAROMETRE_THREADS_TOKEN"):
        ThreadsPoller(Settings(threads_token=None))
    assert Platform.THREADS not in configured_platforms(Settings(threads_token=None))
    assert Platform.THREADS in configured_platforms(Settings(threads_token=TOKEN))
