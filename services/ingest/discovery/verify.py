"""Confirming candidates on the platforms that allow it without credentials, and recording their stable id.

- **Bluesky** (the public AppView, ``bluesky_api_url``): ``com.atproto.identity.resolveHandle?handle=``
  gives the account's DID (skipped when the link already is a DID), then ``app.bsky.actor.getProfile``
  confirms the DID is a live account and gives its current handle. The DID is the stable id.
  ``400 InvalidRequest "Unable to resolve handle"`` or ``"Profile not found"`` → not found;
  ``AccountTakedown`` / ``AccountDeactivated`` → not found either (suspended or deactivated: not an
  account to register).
- **Mastodon** (the account's own server, ``mastodon_url_template``): WebFinger
  ``/.well-known/webfinger?resource=acct:user@server`` (RFC 7033) confirms the address and gives, in
  its ``self`` link, the server that really hosts the account (a domain may delegate to another
  host); ``/api/v1/accounts/lookup?acct=user`` there gives the account's ``id``, the stable id.
  404 or 410 → not found.

Anything else (timeouts after retries, 5xx, a malformed answer) leaves the candidate unverified:
``unverifiable``, to be tried again on the next run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

from services.common.links import Link
from services.common.names import Platform
from services.common.settings import Settings
from services.ingest.discovery.http import Fetcher
from services.ingest.sources.pollers.errors import RequestFailed

VERIFIABLE: frozenset[Platform] = frozenset({Platform.BLUESKY, Platform.MASTODON})

_ACTIVITY_TYPES = {
    "application/activity+json",
    'application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
}


class Verdict(StrEnum):
    VERIFIED = "verified"
    NOT_FOUND = "not_found"
    UNVERIFIABLE = "unverifiable"


@dataclass(frozen=True, slots=True)
class Verification:
    """What the platform said about one account."""

    verdict: Verdict
    detail: str
    platform_id: str | None = None
    handle: str | None = None  # the account's current handle, as the platform spells it


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def verify_bluesky(fetcher: Fetcher, base: str, link: Link) -> Verification:
    base = base.rstrip("/")
    try:
        did = link.platform_id if link.platform_id and link.platform_id.startswith("did:") else None
        if did is None:
            if not link.handle:
                return Verification(Verdict.UNVERIFIABLE, "no handle nor DID to resolve")
            response = await fetcher.get(
                f"{base}/xrpc/com.atproto.identity.resolveHandle",
                params={"handle": link.handle},
                accept=(400,),
            )
            body = _json(response)
            if response.status_code == 400:
                message = str((body or {}).get("message", ""))
                if "resolve handle" in message.lower() or "not found" in message.lower():
                    return Verification(Verdict.NOT_FOUND, "not found on bluesky")
                return Verification(Verdict.UNVERIFIABLE, f"resolveHandle: {message or 'HTTP 400'}")
            did = (body or {}).get("did")
            if not isinstance(did, str) or not did.startswith("did:"):
                return Verification(Verdict.UNVERIFIABLE, "resolveHandle: the answer has no DID")
        response = await fetcher.get(
            f"{base}/xrpc/app.bsky.actor.getProfile", params={"actor": did}, accept=(400,)
        )
    except RequestFailed as exc:
        return Verification(Verdict.UNVERIFIABLE, exc.detail)
    profile = _json(response)
    if response.status_code == 400:
        error = str((profile or {}).get("error", ""))
        message = str((profile or {}).get("message", ""))
        if error in ("AccountTakedown", "AccountDeactivated"):
            return Verification(
                Verdict.NOT_FOUND,
                f"{'suspended' if error == 'AccountTakedown' else 'deactivated'} on bluesky",
            )
        if "not found" in message.lower():
            return Verification(Verdict.NOT_FOUND, "not found on bluesky")
        return Verification(Verdict.UNVERIFIABLE, f"getProfile: {error or message or 'HTTP 400'}")
    if profile is None or profile.get("did") != did:
        return Verification(Verdict.UNVERIFIABLE, "getProfile: the answer is not this account's profile")
    handle = profile.get("handle")
    current = handle if isinstance(handle, str) and handle != "handle.invalid" else None
    return Verification(Verdict.VERIFIED, "resolved on bluesky", platform_id=did, handle=current)


def _user_server(link: Link) -> tuple[str, str] | None:
    for text in (link.handle or "", link.account_id.partition(":")[2]):
        user, _, server = text.strip().removeprefix("@").partition("@")
        if user and server and "/" not in server:
            return user, server.lower()
    return None


async def verify_mastodon(fetcher: Fetcher, template: str, link: Link) -> Verification:
    parts = _user_server(link)
    if parts is None:
        return Verification(Verdict.UNVERIFIABLE, "a Mastodon account is user@server")
    user, server = parts
    template = template.rstrip("/")
    per_server = "{instance}" in template
    try:
        response = await fetcher.get(
            f"{template.replace('{instance}', server)}/.well-known/webfinger",
            params={"resource": f"acct:{user}@{server}"},
            headers={"Accept": "application/jrd+json, application/json"},
            accept=(404, 410),
        )
        if response.status_code in (404, 410):
            return Verification(Verdict.NOT_FOUND, "not found on mastodon")
        jrd = _json(response)
        if jrd is None or not isinstance(jrd.get("subject"), str):
            return Verification(Verdict.UNVERIFIABLE, "webfinger: the answer is not a JRD")
        host = server
        for item in jrd.get("links") or []:
            if isinstance(item, dict) and item.get("rel") == "self" and item.get("type") in _ACTIVITY_TYPES:
                href = item.get("href")
                if isinstance(href, str) and httpx.URL(href).host:
                    host = httpx.URL(href).host.lower()
                break
        base = template.replace("{instance}", host)
        response = await fetcher.get(
            f"{base}/api/v1/accounts/lookup",
            params={"acct": user if per_server and host == server else f"{user}@{server}"},
            accept=(404, 410),
        )
    except RequestFailed as exc:
        return Verification(Verdict.UNVERIFIABLE, exc.detail)
    if response.status_code in (404, 410):
        return Verification(Verdict.NOT_FOUND, "not found on mastodon")
    account = _json(response)
    account_id = (account or {}).get("id")
    if not isinstance(account_id, str) or not account_id:
        return Verification(Verdict.UNVERIFIABLE, "accounts/lookup: the answer is not an account")
    username = (account or {}).get("username")
    handle = f"{username}@{server}" if isinstance(username, str) and username else None
    return Verification(Verdict.VERIFIED, f"found on {host}", platform_id=account_id, handle=handle)


async def verify_links(
    settings: Settings, fetcher: Fetcher, links: Iterable[Link]
) -> dict[str, Verification]:
    """account_id → verification, for the links of verifiable platforms (others are left out)."""
    todo = {link.account_id: link for link in links if link.platform in VERIFIABLE}
    gate = asyncio.Semaphore(4)  # servers differ; each host still sees one request at a time

    async def one(link: Link) -> tuple[str, Verification]:
        async with gate:
            if link.platform is Platform.BLUESKY:
                return link.account_id, await verify_bluesky(fetcher, settings.bluesky_api_url, link)
            return link.account_id, await verify_mastodon(fetcher, settings.mastodon_url_template, link)

    return dict(await asyncio.gather(*(one(link) for link in todo.values())))
