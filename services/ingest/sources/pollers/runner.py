"""Polling a list of accounts across platforms: each platform's poller gets its accounts, and each
platform's result is yielded as soon as it is ready.

This is what ``barometre poll`` and the ingest service call; publishing the snapshots (Kafka) and
reporting the failures are the caller's. Platforms are polled concurrently, since their rate limits
are independent; one platform's failure, even a bug, never loses another platform's snapshots.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from typing import Any

from services.common.names import Platform
from services.common.settings import Settings
from services.ingest.sources.pollers.base import AccountRef, Poller, PollResult
from services.ingest.sources.pollers.bluesky import BlueskyPoller
from services.ingest.sources.pollers.errors import FailureReason
from services.ingest.sources.pollers.facebook import FacebookPoller
from services.ingest.sources.pollers.instagram import InstagramPoller
from services.ingest.sources.pollers.mastodon import MastodonPoller
from services.ingest.sources.pollers.threads import ThreadsPoller
from services.ingest.sources.pollers.x import XPoller
from services.ingest.sources.pollers.youtube import YouTubePoller

log = logging.getLogger(__name__)

POLLER_CLASSES: dict[Platform, type[Poller]] = {
    Platform.BLUESKY: BlueskyPoller,
    Platform.MASTODON: MastodonPoller,
    Platform.FACEBOOK: FacebookPoller,
    Platform.YOUTUBE: YouTubePoller,
    Platform.X: XPoller,
    Platform.INSTAGRAM: InstagramPoller,
    Platform.THREADS: ThreadsPoller,
}

# What it takes to poll a platform that has a poller but no poller was built for (no credentials),
# or why a platform has no poller at all.
_NEEDS = {
    Platform.FACEBOOK: "set BAROMETRE_FACEBOOK_TOKEN to poll it",
    Platform.YOUTUBE: "set BAROMETRE_YOUTUBE_API_KEY to poll it",
    Platform.X: "set BAROMETRE_X_BEARER_TOKEN to poll it",
    Platform.INSTAGRAM: (
        "set BAROMETRE_INSTAGRAM_BUSINESS_ACCOUNT_ID and BAROMETRE_INSTAGRAM_TOKEN "
        "(or BAROMETRE_FACEBOOK_TOKEN) to poll it"
    ),
    Platform.THREADS: "set BAROMETRE_THREADS_TOKEN (with threads_profile_discovery) to poll it",
    # No poller can exist: no credential a collectivité or an observatory can obtain reads other
    # accounts' audience on these platforms. Their figures come in by import or push.
    Platform.TIKTOK: (
        "TikTok is import-only: its Display API reads only the account that authorised the app, and "
        "its Research API (other accounts' follower counts) is reserved to approved non-profit academic "
        "researchers for non-commercial research; import or push its snapshots"
    ),
    Platform.LINKEDIN: (
        "LinkedIn is import-only: a page's follower count (Community Management API) needs a token of "
        "an administrator of that page and an app LinkedIn approved; import or push its snapshots"
    ),
}


def configured_platforms(settings: Settings) -> list[Platform]:
    """The platforms whose poller can run with ``settings`` (Bluesky and Mastodon need no credentials)."""
    platforms = [Platform.BLUESKY, Platform.MASTODON]
    if settings.facebook_token is not None and settings.facebook_token.get_secret_value():
        platforms.append(Platform.FACEBOOK)
    if settings.youtube_api_key is not None and settings.youtube_api_key.get_secret_value():
        platforms.append(Platform.YOUTUBE)
    if settings.x_bearer_token is not None and settings.x_bearer_token.get_secret_value():
        platforms.append(Platform.X)
    instagram_token = settings.instagram_token or settings.facebook_token
    if settings.instagram_business_account_id and instagram_token and instagram_token.get_secret_value():
        platforms.append(Platform.INSTAGRAM)
    if settings.threads_token is not None and settings.threads_token.get_secret_value():
        platforms.append(Platform.THREADS)
    return platforms


@asynccontextmanager
async def open_pollers(settings: Settings, **options: Any) -> AsyncIterator[dict[Platform, Poller]]:
    """Every poller that ``settings`` allows, closed on exit; ``options`` (clock, sleep...) go to each."""
    async with AsyncExitStack() as stack:
        pollers: dict[Platform, Poller] = {}
        for platform in configured_platforms(settings):
            pollers[platform] = await stack.enter_async_context(POLLER_CLASSES[platform](settings, **options))
        yield pollers


async def poll_accounts(
    accounts: Iterable[AccountRef], pollers: Mapping[Platform, Poller], now: datetime
) -> AsyncIterator[PollResult]:
    """Poll every account with its platform's poller; yield one :class:`PollResult` per platform.

    Accounts of a platform without a poller come back as ``no_poller`` failures, so that every account
    given is accounted for. Results come in the order platforms finish.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    by_platform: dict[Platform, list[AccountRef]] = {}
    for ref in accounts:
        by_platform.setdefault(ref.platform, []).append(ref)
    tasks: list[asyncio.Task[PollResult]] = []
    unpolled: list[PollResult] = []
    for platform, refs in by_platform.items():
        poller = pollers.get(platform)
        if poller is None:
            unpolled.append(_no_poller(platform, refs))
        else:
            tasks.append(asyncio.create_task(_poll_safely(poller, refs, now), name=f"poll-{platform.value}"))
    try:
        for result in unpolled:
            yield result
        for next_done in asyncio.as_completed(tasks):
            yield await next_done
    finally:
        # The caller may stop iterating early: polls it no longer waits for are stopped, not left running.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _poll_safely(poller: Poller, refs: list[AccountRef], now: datetime) -> PollResult:
    try:
        return await poller.poll(refs, now)
    except Exception:
        # Poller.poll turns every trouble into failures; this is the last line of defence, for a poller
        # that overrides poll itself, so that one platform never loses the others' results.
        log.exception("the %s poller failed", poller.name)
        result = PollResult(platform=poller.platform, source=poller.source)
        for ref in refs:
            result.fail(ref, FailureReason.INTERNAL_ERROR, f"the {poller.name} poller failed (see the log)")
        return result


def _no_poller(platform: Platform, refs: list[AccountRef]) -> PollResult:
    detail = f"no poller for {platform.value}"
    if platform in _NEEDS:
        detail += f": {_NEEDS[platform]}"
    result = PollResult(platform=platform, source=None)
    for ref in refs:
        result.fail(ref, FailureReason.NO_POLLER, detail)
    return result
