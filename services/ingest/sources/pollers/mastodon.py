"""Mastodon poller: each account looked up on its own server, one request per account, no authentication.

``GET https://{instance}/api/v1/accounts/lookup?acct={user}`` answers an Account entity with
``followers_count``, ``following_count`` and ``statuses_count``. Accounts are ``mastodon:user@instance``;
the account's own server is asked because it has the figures first-hand (another server only has a
cached copy of a remote account's counts).

Outcomes:

- ``"suspended": true`` in the entity (suspended by its server's moderators; its counts are then 0)
  → a snapshot with status ``suspended``;
- 410 Gone → a snapshot with status ``deleted``: the server says the account existed and is gone;
- 404 → a ``not_found`` failure: a deleted account and a typo cannot be told apart, and a typo must
  not raise an "account gone" alert;
- an account that moved (``moved`` set) is still reported ``active`` with its figures: it exists,
  and following the move is the registry's decision, not the poller's.

Renames and gone accounts: ``platform_id`` is the account's id on its own server, recorded at
verification. A 404 for the user name, or a lookup answering another id (the name was given up and
taken by someone else), is asked again by id, ``GET /api/v1/accounts/{id}``: found, the account was
renamed (a normal snapshot with its new ``user@server``, listed in ``PollResult.renamed``); 404 or 410,
it is gone (a ``deleted`` snapshot, listed in ``PollResult.gone``). Ids are per server, so through a
fixed server (a ``mastodon_url_template`` without ``{instance}``) a 404 stays ``not_found``.

Activity (``poll_activity``): ``GET /api/v1/accounts/{id}/statuses?limit=40&exclude_reblogs=true``,
paged with ``max_id`` from the ``Link: <...>; rel="next"`` header until a status is older than 30
days (at most ``poll_activity_max_pages`` pages). A status whose ``in_reply_to_account_id`` is another
account is a reply; the others (a continued thread included) are posts, and their
``favourites_count + reblogs_count + replies_count`` are the interactions. Only the account's own
server is asked: another server knows only the statuses that reached it. A suspended account has no
activity; a failed statuses request (some servers refuse unauthenticated timelines with 401) keeps
the audience snapshot without the activity figures, and is logged.

Rate limits are per server (by default 300 requests per 5 minutes per IP for public requests), so
each server is its own rate-limit key: ``X-RateLimit-Remaining`` at 0 pauses requests to that server
until ``X-RateLimit-Reset`` (an ISO 8601 timestamp), and a server that stays limited too long fails
only its own accounts. Servers are polled concurrently (``poller_concurrency``), each server's
accounts one after another, which is what its rate limit wants.
"""

from __future__ import annotations

import asyncio
import logging
import re
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
from services.ingest.sources.pollers.base import AccountRef, Poller, PollResult
from services.ingest.sources.pollers.errors import FailureReason, RateLimited, RequestFailed
from services.ingest.sources.pollers.http import describe_response, host_key, json_object

log = logging.getLogger(__name__)


# What a user name and a server name may be. The server becomes the host of a URL, so anything that
# is not a plain DNS name (a path, a port, credentials) is refused rather than requested.
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_INSTANCE = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9]")
# Mastodon ids are decimal strings (Snowflake-like); others (Pleroma, Akkoma) use flake ids of letters
# and digits. An id goes into a URL path, so nothing else passes.
_ID = re.compile(r"[A-Za-z0-9]{1,64}")
# The API's maximum page of an account's statuses.
STATUSES_PAGE_SIZE = 40


def split_acct(ref: AccountRef) -> tuple[str, str] | None:
    """``(user, instance)`` of a ``user@instance`` account, from its id or else its handle."""
    for candidate in (ref.lookup, ref.handle or ""):
        user, _, instance = candidate.strip().removeprefix("@").partition("@")
        instance = instance.lower()
        if _USER.fullmatch(user) and _INSTANCE.fullmatch(instance):
            return user, instance
    return None


class MastodonPoller(Poller):
    """Followers, following and statuses of Mastodon accounts, each from its own server."""

    name = "mastodon"
    platform = Platform.MASTODON
    label = "Mastodon"
    batch_size: ClassVar[int] = 1
    # 300 requests per 5 minutes per account or IP, per server (docs.joinmastodon.org).
    rate_budget: ClassVar[tuple[int, float]] = (300, 300.0)

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self._template = settings.mastodon_url_template.rstrip("/")
        self._concurrency = settings.poller_concurrency
        self._activity = settings.poll_activity
        self._max_pages = settings.poll_activity_max_pages

    async def _poll(self, accounts: Sequence[AccountRef], now: datetime, result: PollResult) -> None:
        by_instance: dict[str, list[tuple[AccountRef, str]]] = {}
        for ref in accounts:
            parts = split_acct(ref)
            if parts is None:
                result.fail(
                    ref,
                    FailureReason.UNSUPPORTED,
                    "a Mastodon account is user@server, with a plain server name such as mastodon.social",
                )
                continue
            user, instance = parts
            by_instance.setdefault(instance, []).append((ref, user))
        gate = asyncio.Semaphore(self._concurrency)

        async def poll_instance(instance: str, members: list[tuple[AccountRef, str]]) -> None:
            async with gate:
                try:
                    await self._poll_instance(instance, members, now, result)
                except Exception:
                    # One server's surprise must not lose the other servers' results; the base
                    # poller reports its unanswered accounts as internal errors.
                    log.exception("mastodon: polling %s failed", instance)

        await asyncio.gather(*(poll_instance(i, m) for i, m in by_instance.items()))

    async def _poll_instance(
        self, instance: str, members: list[tuple[AccountRef, str]], now: datetime, result: PollResult
    ) -> None:
        per_instance = "{instance}" in self._template
        base = self._template.replace("{instance}", instance)
        # Rate limits belong to the server asked, which is the account's own unless the template is fixed.
        key = instance if per_instance else host_key(base)
        for index, (ref, user) in enumerate(members):
            try:
                response = await self._request(
                    f"{base}/api/v1/accounts/lookup",
                    key=key,
                    # On the account's own server the user name is enough; any other server needs
                    # the full address to find it among the remote accounts it knows.
                    params={"acct": user if per_instance else f"{user}@{instance}"},
                    accept=(404, 410),
                )
            except RateLimited as exc:
                # This server wants more patience than a poll has: its remaining accounts wait for
                # the next poll; the other servers go on.
                for later, _ in members[index:]:
                    result.fail(later, exc.reason, f"{instance}: {exc.message}")
                return
            except RequestFailed as exc:
                result.fail(ref, exc.reason, exc.detail)
                continue
            if response.status_code == 404:
                if ref.platform_id is not None and per_instance:
                    await self._poll_by_id(base, key, instance, ref, now, result)
                else:
                    result.fail(ref, FailureReason.NOT_FOUND, describe_response(response))
                continue
            if response.status_code == 410:
                self._record_gone(result, ref, now, AccountStatus.DELETED)
                continue
            account = json_object(response)
            if account is None:
                result.fail(ref, FailureReason.INVALID_RESPONSE, "lookup: the answer is not an account")
                continue
            if per_instance and ref.platform_id is not None and str(account.get("id")) != ref.platform_id:
                # The name now belongs to another account: the one verified is asked by its id.
                await self._poll_by_id(base, key, instance, ref, now, result)
                continue
            await self._record_account(
                base, key if per_instance else None, instance, ref, account, now, result
            )

    async def _poll_by_id(
        self, base: str, key: str, instance: str, ref: AccountRef, now: datetime, result: PollResult
    ) -> None:
        """``ref``'s user name no longer names it on its server: ask by the id recorded at verification."""
        assert ref.platform_id is not None  # only called for accounts with a recorded id
        if not _ID.fullmatch(ref.platform_id):
            result.fail(ref, FailureReason.UNSUPPORTED, f"{ref.platform_id!r} is not a Mastodon account id")
            return
        try:
            response = await self._request(
                f"{base}/api/v1/accounts/{ref.platform_id}", key=key, accept=(404, 410)
            )
        except RateLimited as exc:
            # The next lookup meets the same pause and fails the server's remaining accounts.
            result.fail(ref, exc.reason, f"{instance}: {exc.message}")
            return
        except RequestFailed as exc:
            result.fail(ref, exc.reason, f"{exc.detail} (asked by its id {ref.platform_id})")
            return
        if response.status_code in (404, 410):
            self._record_gone(result, ref, now, AccountStatus.DELETED)
            result.gone.append(ref.account_id)
            return
        account = json_object(response)
        if account is None:
            result.fail(ref, FailureReason.INVALID_RESPONSE, "accounts/:id: the answer is not an account")
            return
        handle = await self._record_account(base, key, instance, ref, account, now, result)
        old = split_acct(ref)
        if handle is not None and (old is None or handle.lower() != f"{old[0]}@{old[1]}".lower()):
            result.renamed.append((ref.account_id, handle))

    async def _record_account(
        self,
        base: str,
        key: str | None,
        instance: str,
        ref: AccountRef,
        account: dict[str, Any],
        now: datetime,
        result: PollResult,
    ) -> str | None:
        """Record the account's snapshot, with its activity when enabled and ``key`` (the account's own
        server) is given; return the handle recorded."""
        username = account.get("username")
        handle = f"{username}@{instance}" if isinstance(username, str) and username else None
        suspended = account.get("suspended") is True
        activity = None
        account_id = str(account.get("id", ""))
        if self._activity and key is not None and not suspended:
            activity = await self._activity_or_none(ref, self._statuses_activity(base, key, account_id, now))
        self._record(
            result,
            ref,
            now,
            followers=account.get("followers_count"),
            following=account.get("following_count"),
            posts_total=account.get("statuses_count"),
            status=AccountStatus.SUSPENDED if suspended else AccountStatus.ACTIVE,
            handle=handle,
            **figures_of(activity),
        )
        return handle

    async def _statuses_activity(self, base: str, key: str, account_id: str, now: datetime) -> Activity:
        if not _ID.fullmatch(account_id):
            raise ActivityError(f"lookup: {account_id!r} is not an account id")
        posts: list[Post] = []
        max_id: str | None = None
        for _ in range(self._max_pages):
            params = {"limit": str(STATUSES_PAGE_SIZE), "exclude_reblogs": "true"}
            if max_id is not None:
                params["max_id"] = max_id
            response = await self._request(
                f"{base}/api/v1/accounts/{account_id}/statuses", key=key, params=params
            )
            try:
                statuses = response.json()
            except ValueError:
                raise ActivityError("statuses: the answer is not JSON") from None
            if not isinstance(statuses, list):
                raise ActivityError("statuses: the answer is not a list of statuses")
            page = [_status(status, account_id) for status in statuses]
            posts.extend(post for post in page if post is not None)
            moments = [post.published for post in page if post is not None]
            max_id = _next_max_id(response)
            if not statuses or reached_window_start(moments, now) or max_id is None:
                return count(posts, now, replies_known=True)
        log.info(
            "mastodon: %s has over %d pages of statuses in 30 days: newest counted", base, self._max_pages
        )
        return count(posts, now, replies_known=True, complete=False)


def _status(status: object, account_id: str) -> Post | None:
    """A status as a post or a reply; None for a boost that came through despite ``exclude_reblogs``."""
    if not isinstance(status, dict):
        raise ActivityError("statuses: an item is not a status")
    if status.get("reblog") is not None:
        return None
    published = parse_time(status.get("created_at"), "statuses: created_at")
    to = status.get("in_reply_to_account_id")
    interactions = sum(
        parse_count(status.get(name), f"statuses: {name}")
        for name in ("favourites_count", "reblogs_count", "replies_count")
    )
    return Post(published, interactions, reply_to_other=to is not None and str(to) != account_id)


def _next_max_id(response: httpx.Response) -> str | None:
    """``max_id`` of the ``rel="next"`` link: the page after this one, None on the last page.

    The link's URL is not followed as is: only its ``max_id`` is taken, so requests stay on the
    account's own server whatever the header says.
    """
    url = response.links.get("next", {}).get("url")
    if not url:
        return None
    max_id = httpx.URL(url).params.get("max_id")
    return max_id if max_id and _ID.fullmatch(max_id) else None
