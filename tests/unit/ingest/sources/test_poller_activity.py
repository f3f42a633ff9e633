"""Activity (posts, interactions and replies over 30 days) read by the pollers, against a local server
replaying each API's documented answers: paging, a page crossing the 30-day boundary, reposts and
boosts, replies to deleted posts, deleted and private videos; and the counting alone.

NOW is 2026-11-28T19:40Z, so the window is (2026-10-29T19:40Z, 2026-11-28T19:40Z]. The figures each
test expects are worked out item by item from the recorded answers in ``poller_fixtures/``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.ingest.sources.pollers import AccountRef, FailureReason, PollResult
from services.ingest.sources.pollers.activity import (
    Activity,
    ActivityError,
    Post,
    count,
    in_window,
    parse_count,
    parse_time,
    reached_window_start,
)
from services.ingest.sources.pollers.bluesky import BlueskyPoller
from services.ingest.sources.pollers.facebook import FacebookPoller
from services.ingest.sources.pollers.mastodon import MastodonPoller
from services.ingest.sources.pollers.youtube import YouTubePoller
from services.scoring.maths.points import point_from_snapshot
from services.scoring.maths.score import good_practice
from tests.fixtures.replay import NOW, FakeTime, LocalService, Reply, Seen
from tests.unit.ingest.sources.pollers_helpers import P, fixture, poll, run
from tests.unit.ingest.sources.pollers_helpers import make as make_poller


def make(cls: type[P], server: LocalService, time: FakeTime, **overrides: Any) -> P:
    return make_poller(cls, server, time, **{"poller_max_attempts": 2, **overrides})


def activity_of(result: PollResult, account_id: str) -> tuple[int | None, int | None, int | None]:
    [snapshot] = [s for s in result.snapshots if s.account_id == account_id]
    return snapshot.posts_30d, snapshot.interactions_30d, snapshot.replies_30d


# --- The counting alone.


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_the_window_is_the_30_days_before_now_start_excluded() -> None:
    start = NOW - timedelta(days=30)
    assert not in_window(start, NOW)
    assert in_window(start + timedelta(milliseconds=1), NOW)
    assert in_window(NOW, NOW)
    assert not in_window(NOW + timedelta(seconds=1), NOW)  # published during the poll: next window


def test_count_separates_posts_and_replies_and_sums_interactions_of_posts_only() -> None:
    posts = [
        Post(at("2026-11-28T10:00:00+00:00"), 18),
        Post(at("2026-11-27T10:00:00+00:00"), 5, reply_to_other=True),  # its 5 are not counted
        Post(at("2026-11-01T10:00:00+00:00"), 4),
        Post(at("2026-10-29T19:40:00+00:00"), 100),  # the window's start: out
        Post(at("2026-11-28T19:41:00+00:00"), 1),  # after now: out
    ]
    assert count(posts, NOW, replies_known=True) == Activity(2, 22, 1)
    unknown = count(posts, NOW, replies_known=False)
    assert unknown == Activity(2, 22, None)
    assert unknown.figures() == {"posts_30d": 2, "interactions_30d": 22}
    assert count([], NOW, replies_known=True).figures() == {
        "posts_30d": 0,
        "interactions_30d": 0,
        "replies_30d": 0,
    }


def test_paging_stops_once_a_page_reaches_the_window_start() -> None:
    assert not reached_window_start([at("2026-11-28T10:00:00+00:00"), at("2026-10-30T00:00:00+00:00")], NOW)
    assert reached_window_start([at("2026-11-01T10:00:00+00:00"), at("2026-10-29T19:40:00+00:00")], NOW)
    assert not reached_window_start([], NOW)


def test_dates_and_counts_in_the_platforms_forms_and_clear_errors_otherwise() -> None:
    assert parse_time("2026-11-27T10:00:00+0000") == datetime(2026, 11, 27, 10, tzinfo=UTC)  # Graph
    assert parse_time("2026-11-27T10:00:00.123Z") == datetime(2026, 11, 27, 10, 0, 0, 123000, tzinfo=UTC)
    assert parse_time("2026-11-27T11:00:00+01:00") == datetime(2026, 11, 27, 10, tzinfo=UTC)
    for bad in (None, "", "hier", "2026-11-27T10:00:00", 1764237600):
        with pytest.raises(ActivityError, match="created_at"):
            parse_time(bad, "created_at")
    assert (parse_count("120", "likes"), parse_count(7, "likes"), parse_count(None, "likes")) == (120, 7, 0)
    for bad in (-1, "1e3", 2.5, True, "-3"):
        with pytest.raises(ActivityError, match="likes"):
            parse_count(bad, "likes")


# --- Bluesky.

GET_PROFILES = "/xrpc/app.bsky.actor.getProfiles"
AUTHOR_FEED = "/xrpc/app.bsky.feed.getAuthorFeed"
GRENOBLE_DID = "did:plc:x7k2mf4qz3vwhc6ja5tyrnbe"


def bluesky_profiles() -> Reply:
    return Reply(200, {"profiles": fixture("bluesky_get_profiles.json")["profiles"][:1]})


def poll_grenoble_feed(server: LocalService, time: FakeTime) -> PollResult:
    """Grenoble's profile and its recorded author feed, two pages, polled."""
    server.script(GET_PROFILES, bluesky_profiles())
    server.script(
        AUTHOR_FEED,
        Reply(200, fixture("bluesky_author_feed_page1.json")),
        Reply(200, fixture("bluesky_author_feed_page2.json")),
    )
    return run(poll(make(BlueskyPoller, server, time), [AccountRef.create("bluesky", handle="grenoble.fr")]))


def test_bluesky_reads_the_author_feed_across_pages(server: LocalService, time: FakeTime) -> None:
    result = poll_grenoble_feed(server, time)

    # Posts: the market (40+6+3+1), the thread's second post (10+1), 11 November (20), Toussaint (5+1).
    # Replies: to a resident, to a deleted post, about the P+R. Out: the repost of the métropole's post,
    # the post published after now, the one at the window's very start and the older one.
    assert activity_of(result, "bluesky:grenoble.fr") == (4, 87, 3)
    snapshot = result.snapshots[0]
    assert (snapshot.followers, snapshot.posts_total) == (12873, 2315)  # the audience, as before
    first, second = server.seen(AUTHOR_FEED)
    assert first.values("actor") == [GRENOBLE_DID]  # asked by DID: the stable id
    assert (first.values("filter"), first.values("limit"), first.values("cursor")) == (
        ["posts_with_replies"],
        ["100"],
        [],
    )
    # Page 2 reaches past the window's start: no third request although a cursor came back.
    assert second.values("cursor") == ["2026-11-10T08:00:00.412Z"]


def test_bluesky_page_cap_counts_the_newest_posts(
    server: LocalService, time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    server.script(GET_PROFILES, bluesky_profiles())
    server.script(AUTHOR_FEED, Reply(200, fixture("bluesky_author_feed_page1.json")))

    with caplog.at_level(logging.INFO):
        result = run(
            poll(
                make(BlueskyPoller, server, time, poll_activity_max_pages=1),
                [AccountRef.create("bluesky", handle="grenoble.fr")],
            )
        )

    assert activity_of(result, "bluesky:grenoble.fr") == (3, 81, 2)
    assert len(server.seen(AUTHOR_FEED)) == 1
    assert "newest counted" in caplog.text


def test_bluesky_activity_failure_keeps_the_audience(
    server: LocalService, time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    server.script(GET_PROFILES, bluesky_profiles())
    server.handle(AUTHOR_FEED, lambda seen: Reply(502, "Bad Gateway"))

    result = run(
        poll(make(BlueskyPoller, server, time), [AccountRef.create("bluesky", handle="grenoble.fr")])
    )

    assert not result.failures
    assert activity_of(result, "bluesky:grenoble.fr") == (None, None, None)
    assert result.snapshots[0].followers == 12873
    assert len(server.seen(AUTHOR_FEED)) == 2  # retried, then given up
    assert "activity of bluesky:grenoble.fr not read, audience kept: HTTP 502" in caplog.text


def test_bluesky_malformed_feed_item_drops_the_activity_not_the_audience(
    server: LocalService, time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    page = fixture("bluesky_author_feed_page1.json")
    del page["feed"][1]["post"]["record"]["createdAt"]
    server.script(GET_PROFILES, bluesky_profiles())
    server.script(AUTHOR_FEED, Reply(200, page))

    result = run(
        poll(make(BlueskyPoller, server, time), [AccountRef.create("bluesky", handle="grenoble.fr")])
    )

    assert activity_of(result, "bluesky:grenoble.fr") == (None, None, None)
    assert result.snapshots[0].followers == 12873
    assert "record.createdAt: missing" in caplog.text


def test_activity_off_asks_for_audience_only(server: LocalService, time: FakeTime) -> None:
    server.script(GET_PROFILES, bluesky_profiles())

    result = run(
        poll(
            make(BlueskyPoller, server, time, poll_activity=False),
            [AccountRef.create("bluesky", handle="grenoble.fr")],
        )
    )

    assert activity_of(result, "bluesky:grenoble.fr") == (None, None, None)
    assert server.seen(AUTHOR_FEED) == []


def test_a_polled_account_gets_a_good_practice_score(server: LocalService, time: FakeTime) -> None:
    result = poll_grenoble_feed(server, time)

    score = good_practice(point_from_snapshot(result.snapshots[0]), growth_pct_30d=None)
    # regularity 4/12; engagement log10(87 / (4 * 12873)) + 4) / 2; conversation 3/4 replies per post,
    # capped at 1: three components, so a score.
    assert set(score.components) == {"regularity", "engagement", "conversation"}
    assert score.components["regularity"] == pytest.approx(4 / 12)
    assert score.components["conversation"] == 1.0
    assert score.value is not None and 0 < score.value < 5


# --- Mastodon.

LYON_ID = "109352011236544121"
LOOKUP = "/mastodon.social/api/v1/accounts/lookup"
STATUSES = f"/mastodon.social/api/v1/accounts/{LYON_ID}/statuses"


def link_next(max_id: str) -> dict[str, str]:
    url = f"https://mastodon.social/api/v1/accounts/{LYON_ID}/statuses"
    return {
        "Link": f'<{url}?limit=40&exclude_reblogs=true&max_id={max_id}>; rel="next", '
        f'<{url}?limit=40&exclude_reblogs=true&min_id=113577000000000001>; rel="prev"'
    }


def test_mastodon_reads_statuses_across_pages(server: LocalService, time: FakeTime) -> None:
    server.script(LOOKUP, Reply(200, fixture("mastodon_account.json")))
    server.script(
        STATUSES,
        Reply(200, fixture("mastodon_statuses_page1.json"), link_next("113500000000000006")),
        Reply(200, fixture("mastodon_statuses_page2.json"), link_next("113380000000000008")),
    )

    result = run(
        poll(
            make(MastodonPoller, server, time),
            [AccountRef.create("mastodon", handle="villedelyon@mastodon.social")],
        )
    )

    # Posts: illuminations (12+4+2), the thread's second status (3), encombrants (25+10+5), bénévoles
    # (4+1). Replies: to @lyonnaise, to a deleted status. Out: the boost, the status of 25 October.
    assert activity_of(result, "mastodon:villedelyon@mastodon.social") == (4, 66, 2)
    first, second = server.seen(STATUSES)
    assert (first.values("limit"), first.values("exclude_reblogs"), first.values("max_id")) == (
        ["40"],
        ["true"],
        [],
    )
    assert second.values("max_id") == ["113500000000000006"]  # from the Link header


def test_mastodon_last_page_without_link_ends_paging(server: LocalService, time: FakeTime) -> None:
    server.script(LOOKUP, Reply(200, fixture("mastodon_account.json")))
    server.script(STATUSES, Reply(200, fixture("mastodon_statuses_page1.json")))  # no Link: last page

    result = run(
        poll(
            make(MastodonPoller, server, time),
            [AccountRef.create("mastodon", handle="villedelyon@mastodon.social")],
        )
    )

    assert activity_of(result, "mastodon:villedelyon@mastodon.social") == (3, 61, 2)
    assert len(server.seen(STATUSES)) == 1


def test_mastodon_server_refusing_public_timelines_keeps_the_audience(
    server: LocalService, time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    server.script(LOOKUP, Reply(200, fixture("mastodon_account.json")))
    server.script(STATUSES, Reply(401, {"error": "This API requires an authenticated user"}))

    result = run(
        poll(
            make(MastodonPoller, server, time),
            [AccountRef.create("mastodon", handle="villedelyon@mastodon.social")],
        )
    )

    assert activity_of(result, "mastodon:villedelyon@mastodon.social") == (None, None, None)
    assert result.snapshots[0].followers == 5874 and not result.failures
    assert "This API requires an authenticated user" in caplog.text


def test_mastodon_suspended_account_has_no_activity(server: LocalService, time: FakeTime) -> None:
    server.script(
        "/piaille.fr/api/v1/accounts/lookup", Reply(200, fixture("mastodon_account_suspended.json"))
    )

    result = run(
        poll(
            make(MastodonPoller, server, time),
            [AccountRef.create("mastodon", handle="mairie_exemple@piaille.fr")],
        )
    )

    assert activity_of(result, "mastodon:mairie_exemple@piaille.fr") == (None, None, None)
    assert [r.path for r in server.requests] == ["/piaille.fr/api/v1/accounts/lookup"]


# --- Facebook.

PAGE_ID = "103254106379012"
LYON_ID = "157341334281567"
POSTS = f"/v25.0/{PAGE_ID}/posts"
SINCE = str(int((NOW - timedelta(days=30)).timestamp()))
POST_FIELDS = (
    "created_time,reactions.summary(total_count).limit(0),comments.summary(total_count).limit(0),shares"
)
EXPANDED_FIELDS = f"followers_count,fan_count,name,posts.since({SINCE}).limit(100){{{POST_FIELDS}}}"


def facebook_pages_posts(*keys: str) -> dict[str, Any]:
    pages: dict[str, Any] = fixture("facebook_pages_posts.json")
    return {key: pages[key] for key in keys}


def asks_posts(seen: Seen) -> bool:
    return "posts." in seen.values("fields")[0]


def test_facebook_reads_posts_expanded_in_the_pages_request(server: LocalService, time: FakeTime) -> None:
    server.script("/v25.0/", Reply(200, fixture("facebook_pages_posts.json")))
    server.script(POSTS, Reply(200, fixture("facebook_page_posts_page2.json")))
    refs = [
        AccountRef.create("facebook", account_id=f"facebook:{PAGE_ID}"),
        AccountRef.create("facebook", handle="villedelyon"),
        AccountRef.create("facebook", account_id="facebook:180954861916447"),
    ]

    result = run(poll(make(FacebookPoller, server, time), refs))

    assert not result.failures
    # Grenoble: 3 expanded posts going on (paging.next, the last one inside the window), then page 2:
    # (215+31+12) + (48+6) + (1022+144+87) + (77+9+3) + (19+0), the second and last never shared.
    # Replies are not read on Facebook: left out, not 0.
    assert activity_of(result, f"facebook:{PAGE_ID}") == (5, 1673, None)
    # Lyon: its 2 expanded posts are all (no paging.next): (530+41+25) + (120+14).
    assert activity_of(result, "facebook:villedelyon") == (2, 730, None)
    # Saint-Égrève: Graph left the empty posts edge out, no post in the window.
    assert activity_of(result, "facebook:180954861916447") == (0, 0, None)
    [pages] = server.seen("/v25.0/")
    assert pages.values("fields") == [EXPANDED_FIELDS]
    assert pages.values("ids") == [f"{PAGE_ID},villedelyon,180954861916447"]
    # Only Grenoble's posts go on: one more request, from the expanded edge's after cursor, on our own
    # URL (the "next" URL itself is not followed).
    [more] = server.seen(POSTS)
    assert more.values("after") == ["QVFIUlRiZAnpkZA1dJbmxmd3VmS3dRbVJq"]
    assert more.values("since") == [SINCE] and more.values("limit") == ["100"]
    assert more.values("fields") == [POST_FIELDS]
    assert more.headers["Authorization"] == "Bearer EAAGm0PX4ZCpsBAtest"
    assert len(server.requests) == 2


def test_facebook_posts_pages_are_bounded_by_max_pages(server: LocalService, time: FakeTime) -> None:
    server.script("/v25.0/", Reply(200, facebook_pages_posts(PAGE_ID)))

    result = run(
        poll(
            make(FacebookPoller, server, time, poll_activity_max_pages=1),
            [AccountRef.create("facebook", account_id=f"facebook:{PAGE_ID}")],
        )
    )

    # The expanded page is the one page allowed: its 3 posts counted, (215+31+12) + (48+6) + (1022+144+87).
    assert activity_of(result, f"facebook:{PAGE_ID}") == (3, 1565, None)
    assert server.seen(POSTS) == []


def test_facebook_one_page_per_request_expands_posts_too(server: LocalService, time: FakeTime) -> None:
    server.script(f"/v25.0/{PAGE_ID}", Reply(200, fixture("facebook_pages_posts.json")[PAGE_ID]))
    server.script(POSTS, Reply(200, fixture("facebook_page_posts_page2.json")))

    result = run(
        poll(
            make(FacebookPoller, server, time, facebook_batch_size=1),
            [AccountRef.create("facebook", account_id=f"facebook:{PAGE_ID}")],
        )
    )

    assert activity_of(result, f"facebook:{PAGE_ID}") == (5, 1673, None)
    assert server.seen(f"/v25.0/{PAGE_ID}")[0].values("fields") == [EXPANDED_FIELDS]


def test_facebook_failed_posts_page_keeps_the_audience(
    server: LocalService, time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    server.script("/v25.0/", Reply(200, facebook_pages_posts(PAGE_ID, "villedelyon")))
    server.handle(POSTS, lambda seen: Reply(200, {"error_msg": "not a list of posts"}))

    result = run(
        poll(
            make(FacebookPoller, server, time),
            [
                AccountRef.create("facebook", account_id=f"facebook:{PAGE_ID}"),
                AccountRef.create("facebook", handle="villedelyon"),
            ],
        )
    )

    assert not result.failures
    out = {s.account_id: s for s in result.snapshots}
    assert out[f"facebook:{PAGE_ID}"].followers == 98412
    assert activity_of(result, f"facebook:{PAGE_ID}") == (None, None, None)
    assert activity_of(result, "facebook:villedelyon") == (2, 730, None)
    assert "posts: no 'data' list" in caplog.text


def test_facebook_malformed_expanded_posts_keep_the_audience(server: LocalService, time: FakeTime) -> None:
    page = dict(fixture("facebook_pages_posts.json")["villedelyon"], posts=[{"created_time": "x"}])
    server.script("/v25.0/", Reply(200, {"villedelyon": page}))

    result = run(
        poll(make(FacebookPoller, server, time), [AccountRef.create("facebook", handle="villedelyon")])
    )

    assert [s.followers for s in result.snapshots] == [312876] and not result.failures
    assert activity_of(result, "facebook:villedelyon") == (None, None, None)


def test_facebook_posts_permission_refused_turns_activity_off_not_polling(
    server: LocalService, time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    pages = fixture("facebook_pages.json")

    def answer(seen: Seen) -> Reply:
        # Graph refuses the whole request when the expanded posts need a feature the token lacks.
        if asks_posts(seen):
            return Reply(403, fixture("facebook_error_posts_permission.json"))
        ids = seen.values("ids")[0].split(",")
        return Reply(200, {key: pages[key] for key in ids})

    server.handle("/v25.0/", answer)
    refs = [
        AccountRef.create("facebook", account_id=f"facebook:{PAGE_ID}"),
        AccountRef.create("facebook", handle="villedelyon"),
        AccountRef.create("facebook", account_id="facebook:180954861916447"),
    ]

    result = run(poll(make(FacebookPoller, server, time, facebook_batch_size=2), refs))

    assert result.stopped is None and not result.failures
    assert [s.followers for s in result.snapshots] == [98412, 312876, 15304]
    assert activity_of(result, f"facebook:{PAGE_ID}") == (None, None, None)
    assert activity_of(result, "facebook:180954861916447") == (None, None, None)
    # Refused once, the same pages asked again for their audience alone; the refusal holds for the
    # rest of the poll, so the second batch asks no posts.
    assert [s.values("fields")[0] for s in server.seen("/v25.0/")] == [
        EXPANDED_FIELDS,
        "followers_count,fan_count,name",
        "followers_count,fan_count,name",
    ]
    assert "Page Public Content Access" in caplog.text
    assert caplog.text.count("activity off for this poll") == 1


def test_facebook_audience_permission_missing_still_stops_polling(
    server: LocalService, time: FakeTime
) -> None:
    server.handle("/v25.0/", lambda seen: Reply(403, fixture("facebook_error_posts_permission.json")))

    result = run(
        poll(make(FacebookPoller, server, time), [AccountRef.create("facebook", handle="villedelyon")])
    )

    # Without posts the audience is refused too: the token itself lacks a permission, polling stops.
    assert result.stopped is not None and "lacks a permission" in result.stopped
    assert [f.reason for f in result.failures] == [FailureReason.UNAUTHORIZED]
    assert not asks_posts(server.seen("/v25.0/")[-1])


# --- YouTube.

GRENOBLE_TV = "UCq3Ts7nV2xWk9bLp4Rz8YmA"
EMPTY_CHANNEL = "UCe4Rt6Yu8Io0Pa2Sd4Fg6Hj"
CHANNELS = "/youtube/v3/channels"
PLAYLIST_ITEMS = "/youtube/v3/playlistItems"
VIDEOS = "/youtube/v3/videos"


def youtube_refs() -> list[AccountRef]:
    return [AccountRef.create("youtube", account_id=f"youtube:{c}") for c in (GRENOBLE_TV, EMPTY_CHANNEL)]


def test_youtube_reads_uploads_and_video_statistics(server: LocalService, time: FakeTime) -> None:
    server.script(CHANNELS, Reply(200, fixture("youtube_channels_activity.json")))
    server.script(
        PLAYLIST_ITEMS,
        Reply(200, fixture("youtube_playlist_items_page1.json")),
        Reply(200, fixture("youtube_playlist_items_page2.json")),
    )
    server.script(VIDEOS, Reply(200, fixture("youtube_videos.json")))

    result = run(poll(make(YouTubePoller, server, time), youtube_refs()))

    # Likes + comments: 120+14, 0 (likes hidden)+3, 40+0 (comments off). Out: the private video (no
    # videoPublishedAt), the one deleted since it was listed (absent from videos.list), the one of
    # 10 October. YouTube tells no replies: left out.
    assert activity_of(result, f"youtube:{GRENOBLE_TV}") == (3, 177, None)
    assert activity_of(result, f"youtube:{EMPTY_CHANNEL}") == (0, 0, None)  # no upload: nothing asked
    [channels] = server.seen(CHANNELS)
    assert channels.values("part") == ["statistics,contentDetails"]
    first, second = server.seen(PLAYLIST_ITEMS)
    assert (first.values("playlistId"), first.values("part"), first.values("maxResults")) == (
        ["UUq3Ts7nV2xWk9bLp4Rz8YmA"],
        ["contentDetails"],
        ["50"],
    )
    assert second.values("pageToken") == ["EAAaBlBUOkNESQ"]
    [videos] = server.seen(VIDEOS)
    assert videos.values("id") == ["aB3dE5fG7hJ,kL9mN1pQ3rS,tU5vW7xY9zA,bC2dE4fG6hI"]
    assert videos.values("part") == ["statistics"]
    assert videos.headers["X-Goog-Api-Key"] == "AIzaSyTestKey0123456789"


def test_youtube_videos_of_several_channels_share_videos_list_calls(
    server: LocalService, time: FakeTime
) -> None:
    channels = fixture("youtube_channels_activity.json")
    second = json.loads(json.dumps(channels["items"][0]))
    second.update(id="UCa1B2c3D4e5F6g7H8i9J0kL")
    second["contentDetails"]["relatedPlaylists"]["uploads"] = "UUa1B2c3D4e5F6g7H8i9J0kL"
    channels["items"] = [channels["items"][0], second]
    server.script(CHANNELS, Reply(200, channels))

    def playlist(seen: Seen) -> Reply:
        n = 30 if seen.values("playlistId") == ["UUq3Ts7nV2xWk9bLp4Rz8YmA"] else 25
        tag = seen.values("playlistId")[0][2:6]
        items = [
            {
                "kind": "youtube#playlistItem",
                "contentDetails": {"videoId": f"{tag}{i:07d}", "videoPublishedAt": "2026-11-20T10:00:00Z"},
            }
            for i in range(n)
        ]
        return Reply(200, {"kind": "youtube#playlistItemListResponse", "items": items})

    def videos(seen: Seen) -> Reply:
        ids = seen.values("id")[0].split(",")
        return Reply(
            200, {"items": [{"id": i, "statistics": {"likeCount": "2", "commentCount": "1"}} for i in ids]}
        )

    server.handle(PLAYLIST_ITEMS, playlist)
    server.handle(VIDEOS, videos)
    refs = [
        AccountRef.create("youtube", account_id=f"youtube:{c}")
        for c in (GRENOBLE_TV, "UCa1B2c3D4e5F6g7H8i9J0kL")
    ]

    result = run(poll(make(YouTubePoller, server, time), refs))

    assert activity_of(result, f"youtube:{GRENOBLE_TV}") == (30, 90, None)
    assert activity_of(result, "youtube:UCa1B2c3D4e5F6g7H8i9J0kL") == (25, 75, None)
    # 55 videos: two videos.list calls (50 + 5), not one per channel.
    assert [len(s.values("id")[0].split(",")) for s in server.seen(VIDEOS)] == [50, 5]


def test_youtube_quota_spent_during_activity_keeps_the_batch_audience(
    server: LocalService, time: FakeTime
) -> None:
    server.script(CHANNELS, Reply(200, fixture("youtube_channels_activity.json")))
    server.handle(CHANNELS, lambda seen: Reply(200, fixture("youtube_channels.json")))
    server.handle(PLAYLIST_ITEMS, lambda seen: Reply(403, fixture("youtube_error_quota_exceeded.json")))
    refs = [*youtube_refs(), AccountRef.create("youtube", handle="@VilleDeGrenoble")]

    result = run(poll(make(YouTubePoller, server, time), refs))

    # The batch read before the quota ran out keeps its audience, without activity.
    assert activity_of(result, f"youtube:{GRENOBLE_TV}") == (None, None, None)
    assert result.snapshots[0].followers == 18400
    [failure] = result.failures  # the handle's channels call meets the pause: the poll stops
    assert (failure.account_id, failure.reason) == ("youtube:villedegrenoble", FailureReason.QUOTA_EXCEEDED)
    assert result.stopped is not None and "quota" in result.stopped
    assert len(server.seen(PLAYLIST_ITEMS)) == 1 and server.seen(VIDEOS) == []
    assert len(server.seen(CHANNELS)) == 1
