"""Instagram poller: public figures of Instagram professional accounts through Graph API business
discovery, one account per request.

Business discovery is asked on the operator's own Instagram professional account
(``BAROMETRE_INSTAGRAM_BUSINESS_ACCOUNT_ID``, an IG user id), naming the account to read by username:

``GET {facebook_graph_url}/{version}/{ig-user-id}?fields=business_discovery.username(<name>){followers_count,
follows_count,media_count,username,id,media.limit(50){timestamp,like_count,comments_count}}`` answers
``{"business_discovery": {"followers_count", "follows_count", "media_count", "username", "id",
"media": {"data": [{"timestamp", "like_count", "comments_count", "id"}], "paging": {"cursors":
{"after"}}}}, "id": "<ig-user-id>"}``. Media come newest first; while the last one of a page is still
within 30 days, the next page is asked with ``media.after(<cursor>).limit(50)``, so that:

- ``posts_30d`` counts the media published in the 30 days before the poll;
- ``interactions_30d`` sums their likes and comments, and is left out when a media hides its like
  count (Graph omits ``like_count`` when the owner hid it): a partial sum would read as a real figure.

Replies to the public are not given by business discovery; ``replies_30d`` is left out.

Errors are Graph's (:mod:`.graph`): 110 with subcode 2207013 ("Invalid user id", "Cannot find User")
is a ``not_found`` failure — an unknown username and a personal (non-professional) account look the same,
and neither is readable; 190 stops polling (refused token); 10/200-299 stops polling (missing
permission); the rate-limit codes pause. Instagram accounts are read by username only: the id part of
``instagram:<id>`` is taken as the username.

Credentials: a token with ``instagram_basic``, ``instagram_manage_insights`` and
``pages_read_engagement`` of the Facebook Page linked to the business account:
``BAROMETRE_INSTAGRAM_TOKEN``, or ``BAROMETRE_FACEBOOK_TOKEN`` when that one is not set (a system-user
token of the business that owns both serves both pollers). It is sent in the Authorization header.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

from services.common.names import Platform
from services.common.settings import Settings
from services.ingest.sources.pollers.base import AccountRef, PollResult, secret_value
from services.ingest.sources.pollers.errors import FailureReason, PollerConfigError, RequestFailed
from services.ingest.sources.pollers.graph import (
    GraphPoller,
    after_cursor,
    by_username,
    graph_root,
    graph_timestamp,
)
from services.ingest.sources.pollers.http import json_object

log = logging.getLogger(__name__)

MEDIA_PAGE_SIZE = 50
# A municipality posting more than 500 times in 30 days is not one; the bound keeps a poll finite.
MAX_MEDIA_PAGES = 10
ACTIVITY_WINDOW = timedelta(days=30)
_ACCOUNT_FIELDS = "followers_count,follows_count,media_count,username,id"
_MEDIA_FIELDS = "timestamp,like_count,comments_count"


def discovery_fields(username: str, after: str | None = None) -> str:
    """The ``fields`` parameter asking for ``username``'s figures and one page of its media."""
    media = f"media.after({after}).limit({MEDIA_PAGE_SIZE})" if after else f"media.limit({MEDIA_PAGE_SIZE})"
    return f"business_discovery.username({username}){{{_ACCOUNT_FIELDS},{media}{{{_MEDIA_FIELDS}}}}}"


def media_activity(
    media: Sequence[dict[str, Any]], since: datetime, until: datetime
) -> tuple[int, int | None]:
    """(posts, interactions) of the media published in [since, until]; interactions None when a media in
    the window hides its like count. Raises ValueError for a media without a readable timestamp."""
    posts, interactions, complete = 0, 0, True
    for item in media:
        if not since <= graph_timestamp(item.get("timestamp")) <= until:
            continue
        posts += 1
        likes, comments = item.get("like_count"), item.get("comments_count")
        for count in (likes, comments):
            if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
                raise ValueError(f"media {item.get('id')!r} has a malformed count: {count!r}")
        if isinstance(likes, int) and isinstance(comments, int):
            interactions += likes + comments
        else:
            complete = False
    return posts, interactions if complete else None


class InstagramPoller(GraphPoller):
    """Followers, follows, media and 30-day activity of Instagram professional accounts."""

    name = "instagram"
    platform = Platform.INSTAGRAM
    label = "Instagram"
    # For the scheduler. Business discovery takes one username per request. Instagram API requests are
    # under Business Use Case rate limits (developers.facebook.com, "Rate limits"): 4,800 times the
    # impressions per 24 h of the app user's account, above Graph's platform limit of 200 calls per user
    # per hour, taken as the documented floor; Meta's usage headers slow the poller down before either.
    batch_size: ClassVar[int] = 1
    rate_budget: ClassVar[tuple[int, float]] = (200, 3600.0)
    credential_env = "BAROMETRE_INSTAGRAM_TOKEN (or BAROMETRE_FACEBOOK_TOKEN)"
    permissions = (
        "it needs instagram_basic, instagram_manage_insights and pages_read_engagement for the Page "
        "linked to BAROMETRE_INSTAGRAM_BUSINESS_ACCOUNT_ID"
    )

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        token = secret_value(settings.instagram_token or settings.facebook_token)
        if not token or not settings.instagram_business_account_id:
            raise PollerConfigError(
                "the Instagram poller needs the id of an Instagram professional account of yours and a "
                "token for it: set BAROMETRE_INSTAGRAM_BUSINESS_ACCOUNT_ID and BAROMETRE_INSTAGRAM_TOKEN "
                "(or BAROMETRE_FACEBOOK_TOKEN)"
            )
        super().__init__(settings, token=token, root=graph_root(settings), **kwargs)
        self._url = f"{self._root}/{quote(settings.instagram_business_account_id, safe='')}"

    async def _poll(self, accounts: Sequence[AccountRef], now: datetime, result: PollResult) -> None:
        for ref in by_username(accounts, result, "an Instagram username"):
            await self._poll_one(ref, now, result)

    async def _poll_one(self, ref: AccountRef, now: datetime, result: PollResult) -> None:
        try:
            account = await self._discover(ref.lookup, None)
        except RequestFailed as exc:
            result.fail(ref, exc.reason, exc.detail)
            return
        if account is None:
            result.fail(
                ref, FailureReason.INVALID_RESPONSE, "Graph's answer has no business_discovery object"
            )
            return
        posts, interactions = await self._activity(ref, account, now)
        username = account.get("username")
        self._record(
            result,
            ref,
            now,
            followers=account.get("followers_count"),
            following=account.get("follows_count"),
            posts_total=account.get("media_count"),
            posts_30d=posts,
            interactions_30d=interactions,
            handle=username if isinstance(username, str) else None,
        )

    async def _discover(self, username: str, after: str | None) -> dict[str, Any] | None:
        response = await self._request(
            self._url,
            key=self._key,
            params={"fields": discovery_fields(username, after)},
            headers=self._auth,
        )
        body = json_object(response)
        account = body.get("business_discovery") if body is not None else None
        return account if isinstance(account, dict) else None

    async def _activity(
        self, ref: AccountRef, account: dict[str, Any], now: datetime
    ) -> tuple[int | None, int | None]:
        """(posts_30d, interactions_30d), or Nones when the media cannot be read (said in the log)."""
        since = now - ACTIVITY_WINDOW
        media: list[dict[str, Any]] = []
        page = account
        try:
            for _ in range(MAX_MEDIA_PAGES):
                edge = page.get("media", {"data": []})  # an account without media has no edge
                data = edge.get("data") if isinstance(edge, dict) else None
                if not isinstance(data, list):
                    raise ValueError("the media edge has no 'data' list")
                items = [item for item in data if isinstance(item, dict)]
                media += items
                after = after_cursor(edge)
                # Newest first, pinned media aside (they come first whatever their age): the page's last
                # media says whether older ones may still be within the window.
                if not items or not after or graph_timestamp(items[-1].get("timestamp")) < since:
                    break
                next_page = await self._discover(ref.lookup, after)
                if next_page is None:
                    raise ValueError("a media page has no business_discovery object")
                page = next_page
            return media_activity(media, since, now)
        except (RequestFailed, ValueError) as exc:
            log.warning("instagram: the media of %s could not be read: %s", ref.account_id, exc)
            return None, None
