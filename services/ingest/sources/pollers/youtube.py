"""YouTube poller: channel statistics from the YouTube Data API v3, up to 50 channels per request.

``GET {youtube_api_url}/youtube/v3/channels?part=statistics&id=UC...,UC...`` answers
``{"items": [{"id": "UC...", "statistics": {"subscriberCount": "1234", "hiddenSubscriberCount": false,
"videoCount": "56", "viewCount": "..."}}]}``: counts are strings, followers are ``subscriberCount``
(which YouTube rounds to three significant figures), posts are ``videoCount``. Accounts registered by
handle (``youtube:@ville``, no channel id known) are asked one by one with ``forHandle``, the only
handle lookup the API has. The key (``BAROMETRE_YOUTUBE_API_KEY``) is sent in the ``X-Goog-Api-Key``
header rather than the URL, so it never appears in logged URLs. Each request costs 1 quota unit.

Outcomes:

- a channel missing from ``items`` → a ``not_found`` failure (the API says nothing more: a deleted
  or terminated channel and a typo look alike);
- ``hiddenSubscriberCount: true`` → a ``hidden`` failure: the channel exists but shows no audience,
  and a made-up 0 would read as a collapse;
- 403 ``quotaExceeded``: the project's daily quota is spent; requests stop until it resets at
  midnight Pacific time (or for ``youtube_quota_pause_seconds``), so the rest of the poll fails at
  once with ``quota_exceeded`` and later polls too until then, without spending requests;
- 403 ``rateLimitExceeded`` / ``userRateLimitExceeded`` (too many requests per minute): retried with
  back-off, as Google's guidance says;
- a refused key (400 ``keyInvalid``, 403 ``forbidden``, ``accessNotConfigured``...): polling stops with
  a message saying what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from services.common.names import Platform
from services.common.settings import Settings
from services.ingest.sources.pollers.base import (
    AccountRef,
    Outcome,
    Poller,
    PollResult,
    Retry,
    chunks,
    describe_response,
    json_object,
)
from services.ingest.sources.pollers.errors import (
    FailureReason,
    PollerConfigError,
    RequestFailed,
    StopPolling,
)

MAX_IDS_PER_REQUEST = 50
CHANNEL_ID = re.compile(r"UC[0-9A-Za-z_-]{22}")

_QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
_RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"})
_KEY_REASONS = frozenset({"keyInvalid", "keyExpired", "API_KEY_INVALID", "API_KEY_EXPIRED"})


def _pacific() -> tzinfo:
    try:
        return ZoneInfo("America/Los_Angeles")
    except ZoneInfoNotFoundError:
        # Without a time-zone database, Pacific Standard Time: in summer the pause ends an hour after
        # the real reset, which costs an hour of polling, never a refused request.
        return timezone(timedelta(hours=-8), "PST")


def next_quota_reset(now: datetime) -> datetime:
    """The next midnight in Pacific time after ``now``: when YouTube's daily quotas reset."""
    zone = _pacific()
    local = now.astimezone(zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=zone)
    return midnight.astimezone(UTC)


def _count(value: object) -> object:
    # The API writes 64-bit counts as strings; anything else is passed on for the model to refuse.
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


class YouTubePoller(Poller):
    """Subscribers and videos of YouTube channels, from the Data API v3."""

    name = "youtube"
    platform = Platform.YOUTUBE
    follow_redirects = False  # the token or key must not follow a redirect elsewhere

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        key = settings.youtube_api_key.get_secret_value() if settings.youtube_api_key else ""
        if not key:
            raise PollerConfigError(
                "the YouTube poller needs a YouTube Data API v3 key: set BAROMETRE_YOUTUBE_API_KEY"
            )
        super().__init__(settings, **kwargs)
        self._url = f"{settings.youtube_api_url.rstrip('/')}/youtube/v3/channels"
        self._key = httpx.URL(self._url).host
        self._auth = {"X-Goog-Api-Key": key}
        self._quota_pause = settings.youtube_quota_pause_seconds

    async def _poll(self, accounts: Sequence[AccountRef], now: datetime, result: PollResult) -> None:
        by_id = [ref for ref in accounts if CHANNEL_ID.fullmatch(ref.lookup)]
        by_handle = [ref for ref in accounts if not CHANNEL_ID.fullmatch(ref.lookup)]
        for batch in chunks(by_id, MAX_IDS_PER_REQUEST):
            items = await self._channels(batch, {"id": ",".join(ref.lookup for ref in batch)}, result)
            if items is None:
                continue
            found = {str(item.get("id")): item for item in items}
            for ref in batch:
                self._record_channel(result, ref, now, found.get(ref.lookup))
        for ref in by_handle:
            items = await self._channels([ref], {"forHandle": f"@{ref.lookup.removeprefix('@')}"}, result)
            if items is not None:
                self._record_channel(result, ref, now, items[0] if items else None)

    async def _channels(
        self, batch: Sequence[AccountRef], query: dict[str, str], result: PollResult
    ) -> list[dict[str, Any]] | None:
        """The ``items`` of one channels.list request, or None after failing ``batch``."""
        try:
            response = await self._request(
                self._url, key=self._key, params={"part": "statistics", **query}, headers=self._auth
            )
        except RequestFailed as exc:
            for ref in batch:
                result.fail(ref, exc.reason, exc.detail)
            return None
        body = json_object(response)
        items = body.get("items", []) if body is not None else None
        if not isinstance(items, list):
            for ref in batch:
                result.fail(ref, FailureReason.INVALID_RESPONSE, "channels.list: no 'items' list")
            return None
        return [item for item in items if isinstance(item, dict)]

    def _record_channel(
        self, result: PollResult, ref: AccountRef, now: datetime, item: dict[str, Any] | None
    ) -> None:
        if item is None:
            result.fail(ref, FailureReason.NOT_FOUND, "YouTube returned no channel for this id or handle")
            return
        statistics = item.get("statistics")
        if not isinstance(statistics, dict):
            result.fail(ref, FailureReason.INVALID_RESPONSE, "channels.list: no statistics for the channel")
            return
        if statistics.get("hiddenSubscriberCount") is True:
            result.fail(ref, FailureReason.HIDDEN, "the channel hides its subscriber count")
            return
        self._record(
            result,
            ref,
            now,
            followers=_count(statistics.get("subscriberCount")),
            posts_total=_count(statistics.get("videoCount")),
        )

    def _classify(self, response: httpx.Response) -> Outcome:
        status = response.status_code
        if 200 <= status < 300:
            return None
        reasons = _error_reasons(response)
        detail = describe_response(response)
        if reasons & _QUOTA_REASONS:
            now = self._clock()
            resume = (
                next_quota_reset(now)
                if self._quota_pause is None
                else now + timedelta(seconds=self._quota_pause)
            )
            return Retry(
                FailureReason.QUOTA_EXCEEDED,
                "YouTube Data API daily quota exceeded",
                delay=(resume - now).total_seconds(),
            )
        if reasons & _RATE_REASONS:
            return Retry(FailureReason.RATE_LIMITED, detail)
        if reasons & _KEY_REASONS or status in (401, 403):
            raise StopPolling(
                FailureReason.UNAUTHORIZED,
                f"YouTube refused the API key ({detail}); set BAROMETRE_YOUTUBE_API_KEY to a valid key "
                "of a project with the YouTube Data API v3 enabled",
            )
        return super()._classify(response)


def _error_reasons(response: httpx.Response) -> set[str]:
    """The ``reason`` of each item of a Google API error: ``errors`` (legacy) and ``details`` (AIP-193)."""
    body = json_object(response)
    error = body.get("error") if body is not None else None
    if not isinstance(error, dict):
        return set()
    reasons: set[str] = set()
    for group in ("errors", "details"):
        items = error.get(group)
        if isinstance(items, list):
            reasons.update(
                str(item["reason"]) for item in items if isinstance(item, dict) and "reason" in item
            )
    return reasons
