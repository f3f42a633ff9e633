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
from typing import Any

import httpx

from services.common.names import AccountStatus, Platform
from services.common.settings import Settings
from services.ingest.sources.pollers.base import (
    AccountRef,
    Poller,
    PollResult,
    describe_response,
    json_object,
)
from services.ingest.sources.pollers.errors import FailureReason, RateLimited, RequestFailed

log = logging.getLogger(__name__)


# What a user name and a server name may be. The server becomes the host of a URL, so anything that
# is not a plain DNS name (a path, a port, credentials) is refused rather than requested.
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_INSTANCE = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9]")


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

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self._template = settings.mastodon_url_template.rstrip("/")
        self._concurrency = settings.poller_concurrency

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
        key = instance if per_instance else httpx.URL(base).host
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
                result.fail(ref, FailureReason.NOT_FOUND, describe_response(response))
                continue
            if response.status_code == 410:
                self._record_gone(result, ref, now, AccountStatus.DELETED)
                continue
            account = json_object(response)
            if account is None:
                result.fail(ref, FailureReason.INVALID_RESPONSE, "lookup: the answer is not an account")
                continue
            username = account.get("username")
            self._record(
                result,
                ref,
                now,
                followers=account.get("followers_count"),
                following=account.get("following_count"),
                posts_total=account.get("statuses_count"),
                status=AccountStatus.SUSPENDED if account.get("suspended") is True else AccountStatus.ACTIVE,
                handle=f"{username}@{instance}" if isinstance(username, str) and username else None,
            )
