"""Threads poller: public figures of Threads profiles from the Threads Profile Discovery API, one account
per request.

``GET {threads_api_url}/{version}/profile_lookup?username=<name>`` answers ``{"username", "name",
"is_verified", "follower_count", "likes_count", "quotes_count", "replies_count", "reposts_count",
"views_count", ...}``. Followers are ``follower_count``. The other counts cover the profile's posts of
the past 7 days only, so they are not turned into the contract's 30-day figures.

With ``threads_read_posts``, ``GET /profile_posts?username=<name>&fields=id,timestamp,media_type
&since=<observed_at - 30 days>&limit=100`` (following ``paging.cursors.after``) gives ``posts_30d``: the
profile's posts of the 30 days before the poll, reposts (``media_type`` ``REPOST_FACADE``) left out.
Likes and replies per post are not in that answer (post insights are for one's own posts only), so
``interactions_30d`` and ``replies_30d`` are left out.

Limits (Meta, "Threads Profiles"): the token needs ``threads_basic`` and ``threads_profile_discovery``;
with standard access only a few Meta accounts (@meta, @threads, @instagram, @facebook) can be looked
up, other profiles need advanced access after App Review; only public profiles of adults above Meta's
follower threshold are returned; a user may send 1,000 discovery requests in a rolling 24 hours.

Errors are Graph's (:mod:`.graph`): 190 stops polling, a missing permission (10, 200-299) too, the
rate-limit codes pause, and Graph's "does not exist" answers (100/33, 110, 803) or a 404 are a
``not_found`` failure: Meta does not tell a missing profile from one below its threshold or private.
The token (``BAROMETRE_THREADS_TOKEN``) is sent in the Authorization header.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx

from services.common.names import Platform
from services.common.settings import Settings
from services.ingest.sources.pollers.base import AccountRef, PollResult, api_url
from services.ingest.sources.pollers.errors import FailureReason, RequestFailed
from services.ingest.sources.pollers.graph import (
    GraphPoller,
    after_cursor,
    by_username,
    graph_error,
    graph_timestamp,
)
from services.ingest.sources.pollers.http import Fail, Outcome, describe_response, json_object

log = logging.getLogger(__name__)

POSTS_PAGE_SIZE = 100  # the documented maximum of ``limit``
MAX_POSTS_PAGES = 5
ACTIVITY_WINDOW = timedelta(days=30)
_REPOST = "REPOST_FACADE"


def posts_in_window(posts: Sequence[dict[str, Any]], since: datetime, until: datetime) -> int:
    """How many of ``posts`` (``profile_posts`` items) were published in [since, until], reposts left
    out. Raises ValueError for a post without a readable timestamp."""
    return sum(
        1
        for post in posts
        if since <= graph_timestamp(post.get("timestamp")) <= until and post.get("media_type") != _REPOST
    )


class ThreadsPoller(GraphPoller):
    """Followers (and, on request, posts of the last 30 days) of public Threads profiles."""

    name = "threads"
    platform = Platform.THREADS
    label = "Threads"
    # For the scheduler: one username per request; 1,000 profile discovery requests per user token in a
    # rolling 24 hours (developers.facebook.com/docs/threads/threads-profiles, "Limitations").
    batch_size: ClassVar[int] = 1
    rate_budget: ClassVar[tuple[int, float]] = (1000, 86_400.0)
    credential_env = "BAROMETRE_THREADS_TOKEN"
    permissions = (
        "it needs threads_basic and threads_profile_discovery, with advanced access to look up "
        "profiles other than Meta's own"
    )

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        token = self._credential(
            settings.threads_token, "a Threads user token with threads_profile_discovery", self.credential_env
        )
        root = api_url(settings.threads_api_url, settings.threads_api_version)
        super().__init__(settings, token=token, root=root, **kwargs)
        self._read_posts = settings.threads_read_posts

    async def _poll(self, accounts: Sequence[AccountRef], now: datetime, result: PollResult) -> None:
        for ref in by_username(accounts, result, "a Threads username"):
            try:
                response = await self._request(
                    f"{self._root}/profile_lookup",
                    key=self._key,
                    params={"username": ref.lookup},
                    headers=self._auth,
                )
            except RequestFailed as exc:
                result.fail(ref, exc.reason, exc.detail)
                continue
            profile = json_object(response)
            if profile is None:
                result.fail(
                    ref, FailureReason.INVALID_RESPONSE, "profile_lookup: the answer is not a profile"
                )
                continue
            posts = await self._posts_30d(ref, now) if self._read_posts else None
            username = profile.get("username")
            self._record(
                result,
                ref,
                now,
                followers=profile.get("follower_count"),
                posts_30d=posts,
                handle=username if isinstance(username, str) else None,
            )

    async def _posts_30d(self, ref: AccountRef, now: datetime) -> int | None:
        """The profile's posts of the last 30 days, or None when they cannot be read (said in the log)."""
        since = now - ACTIVITY_WINDOW
        params = {
            "username": ref.lookup,
            "fields": "id,timestamp,media_type",
            "since": str(int(since.timestamp())),
            "limit": str(POSTS_PAGE_SIZE),
        }
        posts: list[dict[str, Any]] = []
        try:
            for _ in range(MAX_POSTS_PAGES):
                response = await self._request(
                    f"{self._root}/profile_posts", key=self._key, params=params, headers=self._auth
                )
                body = json_object(response)
                data = body.get("data") if body is not None else None
                if not isinstance(data, list):
                    raise ValueError("profile_posts: no 'data' list")
                items = [item for item in data if isinstance(item, dict)]
                posts += items
                after = after_cursor(body)
                if not items or not after or graph_timestamp(items[-1].get("timestamp")) < since:
                    break
                params["after"] = after
            return posts_in_window(posts, since, now)
        except (RequestFailed, ValueError) as exc:
            log.warning("threads: the posts of %s could not be read: %s", ref.account_id, exc)
            return None

    def _classify(self, response: httpx.Response) -> Outcome:
        # A 404 without a Graph error body is a not-found too (see the module), not an HTTP error.
        if response.status_code == httpx.codes.NOT_FOUND and graph_error(response) is None:
            return Fail(FailureReason.NOT_FOUND, describe_response(response))
        return super()._classify(response)
