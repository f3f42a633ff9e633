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

Rate limits: the AppView sends ``RateLimit-Limit/Remaining/Reset`` (reset as a Unix timestamp) and
``Retry-After`` on 429; both are handled by the base poller.
"""

from __future__ import annotations

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
    chunks,
    describe_response,
    json_object,
)
from services.ingest.sources.pollers.errors import FailureReason, RequestFailed

# The lexicon's limit for app.bsky.actor.getProfiles.
MAX_ACTORS_PER_REQUEST = 25

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

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self._base = settings.bluesky_api_url.rstrip("/")
        self._key = httpx.URL(self._base).host

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
                else:
                    self._record_profile(result, ref, now, profile)
        for ref in alone:
            await self._poll_one(ref, now, result)

    async def _poll_one(self, ref: AccountRef, now: datetime, result: PollResult) -> None:
        try:
            response = await self._request(
                f"{self._base}/xrpc/app.bsky.actor.getProfile",
                key=self._key,
                params={"actor": ref.lookup},
                accept=(400,),
            )
        except RequestFailed as exc:
            result.fail(ref, exc.reason, exc.detail)
            return
        body = json_object(response)
        if response.status_code == 200:
            if body is None:
                result.fail(ref, FailureReason.INVALID_RESPONSE, "getProfile: the answer is not a profile")
            else:
                self._record_profile(result, ref, now, body)
            return
        error = str((body or {}).get("error", ""))
        message = str((body or {}).get("message", ""))
        if error in _GONE_ERRORS:
            self._record_gone(result, ref, now, _GONE_ERRORS[error])
        elif "not found" in message.lower():
            result.fail(ref, FailureReason.NOT_FOUND, describe_response(response))
        else:
            result.fail(ref, FailureReason.HTTP_ERROR, describe_response(response))

    def _record_profile(
        self, result: PollResult, ref: AccountRef, now: datetime, profile: dict[str, Any]
    ) -> None:
        handle = profile.get("handle")
        self._record(
            result,
            ref,
            now,
            followers=profile.get("followersCount"),
            following=profile.get("followsCount"),
            posts_total=profile.get("postsCount"),
            handle=handle if isinstance(handle, str) and handle != _INVALID_HANDLE else None,
        )


def _profiles(response: httpx.Response) -> list[dict[str, Any]] | None:
    body = json_object(response)
    profiles = body.get("profiles") if body is not None else None
    if not isinstance(profiles, list):
        return None
    return [p for p in profiles if isinstance(p, dict)]
