"""Bluesky poller: public profiles from the AppView, 25 accounts per request, no authentication.

``GET {bluesky_api_url}/xrpc/app.bsky.actor.getProfiles?actors=a&actors=b...`` answers
``{"profiles": [ProfileViewDetailed...]}`` with ``followersCount``, ``followsCount`` and
``postsCount``. An actor is a DID (``did:plc:...``, the stable id) or a handle; the answer is matched
back to the accounts by DID, or by handle for accounts registered by handle.

``getProfiles`` silently leaves out the actors it cannot show, so each account missing from its
answer is asked about alone with ``app.bsky.actor.getProfile``, whose 400 error says why:

- ``AccountTakedown`` ("Account has been suspended" by moderation) → a snapshot with status
  ``suspended``;
- ``AccountDeactivated`` (the owner deactivated it: invisible to everyone until reactivated) → a
  snapshot with status ``deleted``, which a later ``active`` snapshot undoes if it comes back;
- ``InvalidRequest: Profile not found`` → a ``not_found`` failure: a deleted account and a typo
  cannot be told apart, and a typo must not raise an "account gone" alert.

A batch refused as a whole (400: one malformed handle makes the AppView refuse all 25) is retried
account by account, so one bad line does not hide 24 good accounts.

Renames and gone accounts: an account whose handle no longer resolves ("Profile not found"), or
resolves to another DID than the one recorded at verification (``platform_id``: the handle was given
up and taken by someone else), is asked by its DID. Found, it was renamed: a normal snapshot with
its new handle, listed in ``PollResult.renamed``; not found by DID either, it is gone: a ``deleted``
snapshot, listed in ``PollResult.gone``. Without a recorded DID a missing profile stays ``not_found``.

Activity (``poll_activity``): ``app.bsky.feed.getAuthorFeed?actor={did}&filter=posts_with_replies&
limit=100``, paged by ``cursor`` until an item is older than 30 days (at most
``poll_activity_max_pages`` pages). The feed holds the author's posts, its replies and its reposts:
reposts (a ``reason`` of type ``reasonRepost``) are not the author's publications and are skipped;
a post whose ``record.reply.parent`` is another account's post (its ``at://`` URI names another DID,
deleted parents included) is a reply; interactions are ``likeCount + repostCount + replyCount +
quoteCount`` of the posts. A failed feed request keeps the account's audience snapshot, without the
activity figures, and is logged.

Rate limits: the AppView sends ``RateLimit-Limit/Remaining/Reset`` (reset as a Unix timestamp) and
``Retry-After`` on 429; both are handled by the base poller.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

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
)
from services.ingest.sources.pollers.base import AccountRef, Poller, PollResult, api_url, chunks
from services.ingest.sources.pollers.errors import FailureReason, RequestFailed
from services.ingest.sources.pollers.http import describe_response, host_key, json_object

log = logging.getLogger(__name__)

# The lexicon's limit for app.bsky.actor.getProfiles.
MAX_ACTORS_PER_REQUEST = 25
# The lexicon's maximum page of app.bsky.feed.getAuthorFeed.
FEED_PAGE_SIZE = 100
_REPOST = "app.bsky.feed.defs#reasonRepost"

# The handle Bluesky shows when an account's handle no longer resolves; not worth recording.
_INVALID_HANDLE = "handle.invalid"

# getProfile error names (XRPC "error" field) for accounts that exist but are not shown.
_GONE_ERRORS = {
    "AccountTakedown": AccountStatus.SUSPENDED,
    "AccountDeactivated": AccountStatus.DELETED,
}


class BlueskyPoller(Poller):
    """Followers, follows and posts of Bluesky accounts, from the public AppView."""

    name = "bluesky"
    platform = Platform.BLUESKY
    label = "Bluesky"
    batch_size: ClassVar[int] = MAX_ACTORS_PER_REQUEST
    # The AppView: 3,000 requests per 5 minutes per IP (docs.bsky.app, "Rate Limits").
    rate_budget: ClassVar[tuple[int, float]] = (3000, 300.0)

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self._base = api_url(settings.bluesky_api_url)
        self._key = host_key(self._base)
        self._activity = settings.poll_activity
        self._max_pages = settings.poll_activity_max_pages

    async def _poll(self, accounts: Sequence[AccountRef], now: datetime, result: PollResult) -> None:
        alone: list[AccountRef] = []
        for batch in chunks(accounts, MAX_ACTORS_PER_REQUEST):
            try:
                response = await self._request(
                    f"{self._base}/xrpc/app.bsky.actor.getProfiles",
                    key=self._key,
                    params={"actors": [ref.lookup for ref in batch]},
                    accept=(400,),
                )
            except RequestFailed as exc:
                for ref in batch:
                    result.fail(ref, exc.reason, exc.detail)
                continue
            if response.status_code == 400:
                alone.extend(batch)
                continue
            profiles = _profiles(response)
            if profiles is None:
                for ref in batch:
                    result.fail(ref, FailureReason.INVALID_RESPONSE, "getProfiles: no 'profiles' list")
                continue
            by_did = {str(p.get("did", "")).lower(): p for p in profiles}
            by_handle = {str(p.get("handle", "")).lower(): p for p in profiles}
            for ref in batch:
                profile = (
                    by_did.get(ref.lookup) if ref.lookup.startswith("did:") else by_handle.get(ref.lookup)
                )
                if profile is None:
                    alone.append(ref)
                elif _names_another(ref, profile):
                    await self._poll_by_did(ref, now, result)
                else:
                    await self._record_profile(result, ref, now, profile)
        for ref in alone:
            await self._poll_one(ref, now, result)

    async def _get_profile(self, actor: str) -> httpx.Response:
        return await self._request(
            f"{self._base}/xrpc/app.bsky.actor.getProfile",
            key=self._key,
            params={"actor": actor},
            accept=(400,),
        )

    async def _poll_one(self, ref: AccountRef, now: datetime, result: PollResult) -> None:
        try:
            response = await self._get_profile(ref.lookup)
        except RequestFailed as exc:
            result.fail(ref, exc.reason, exc.detail)
            return
        body = json_object(response)
        if response.status_code == 200:
            if body is None:
                result.fail(ref, FailureReason.INVALID_RESPONSE, "getProfile: the answer is not a profile")
            elif _names_another(ref, body):
                await self._poll_by_did(ref, now, result)
            else:
                await self._record_profile(result, ref, now, body)
            return
        error = str((body or {}).get("error", ""))
        message = str((body or {}).get("message", ""))
        if error in _GONE_ERRORS:
            self._record_gone(result, ref, now, _GONE_ERRORS[error])
        elif "not found" in message.lower():
            if ref.platform_id is None:
                result.fail(ref, FailureReason.NOT_FOUND, describe_response(response))
            elif ref.platform_id.lower() == ref.lookup:
                # Asked by its DID already: the stable id itself is unknown, the account is gone.
                self._record_gone(result, ref, now, AccountStatus.DELETED)
                result.gone.append(ref.account_id)
            else:
                await self._poll_by_did(ref, now, result)
        else:
            result.fail(ref, FailureReason.HTTP_ERROR, describe_response(response))

    async def _poll_by_did(self, ref: AccountRef, now: datetime, result: PollResult) -> None:
        """``ref``'s handle no longer names it: ask by the DID recorded at verification."""
        assert ref.platform_id is not None  # only called for accounts with a recorded DID
        try:
            response = await self._get_profile(ref.platform_id)
        except RequestFailed as exc:
            result.fail(ref, exc.reason, f"{exc.detail} (asked by its DID {ref.platform_id})")
            return
        body = json_object(response)
        if response.status_code == 200 and body is not None:
            handle = await self._record_profile(result, ref, now, body)
            if handle is not None and handle.lower() != (ref.handle or ref.lookup).lower():
                result.renamed.append((ref.account_id, handle))
            return
        error = str((body or {}).get("error", ""))
        message = str((body or {}).get("message", ""))
        if error in _GONE_ERRORS:
            self._record_gone(result, ref, now, _GONE_ERRORS[error])
        elif response.status_code == 400 and "not found" in message.lower():
            self._record_gone(result, ref, now, AccountStatus.DELETED)
            result.gone.append(ref.account_id)
        else:
            result.fail(ref, FailureReason.HTTP_ERROR, f"{describe_response(response)} (asked by its DID)")

    async def _record_profile(
        self, result: PollResult, ref: AccountRef, now: datetime, profile: dict[str, Any]
    ) -> str | None:
        """Record the profile's snapshot, with its activity when enabled; return the handle recorded."""
        raw_handle = profile.get("handle")
        handle = raw_handle if isinstance(raw_handle, str) and raw_handle != _INVALID_HANDLE else None
        did = profile.get("did")
        actor = did if isinstance(did, str) and did.startswith("did:") else ref.lookup
        activity = None
        if self._activity:
            activity = await self._activity_or_none(ref, self._feed_activity(actor, now))
        self._record(
            result,
            ref,
            now,
            followers=profile.get("followersCount"),
            following=profile.get("followsCount"),
            posts_total=profile.get("postsCount"),
            handle=handle,
            **figures_of(activity),
        )
        return handle

    async def _feed_activity(self, actor: str, now: datetime) -> Activity:
        posts: list[Post] = []
        cursor: str | None = None
        for _ in range(self._max_pages):
            params = {"actor": actor, "filter": "posts_with_replies", "limit": str(FEED_PAGE_SIZE)}
            if cursor:
                params["cursor"] = cursor
            response = await self._request(
                f"{self._base}/xrpc/app.bsky.feed.getAuthorFeed", key=self._key, params=params
            )
            body = json_object(response)
            feed = body.get("feed") if body is not None else None
            if not isinstance(feed, list):
                raise ActivityError("getAuthorFeed: no 'feed' list")
            page = [_feed_item(item) for item in feed]
            posts.extend(post for _, post in page if post is not None)
            next_cursor = body.get("cursor") if body is not None else None
            if not page or reached_window_start((moment for moment, _ in page), now):
                return count(posts, now, replies_known=True)
            if not isinstance(next_cursor, str) or not next_cursor:
                return count(posts, now, replies_known=True)
            cursor = next_cursor
        log.info("bluesky: %s has over %d pages of posts in 30 days: newest counted", actor, self._max_pages)
        return count(posts, now, replies_known=True, complete=False)


def _names_another(ref: AccountRef, profile: dict[str, Any]) -> bool:
    """Whether the handle now names another account than the one verified (its DID differs)."""
    did = profile.get("did")
    return ref.platform_id is not None and isinstance(did, str) and did.lower() != ref.platform_id.lower()


def _feed_item(item: object) -> tuple[datetime, Post | None]:
    """A feed item's place in the feed's order, and the author's post it is (None for a repost).

    Raises :class:`ActivityError` for an item without a post, an author or a date.
    """
    if not isinstance(item, dict) or not isinstance(item.get("post"), dict):
        raise ActivityError("getAuthorFeed: an item without a post")
    post: dict[str, Any] = item["post"]
    reason = item.get("reason")
    if isinstance(reason, dict) and reason.get("$type") == _REPOST:
        # A repost sits in the feed at the time of the repost, not of the post.
        return parse_time(reason.get("indexedAt"), "getAuthorFeed: reason.indexedAt"), None
    record = post.get("record")
    author = post.get("author")
    if not isinstance(record, dict) or not isinstance(author, dict) or not isinstance(author.get("did"), str):
        raise ActivityError("getAuthorFeed: a post without its record or author")
    published = parse_time(record.get("createdAt"), "getAuthorFeed: record.createdAt")
    if reason is not None:
        # Another reason (a pinned post, with includePins): the author's post, out of the feed's
        # order; not asked for, and never counted twice.
        return published, None
    reply = record.get("reply")
    reply_to_other = False
    if reply is not None:
        parent = reply.get("parent") if isinstance(reply, dict) else None
        uri = parent.get("uri") if isinstance(parent, dict) else None
        if not isinstance(uri, str) or not uri.startswith("at://"):
            raise ActivityError("getAuthorFeed: a reply without its parent's at:// URI")
        # at://<did of the parent's author>/app.bsky.feed.post/<rkey>: known even when the parent
        # was deleted (the feed then shows it as a notFoundPost).
        reply_to_other = uri.removeprefix("at://").partition("/")[0] != author["did"]
    interactions = sum(
        parse_count(post.get(name), f"getAuthorFeed: {name}")
        for name in ("likeCount", "repostCount", "replyCount", "quoteCount")
    )
    return published, Post(published, interactions, reply_to_other)


def _profiles(response: httpx.Response) -> list[dict[str, Any]] | None:
    body = json_object(response)
    profiles = body.get("profiles") if body is not None else None
    if not isinstance(profiles, list):
        return None
    return [p for p in profiles if isinstance(p, dict)]
