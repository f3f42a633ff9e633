"""Facebook poller: public page figures from the Graph API, up to 50 pages per request.

``GET {facebook_graph_url}/{version}/?ids=id1,id2&fields=followers_count,fan_count,name`` answers
``{"id1": {"followers_count": ..., "fan_count": ..., "name": ..., "id": "id1"}, ...}``. Followers are
``followers_count`` (people following the page), or ``fan_count`` (likes) for pages that only have
that. Ids are page ids or page usernames. The access token (``BAROMETRE_FACEBOOK_TOKEN``) is sent in the
``Authorization`` header rather than the URL, so it never appears in logged URLs.

Multi-id requests are being withdrawn by Meta (refused from Graph API v26.0, and for apps created
since November 2026): with ``facebook_batch_size = 1`` the poller asks ``GET /{version}/{id}?fields=...``
for each page instead.

Graph errors (``{"error": {"code", "error_subcode", "message", "is_transient"}}``) decide what happens,
as :mod:`.graph` says for every Graph poller: a refused token or a missing permission stops polling
with a message saying what to fix, rate-limit codes (sent as 400/403, not 429) pause, transient errors
are retried. Only 803 ("Some of the aliases you requested do not exist") and 100/33 ("does not exist")
say a page is not found; 110 ("Invalid user id"), not found for Instagram and Threads, is not, since a
page not found by its id is recorded gone. One missing page fails a whole multi-id request, so the
batch is split in halves until the missing pages are alone: a few extra requests instead of 49 lost
pages. A missing page is a ``not_found`` failure, never a ``deleted`` snapshot: Graph says the same for
a deleted page, a page hidden by its owner and a typo.

Renames and gone pages: ``platform_id`` is the page id recorded at verification. A page asked by its
username and not found (the username changed or was dropped), or whose username now names another
page, is asked by id, ``GET /{version}/{page-id}?fields=...,username``: found, it was renamed (a normal
snapshot with its new username, listed in ``PollResult.renamed``); not found by id either, it is gone
(a ``deleted`` snapshot, listed in ``PollResult.gone``). Without a page id a missing page stays
``not_found``, as above.

Activity (``poll_activity``) rides in the same request, by Graph's field expansion: ``fields`` also
asks ``posts.since(<30 days ago, Unix>).limit(100){created_time,reactions.summary(total_count).limit(0),
comments.summary(total_count).limit(0),shares}``, so each page's object carries ``"posts": {"data":
[...], "paging": {"cursors": {"after"}, "next"}}`` (Graph leaves an edge with nothing to list out of
the answer: no ``posts``, no post in the window). Only a page whose expanded posts go on (``paging.next``
and the last post still inside the 30 days) costs more: ``GET /{version}/{page-id}/posts?since=...&
limit=100&fields=...&after=<cursor>``, paged with the ``after`` cursor while ``paging.next`` is there
(at most ``poll_activity_max_pages`` pages in all, the expanded one included; the next URL itself is
not followed, so the token never goes to a host the answer names). Interactions are reactions +
top-level comments (the edge's default filter) + shares. Replies are left out: the page's own comments
are only found by listing every post's comments, one request per post, which the rate budget cannot
afford. Reading another organisation's posts needs the "Page Public Content Access" feature: without it
Graph answers a permission error (10, 200-299) for the whole request, which here only turns activity
off for the rest of the poll (logged once) — the same pages are asked again for their audience alone,
never stopped. A page whose posts cannot be read (a malformed edge, a failed later posts page) keeps
its audience snapshot without the activity figures, logged.

Meta's usage headers slow requests down and pause them before Facebook throttles the app (:mod:`.graph`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from services.common.names import AccountStatus, Platform
from services.common.settings import Settings
from services.ingest.sources.pollers.activity import (
    Activity,
    ActivityError,
    Post,
    count,
    figures_of,
    parse_count,
    parse_time,
    reached_window_start,
    window_start,
)
from services.ingest.sources.pollers.base import AccountRef, PollResult, chunks
from services.ingest.sources.pollers.errors import FailureReason, Interrupted, RequestFailed
from services.ingest.sources.pollers.graph import (
    ALIAS_NOT_FOUND_CODE,
    GraphError,
    GraphPoller,
    after_cursor,
    graph_root,
)
from services.ingest.sources.pollers.http import Fail, Outcome, json_object

log = logging.getLogger(__name__)

FIELDS = "followers_count,fan_count,name"
# Asked by page id after a not-found: the username tells the page's new handle.
BY_ID_FIELDS = f"{FIELDS},username"
POST_FIELDS = (
    "created_time,reactions.summary(total_count).limit(0),comments.summary(total_count).limit(0),shares"
)
POSTS_PAGE_SIZE = 100
# Graph leaves an edge with nothing to list out of an expanded answer: no posts in the window.
_NO_POSTS: dict[str, Any] = {"data": []}

# Set while asking a page's posts (expanded or not): a permission Graph refuses there turns activity off,
# not polling.
_READING_POSTS: ContextVar[bool] = ContextVar("facebook_reading_posts", default=False)


class FacebookPoller(GraphPoller):
    """Followers of Facebook pages, from the Graph API."""

    name = "facebook"
    platform = Platform.FACEBOOK
    label = "Facebook"
    batch_size: ClassVar[int] = 50
    # Graph Platform Rate Limits: 200 calls/hour per user (the floor).
    rate_budget: ClassVar[tuple[int, float]] = (200, 3600.0)
    credential_env = "BAROMETRE_FACEBOOK_TOKEN"
    permissions = (
        "public page figures need the 'Page Public Metadata Access' feature or a token of the pages' own"
    )
    # A page not found by its id is recorded gone: only Graph's explicit "does not exist" answers count.
    not_found_codes = frozenset({ALIAS_NOT_FOUND_CODE})

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        token = self._credential(settings.facebook_token, "a Graph API access token", self.credential_env)
        super().__init__(settings, token=token, root=graph_root(settings), **kwargs)
        self._batch_size = settings.facebook_batch_size
        self._activity = settings.poll_activity
        self._max_pages = settings.poll_activity_max_pages
        self._posts_refused: str | None = None  # why Graph refused posts during this poll, if it did

    async def _poll(self, accounts: Sequence[AccountRef], now: datetime, result: PollResult) -> None:
        self._posts_refused = None  # a token's permissions may have changed since the last poll
        for batch in chunks(accounts, self._batch_size):
            await self._poll_batch(batch, now, result)

    async def _poll_batch(self, batch: Sequence[AccountRef], now: datetime, result: PollResult) -> None:
        try:
            pages, expanded = await self._fetch(batch, now)
        except RequestFailed as exc:
            if exc.reason is FailureReason.NOT_FOUND and len(batch) > 1:
                middle = len(batch) // 2
                await self._poll_batch(batch[:middle], now, result)
                await self._poll_batch(batch[middle:], now, result)
                return
            if exc.reason is FailureReason.NOT_FOUND and batch[0].platform_id is not None:
                await self._poll_by_id(batch[0], now, result)
                return
            for ref in batch:
                result.fail(ref, exc.reason, exc.detail)
            return
        by_id = {str(page.get("id", "")).lower(): page for page in pages.values() if isinstance(page, dict)}
        by_key = {key.lower(): page for key, page in pages.items() if isinstance(page, dict)}
        for ref in batch:
            page = by_key.get(ref.lookup) or by_id.get(ref.lookup)
            if (page is None or _names_another(ref, page)) and ref.platform_id is not None:
                await self._poll_by_id(ref, now, result)
            elif page is None:
                result.fail(ref, FailureReason.NOT_FOUND, "the page is missing from Graph's answer")
            else:
                await self._record_page(result, ref, now, page, expanded)

    async def _record_page(
        self,
        result: PollResult,
        ref: AccountRef,
        now: datetime,
        page: dict[str, Any],
        expanded: bool,
        handle: str | None = None,
    ) -> bool:
        """Record the page's snapshot, with its activity when its posts were asked with it (``expanded``);
        False when it was refused."""
        followers = page.get("followers_count")
        if followers is None:
            followers = page.get("fan_count")
        if followers is None:
            result.fail(
                ref,
                FailureReason.INVALID_RESPONSE,
                "neither followers_count nor fan_count in Graph's answer "
                "(does the token give access to the page's public metadata?)",
            )
            return False
        activity = await self._read_activity(ref, page, now) if expanded else None
        before = len(result.snapshots)
        self._record(
            result,
            ref,
            now,
            followers=followers,
            handle=handle,
            **figures_of(activity),
        )
        return len(result.snapshots) > before

    async def _poll_by_id(self, ref: AccountRef, now: datetime, result: PollResult) -> None:
        """``ref``'s username no longer names it: ask by the page id recorded at verification."""
        assert ref.platform_id is not None  # only called for pages with a recorded id
        if ref.platform_id.lower() == ref.lookup:
            # Asked by its page id already: the stable id itself is unknown, the page is gone.
            self._record_gone(result, ref, now, AccountStatus.DELETED)
            result.gone.append(ref.account_id)
            return
        try:
            response, expanded = await self._get(
                f"{self._root}/{quote(ref.platform_id, safe='')}", {}, BY_ID_FIELDS, now
            )
        except RequestFailed as exc:
            if exc.reason is FailureReason.NOT_FOUND:
                self._record_gone(result, ref, now, AccountStatus.DELETED)
                result.gone.append(ref.account_id)
            else:
                result.fail(ref, exc.reason, f"{exc.detail} (asked by its page id {ref.platform_id})")
            return
        page = json_object(response)
        if page is None:
            result.fail(ref, FailureReason.INVALID_RESPONSE, "Graph's answer is not an object")
            return
        username = page.get("username")
        # A page without a username any more is reached by its id alone, which becomes its handle.
        handle = username if isinstance(username, str) and username else ref.platform_id
        if await self._record_page(result, ref, now, page, expanded, handle=handle):
            result.renamed.append((ref.account_id, handle))

    async def _read_activity(self, ref: AccountRef, page: dict[str, Any], now: datetime) -> Activity | None:
        """The page's 30-day activity from its expanded ``posts`` (and later posts pages when they go
        on), or None (logged) when its posts cannot be read."""
        page_id = str(page.get("id") or ref.platform_id or ref.lookup)
        token = _READING_POSTS.set(True)
        try:
            return await self._posts_activity(page_id, page.get("posts", _NO_POSTS), now)
        except RequestFailed as exc:
            if exc.reason is FailureReason.UNAUTHORIZED:
                self._refuse_posts(exc.detail)
                return None
            detail = exc.detail
        except ActivityError as exc:
            detail = str(exc)
        except Interrupted as exc:
            # The next page request meets the same stop or pause; this page's audience is kept.
            detail = exc.message
        finally:
            _READING_POSTS.reset(token)
        log.warning("facebook: activity of %s not read, audience kept: %s", ref.account_id, detail)
        return None

    async def _posts_activity(self, page_id: str, first: object, now: datetime) -> Activity:
        """Count the posts of ``first`` (the expanded edge), asking the page's ``/posts`` from its
        ``after`` cursor while they go on inside the window, up to ``poll_activity_max_pages`` pages."""
        posts: list[Post] = []
        since = str(int(window_start(now).timestamp()))
        body, after = first, None
        for _ in range(self._max_pages):
            if after is not None:
                # The edge's next page, on our own URL from its cursor: the token stays on the Graph host.
                response = await self._request(
                    f"{self._root}/{quote(page_id, safe='')}/posts",
                    key=self._key,
                    params={
                        "since": since,
                        "fields": POST_FIELDS,
                        "limit": str(POSTS_PAGE_SIZE),
                        "after": after,
                    },
                    headers=self._auth,
                )
                body = json_object(response)
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(body, dict) or not isinstance(data, list):
                raise ActivityError("posts: no 'data' list")
            page = [_page_post(item) for item in data]
            posts.extend(page)
            after = _next_cursor(body)
            if not page or after is None or reached_window_start((p.published for p in page), now):
                return count(posts, now, replies_known=False)
        log.info(
            "facebook: page %s has over %d pages of posts in 30 days: newest counted",
            page_id,
            self._max_pages,
        )
        return count(posts, now, replies_known=False, complete=False)

    async def _fetch(self, batch: Sequence[AccountRef], now: datetime) -> tuple[dict[str, Any], bool]:
        """The Graph objects of ``batch`` keyed by the id or username asked for, and whether their
        posts were asked with them."""
        if self._batch_size == 1:
            (ref,) = batch
            response, expanded = await self._get(
                f"{self._root}/{quote(ref.lookup, safe='')}", {}, FIELDS, now
            )
            page = json_object(response)
            if page is None:
                raise RequestFailed(FailureReason.INVALID_RESPONSE, "Graph's answer is not an object")
            return {ref.lookup: page}, expanded
        ids = {"ids": ",".join(ref.lookup for ref in batch)}
        response, expanded = await self._get(f"{self._root}/", ids, FIELDS, now)
        pages = json_object(response)
        if pages is None:
            raise RequestFailed(FailureReason.INVALID_RESPONSE, "Graph's answer is not an object")
        return pages, expanded

    async def _get(
        self, url: str, params: dict[str, str], fields: str, now: datetime
    ) -> tuple[httpx.Response, bool]:
        """GET ``url`` asking ``fields``, plus the posts edge while activity is on and not refused; and
        whether the posts were asked. A refused expansion turns activity off and asks ``fields`` alone."""
        if self._activity and self._posts_refused is None:
            expanded = f"{fields},{posts_expansion(now)}"
            token = _READING_POSTS.set(True)
            try:
                response = await self._request(
                    url, key=self._key, params={**params, "fields": expanded}, headers=self._auth
                )
                return response, True
            except RequestFailed as exc:
                if exc.reason is not FailureReason.UNAUTHORIZED:
                    raise
                self._refuse_posts(exc.detail)
            finally:
                _READING_POSTS.reset(token)
        response = await self._request(
            url, key=self._key, params={**params, "fields": fields}, headers=self._auth
        )
        return response, False

    def _refuse_posts(self, detail: str) -> None:
        """Graph refused the posts: no more are asked during this poll (logged once)."""
        self._posts_refused = detail
        log.warning("facebook: page posts refused, activity off for this poll: %s", detail)

    def _permission_missing(self, error: GraphError) -> Outcome:
        if _READING_POSTS.get():
            # Posts need a feature the page figures do not: activity goes, polling goes on.
            return Fail(FailureReason.UNAUTHORIZED, f"posts: {error.detail}")
        return super()._permission_missing(error)


def posts_expansion(now: datetime) -> str:
    """The ``posts`` edge asked inside a page's ``fields``: its first page of posts since the window
    opened, with their counts."""
    since = int(window_start(now).timestamp())
    return f"posts.since({since}).limit({POSTS_PAGE_SIZE}){{{POST_FIELDS}}}"


def _names_another(ref: AccountRef, page: dict[str, Any]) -> bool:
    """Whether the username now names another page than the one verified (its page id differs)."""
    page_id = page.get("id")
    return ref.platform_id is not None and page_id is not None and str(page_id) != ref.platform_id


def _page_post(item: object) -> Post:
    """One page post: its date and reactions + comments + shares. Raises :class:`ActivityError`."""
    if not isinstance(item, dict):
        raise ActivityError("posts: an item is not a post")
    published = parse_time(item.get("created_time"), "posts: created_time")
    interactions = 0
    for edge in ("reactions", "comments"):
        value = item.get(edge)
        summary = value.get("summary") if isinstance(value, dict) else None
        if value is not None and not isinstance(summary, dict):
            raise ActivityError(f"posts: {edge} without its summary")
        interactions += parse_count(summary.get("total_count") if summary else None, f"posts: {edge}")
    shares = item.get("shares")  # absent when the post was never shared
    if shares is not None and not isinstance(shares, dict):
        raise ActivityError("posts: shares is not an object")
    interactions += parse_count(shares.get("count") if shares else None, "posts: shares.count")
    return Post(published, interactions)


def _next_cursor(body: dict[str, Any]) -> str | None:
    """The ``after`` cursor when Graph says there is a next page (``paging.next``), else None."""
    paging = body.get("paging")
    return after_cursor(body) if isinstance(paging, dict) and paging.get("next") else None
