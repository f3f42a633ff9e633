"""A local stand-in for every platform barometre polls, for ``bench/poll.py``: one aiohttp server on
127.0.0.1 answering Bluesky, Mastodon (any server: the Host header names it), Facebook, Instagram,
YouTube, X and Threads in their documented formats (the recorded answers of
``tests/unit/ingest/sources/poller_fixtures`` are the templates), with figures made up for any account
asked (stable: drawn from the account's name), and each platform's documented rate limit ENFORCED.

Limits, per key, as each platform documents them (windows divided by ``speed`` to compress time):

- Bluesky AppView: 3,000 requests / 5 min per IP, fixed window; ``RateLimit-*`` headers on every
  answer, 429 ``RateLimitExceeded`` with ``Retry-After``;
- Mastodon: 300 requests / 5 min per IP and per server, fixed windows aligned on the period;
  ``X-RateLimit-*`` (reset as ISO 8601) on every answer, 429 ``Too many requests``;
- Facebook Graph: 200 calls / rolling hour per user (the platform rate limit floor), sliding window;
  ``X-App-Usage`` (percent used) on every answer, Graph error 4 (HTTP 403) beyond;
- Instagram business discovery: 200 calls / rolling hour (the floor the poller keeps to), sliding;
  ``X-Business-Use-Case-Usage`` on every answer, Graph error 80002 (HTTP 400) beyond;
- YouTube Data API: 10,000 units / day per project (every call here costs 1), fixed daily window;
  403 ``quotaExceeded`` beyond;
- X API v2: user lookup 300 requests / 15 min per app, timelines 1,500 / 15 min per app, fixed windows
  per endpoint; ``x-rate-limit-*`` (reset in epoch seconds) on every answer, 429 beyond;
- Threads profile discovery: 1,000 requests / rolling 24 h per user token, sliding; Graph error 4
  (HTTP 400) beyond.

It counts, per platform, requests, refusals (429 or the platform's own rate-limit error) and the most
requests any window held, served at ``GET /_bench/stats``. Run on its own process (so that its CPU is
not the poller's): ``python bench/_platforms.py --port P [--speed F] [--unlimited]``; it prints
``ready`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "unit" / "ingest" / "sources" / "poller_fixtures"
GRAPH_VERSION = "v25.0"  # Settings.facebook_graph_version's default
_FB_POSTS = re.compile(r"(?:^|,)posts\.since\([0-9]+\)\.limit\([0-9]+\)\{")
THREADS_VERSION = "v1.0"
INSTAGRAM_BUSINESS_ID = "17841405309211844"


@dataclass(frozen=True)
class Limit:
    """A documented limit: ``requests`` per ``window_s`` seconds, per key, ``fixed`` or sliding."""

    requests: int
    window_s: float
    fixed: bool
    what: str  # as the platform documents it, for the report


# Documented limits, real time. The poller's own declared budgets (rate_budget) must match these.
LIMITS: dict[str, Limit] = {
    "bluesky": Limit(3_000, 300.0, True, "3,000 req/5 min per IP"),
    "mastodon": Limit(300, 300.0, True, "300 req/5 min per IP, per server"),
    "facebook": Limit(200, 3_600.0, False, "200 calls/rolling hour per user"),
    "instagram": Limit(200, 3_600.0, False, "200 calls/rolling hour"),
    "youtube": Limit(10_000, 86_400.0, True, "10,000 units/day per project"),
    "x": Limit(300, 900.0, True, "300 req/15 min per app (users lookup)"),
    "x-timeline": Limit(1_500, 900.0, True, "1,500 req/15 min per app (timelines)"),
    "threads": Limit(1_000, 86_400.0, False, "1,000 req/rolling 24 h per user"),
}


@dataclass
class Window:
    """One key's requests within its limit's window; ``peak`` the most any window held."""

    limit: Limit
    sent: deque[float] = field(default_factory=deque)  # sliding: times of the accepted requests
    start: float = 0.0  # fixed: the current window's start
    count: int = 0
    peak: int = 0

    def admit(self, now: float) -> tuple[bool, int, float]:
        """Count a request at ``now``: (accepted, remaining after it, seconds until a slot frees)."""
        limit = self.limit
        if limit.fixed:
            start = math.floor(now / limit.window_s) * limit.window_s
            if start != self.start:
                self.start, self.count = start, 0
            reset_in = start + limit.window_s - now
            if self.count >= limit.requests:
                return False, 0, reset_in
            self.count += 1
            self.peak = max(self.peak, self.count)
            return True, limit.requests - self.count, reset_in
        while self.sent and self.sent[0] <= now - limit.window_s:
            self.sent.popleft()
        if len(self.sent) >= limit.requests:
            return False, 0, self.sent[0] + limit.window_s - now
        self.sent.append(now)
        self.peak = max(self.peak, len(self.sent))
        reset_in = self.sent[0] + limit.window_s - now
        return True, limit.requests - len(self.sent), reset_in


@dataclass
class Counts:
    requests: int = 0
    refused: int = 0
    keys: set[str] = field(default_factory=set)


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _draw(name: str, salt: str = "") -> int:
    return zlib.crc32(f"{salt}{name}".encode())


def followers_of(name: str) -> int:
    """Audiences from 30 to 300,000, log-uniform: about 3/8 large (hourly), 3/8 small (daily)."""
    return int(10 ** (1.5 + 4 * (_draw(name) / 2**32)))


def _posts_times(name: str, now: datetime) -> list[datetime]:
    """0 to 12 posts within the last 30 days, newest first, then one older post (the feed goes on)."""
    n = _draw(name, "posts") % 13
    step = timedelta(days=29) / max(n, 1)
    return [now - timedelta(hours=1) - step * i for i in range(n)] + [now - timedelta(days=40)]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _graph_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S+0000")


def _digits(name: str, length: int, salt: str = "") -> str:
    return str(_draw(name, salt) * 2_654_435_761 + 10 ** (length - 1))[:length]


class Platforms:
    """The platforms' answers and their limits (``speed`` divides every window; ``unlimited`` counts
    with limits no client reaches)."""

    def __init__(self, speed: float = 1.0, unlimited: bool = False) -> None:
        self.speed = speed
        self.unlimited = unlimited
        self.windows: dict[tuple[str, str], Window] = {}
        self.counts: dict[str, Counts] = {}
        self._bsky_profile = _fixture("bluesky_get_profiles.json")["profiles"][0]
        self._bsky_post = _fixture("bluesky_author_feed_page1.json")["feed"][0]["post"]
        self._mastodon_account = _fixture("mastodon_account.json")
        self._mastodon_status = _fixture("mastodon_statuses_page1.json")[0]
        self._fb_post = _fixture("facebook_page_posts_page1.json")["data"][0]
        self._yt_channel = _fixture("youtube_channels_activity.json")["items"][0]
        self._yt_item = _fixture("youtube_playlist_items_page1.json")["items"][0]
        self._yt_video = _fixture("youtube_videos.json")["items"][0]
        self._x_user = _fixture("x_users_by.json")["data"][0]
        self._threads = _fixture("threads_profile_lookup.json")
        self._errors = {
            "bluesky": _fixture("bluesky_error_rate_limit.json"),
            "mastodon": _fixture("mastodon_error_too_many_requests.json"),
            "facebook": _fixture("facebook_error_app_rate_limit.json"),
            "youtube": _fixture("youtube_error_quota_exceeded.json"),
            "x": _fixture("x_error_too_many_requests.json"),
        }

    # --- Limits.

    def limit(self, platform: str) -> Limit:
        real = LIMITS[platform]
        # Unlimited: a limit no client reaches, so the rate-limit headers say so too.
        requests = 10**9 if self.unlimited else real.requests
        return Limit(requests, real.window_s / self.speed, real.fixed, real.what)

    def admit(self, platform: str, key: str) -> tuple[bool, int, float]:
        counts = self.counts.setdefault(platform.removesuffix("-timeline"), Counts())
        counts.requests += 1
        counts.keys.add(key)
        window = self.windows.get((platform, key))
        if window is None:
            window = self.windows[(platform, key)] = Window(self.limit(platform))
        accepted, remaining, reset_in = window.admit(time.time())
        if not accepted:
            counts.refused += 1
        return accepted, remaining, reset_in

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for platform, counts in sorted(self.counts.items()):
            peaks = {
                name: max(w.peak for (p, _), w in self.windows.items() if p == name)
                for name in (platform, f"{platform}-timeline")
                if any(p == name for p, _ in self.windows)
            }
            out[platform] = {
                "requests": counts.requests,
                "refused": counts.refused,
                "keys": len(counts.keys),
                "peak": peaks,
            }
        return out

    # --- Answers.

    @staticmethod
    def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(
            body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
        )

    async def bluesky(self, request: web.Request, method: str) -> web.Response:
        accepted, remaining, reset_in = self.admit("bluesky", request.remote or "")
        limit = self.limit("bluesky")
        headers = {
            "RateLimit-Limit": str(limit.requests),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(math.ceil(time.time() + reset_in)),
            "RateLimit-Policy": f"{limit.requests};w={math.ceil(limit.window_s)}",
        }
        if not accepted:
            headers["Retry-After"] = str(math.ceil(reset_in))
            return self._json(self._errors["bluesky"], 429, headers)
        now = datetime.now(UTC)
        if method == "app.bsky.actor.getProfiles":
            profiles = [self._bluesky_profile(actor) for actor in request.query.getall("actors", [])]
            return self._json({"profiles": profiles}, headers=headers)
        if method == "app.bsky.actor.getProfile":
            return self._json(self._bluesky_profile(request.query["actor"]), headers=headers)
        if method == "app.bsky.feed.getAuthorFeed":
            actor = request.query["actor"]
            author = {**self._bsky_post["author"], "did": actor, "handle": actor}
            feed = [
                {
                    "post": {
                        **self._bsky_post,
                        "uri": f"at://{actor}/app.bsky.feed.post/{i}",
                        "author": author,
                        "record": {**self._bsky_post["record"], "createdAt": _iso(moment)},
                        "likeCount": i % 7,
                        "repostCount": i % 3,
                    }
                }
                for i, moment in enumerate(_posts_times(actor, now))
            ]
            return self._json({"feed": feed}, headers=headers)
        return self._json({"error": "MethodNotImplemented", "message": method}, 501, headers)

    def _bluesky_profile(self, actor: str) -> dict[str, Any]:
        handle = actor.removeprefix("did:plc:")
        return {
            **self._bsky_profile,
            "did": actor if actor.startswith("did:") else f"did:plc:{_digits(actor, 24)}",
            "handle": handle,
            "followersCount": followers_of(handle),
            "postsCount": _draw(handle, "total") % 5_000,
        }

    async def mastodon(self, request: web.Request, path: str) -> web.Response:
        server = request.host.rsplit(":", 1)[0]
        accepted, remaining, reset_in = self.admit("mastodon", server)
        reset = datetime.now(UTC) + timedelta(seconds=reset_in)
        headers = {
            "X-RateLimit-Limit": str(self.limit("mastodon").requests),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": reset.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        }
        if not accepted:
            return self._json(self._errors["mastodon"], 429, headers)
        if path == "lookup":
            user = request.query["acct"].partition("@")[0]
            account_id = _digits(f"{user}@{server}", 18)
            return self._json(self._mastodon_entity(user, account_id), headers=headers)
        account_id, _, edge = path.partition("/")
        if edge == "statuses":
            now = datetime.now(UTC)
            statuses = [
                {
                    **self._mastodon_status,
                    "id": f"{account_id[:12]}{i:06d}",
                    "created_at": _iso(moment),
                    "favourites_count": i % 9,
                    "reblogs_count": i % 4,
                    "replies_count": i % 2,
                    "account": {**self._mastodon_status["account"], "id": account_id},
                }
                for i, moment in enumerate(_posts_times(account_id, now))
            ]
            return self._json(statuses, headers=headers)
        return self._json({"error": "Record not found"}, 404, headers)

    def _mastodon_entity(self, user: str, account_id: str) -> dict[str, Any]:
        return {
            **self._mastodon_account,
            "id": account_id,
            "username": user,
            "acct": user,
            "followers_count": followers_of(user),
            "statuses_count": _draw(user, "total") % 5_000,
        }

    def _graph_usage(self, platform: str, key: str, remaining: int) -> str:
        limit = self.limit(platform)
        used = min(100, math.ceil(100 * (limit.requests - remaining) / limit.requests))
        usage = {"call_count": used, "total_cputime": used // 4, "total_time": used // 4}
        if platform == "instagram":
            return json.dumps({key: [{"type": "instagram", **usage, "estimated_time_to_regain_access": 0}]})
        return json.dumps(usage)

    def _graph_refusal(self, code: int, message: str, status: int, headers: dict[str, str]) -> web.Response:
        error = {"message": message, "type": "OAuthException", "is_transient": True, "code": code}
        return self._json({"error": {**error, "fbtrace_id": "AbenchTrace"}}, status, headers)

    async def graph(self, request: web.Request, node: str) -> web.Response:
        token = request.headers.get("Authorization", "")
        fields = request.query.get("fields", "")
        if node == INSTAGRAM_BUSINESS_ID and fields.startswith("business_discovery"):
            return self._instagram(node, fields)
        accepted, remaining, _ = self.admit("facebook", token)
        headers = {"X-App-Usage": self._graph_usage("facebook", token, remaining)}
        if not accepted:
            return self._graph_refusal(4, "(#4) Application request limit reached", 403, headers)
        expanded = _FB_POSTS.search(fields) is not None  # the posts edge asked by field expansion
        if node == "":
            pages = {name: self._page(name, expanded) for name in request.query["ids"].split(",")}
            return self._json(pages, headers=headers)
        page, _, edge = node.partition("/")
        if edge == "posts":
            return self._json(self._fb_posts(page), headers=headers)
        return self._json(self._page(page, expanded), headers=headers)

    def _fb_posts(self, page: str) -> dict[str, Any]:
        """A page's posts of the last 30 days (the older one left out, as ``since`` does): one page."""
        now = datetime.now(UTC)
        posts = [
            {
                **self._fb_post,
                "id": f"{page}_{i}",
                "created_time": _graph_time(moment),
                "reactions": {"data": [], "summary": {"total_count": i * 5}},
                "comments": {"data": [], "summary": {"total_count": i}},
                "shares": {"count": i % 3},
            }
            for i, moment in enumerate(_posts_times(page, now)[:-1])
        ]
        return {"data": posts, "paging": {"cursors": {"before": "QVFI", "after": "QVFJ"}}}

    def _page(self, name: str, expanded: bool = False) -> dict[str, Any]:
        followers = followers_of(name)
        page_id = name if name.isdigit() else _digits(name, 15)
        page = {"followers_count": followers, "fan_count": followers * 9 // 10, "name": name, "id": page_id}
        if expanded:
            posts = self._fb_posts(page_id)
            if posts["data"]:  # Graph leaves an edge with nothing to list out of the answer
                page["posts"] = posts
        return page

    _USERNAME = re.compile(r"business_discovery\.username\(([^)]+)\)")

    def _instagram(self, node: str, fields: str) -> web.Response:
        accepted, remaining, _ = self.admit("instagram", node)
        headers = {"X-Business-Use-Case-Usage": self._graph_usage("instagram", node, remaining)}
        if not accepted:
            return self._graph_refusal(
                80002, "There have been too many calls to this Instagram account.", 400, headers
            )
        match = self._USERNAME.search(fields)
        username = match.group(1) if match else "unknown"
        now = datetime.now(UTC)
        media = [
            {
                "timestamp": _graph_time(moment),
                "like_count": i * 11,
                "comments_count": i,
                "id": f"{_digits(username, 12)}{i:05d}",
            }
            for i, moment in enumerate(_posts_times(username, now))
        ]
        discovery = {
            "followers_count": followers_of(username),
            "follows_count": _draw(username, "follows") % 900,
            "media_count": _draw(username, "total") % 3_000,
            "username": username,
            "id": _digits(username, 17),
            "media": {"data": media, "paging": {"cursors": {"before": "QVFIUk", "after": "QVFIUm"}}},
        }
        return self._json({"business_discovery": discovery, "id": node}, headers=headers)

    async def youtube(self, request: web.Request, resource: str) -> web.Response:
        key = request.headers.get("X-Goog-Api-Key", "")
        accepted, _, _ = self.admit("youtube", key)
        if not accepted:
            return self._json(self._errors["youtube"], 403)
        now = datetime.now(UTC)
        if resource == "channels":
            items = []
            for channel in request.query.get("id", "").split(","):
                if not channel:
                    continue
                items.append(
                    {
                        **self._yt_channel,
                        "id": channel,
                        "contentDetails": {"relatedPlaylists": {"likes": "", "uploads": "UU" + channel[2:]}},
                        "statistics": {
                            "viewCount": str(_draw(channel, "views")),
                            "subscriberCount": str(followers_of(channel)),
                            "hiddenSubscriberCount": False,
                            "videoCount": str(_draw(channel, "total") % 2_000),
                        },
                    }
                )
            return self._json({"kind": "youtube#channelListResponse", "items": items})
        if resource == "playlistItems":
            playlist = request.query["playlistId"]
            items = [
                {
                    **self._yt_item,
                    "contentDetails": {
                        "videoId": f"{playlist[2:12]}{i}",
                        "videoPublishedAt": _iso(moment)[:19] + "Z",
                    },
                }
                for i, moment in enumerate(_posts_times(playlist, now))
            ]
            return self._json({"kind": "youtube#playlistItemListResponse", "items": items})
        if resource == "videos":
            items = [
                {
                    **self._yt_video,
                    "id": video,
                    "statistics": {"viewCount": "100", "likeCount": str(len(video)), "commentCount": "2"},
                }
                for video in request.query.get("id", "").split(",")
                if video
            ]
            return self._json({"kind": "youtube#videoListResponse", "items": items})
        return self._json({"error": {"code": 404, "message": "Not Found"}}, 404)

    async def x(self, request: web.Request, path: str) -> web.Response:
        endpoint = "x-timeline" if path.endswith("/tweets") else "x"
        accepted, remaining, reset_in = self.admit(endpoint, request.headers.get("Authorization", ""))
        headers = {
            "x-rate-limit-limit": str(self.limit(endpoint).requests),
            "x-rate-limit-remaining": str(remaining),
            "x-rate-limit-reset": str(math.ceil(time.time() + reset_in)),
        }
        if not accepted:
            return self._json(self._errors["x"], 429, headers)
        if path == "users/by":
            users = [self._x_user_of(name) for name in request.query["usernames"].split(",")]
            return self._json({"data": users}, headers=headers)
        if path == "users":
            users = [self._x_user_of(f"u{user_id}", user_id) for user_id in request.query["ids"].split(",")]
            return self._json({"data": users}, headers=headers)
        return self._json({"data": [], "meta": {"result_count": 0}}, headers=headers)

    def _x_user_of(self, name: str, user_id: str | None = None) -> dict[str, Any]:
        metrics = {**self._x_user["public_metrics"], "followers_count": followers_of(name)}
        return {
            **self._x_user,
            "id": user_id or _digits(name, 12),
            "username": name,
            "public_metrics": metrics,
        }

    async def threads(self, request: web.Request, edge: str) -> web.Response:
        token = request.headers.get("Authorization", "")
        accepted, _, _ = self.admit("threads", token)
        if not accepted:
            return self._graph_refusal(4, "Application request limit reached", 400, {})
        if edge == "profile_lookup":
            username = request.query["username"]
            return self._json(
                {**self._threads, "username": username, "follower_count": followers_of(username)}
            )
        now = datetime.now(UTC)
        username = request.query["username"]
        posts = [
            {"id": f"{_digits(username, 10)}{i}", "timestamp": _graph_time(moment), "media_type": "TEXT_POST"}
            for i, moment in enumerate(_posts_times(username, now))
        ]
        return self._json({"data": posts, "paging": {"cursors": {"before": "a", "after": "b"}}})

    async def bench_stats(self, request: web.Request) -> web.Response:
        return self._json(self.stats())

    def app(self) -> web.Application:
        app = web.Application()

        async def dispatch(request: web.Request) -> web.Response:
            # Mastodon servers are told apart by the Host header (every one is 127.0.0.1 here).
            if not request.host.startswith(("127.0.0.1", "localhost")):
                if request.path.startswith("/api/v1/accounts/"):
                    return await self.mastodon(request, request.path.removeprefix("/api/v1/accounts/"))
                return self._json({"error": "Record not found"}, 404)
            path = request.path
            if path.startswith("/xrpc/"):
                return await self.bluesky(request, path.removeprefix("/xrpc/"))
            if path.startswith(f"/{GRAPH_VERSION}/"):
                return await self.graph(request, path.removeprefix(f"/{GRAPH_VERSION}/"))
            if path.startswith(f"/{THREADS_VERSION}/"):
                return await self.threads(request, path.removeprefix(f"/{THREADS_VERSION}/"))
            if path.startswith("/youtube/v3/"):
                return await self.youtube(request, path.removeprefix("/youtube/v3/"))
            if path.startswith("/2/"):
                return await self.x(request, path.removeprefix("/2/"))
            if path == "/_bench/stats":
                return await self.bench_stats(request)
            return self._json({"error": "not found"}, 404)

        app.router.add_route("GET", "/{tail:.*}", dispatch)
        return app


async def _serve(port: int, speed: float, unlimited: bool) -> None:
    runner = web.AppRunner(Platforms(speed, unlimited).app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--speed", type=float, default=1.0, help="every window divided by this")
    parser.add_argument("--unlimited", action="store_true", help="count, never refuse")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_serve(args.port, args.speed, args.unlimited))


if __name__ == "__main__":
    main()
