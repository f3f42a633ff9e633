"""Facebook poller: public page figures from the Graph API, up to 50 pages per request.

``GET {facebook_graph_url}/{version}/?ids=id1,id2&fields=followers_count,fan_count,name`` answers
``{"id1": {"followers_count": ..., "fan_count": ..., "name": ..., "id": "id1"}, ...}``. Followers are
``followers_count`` (people following the page), or ``fan_count`` (likes) for pages that only have
that. Ids are page ids or page usernames. The access token (``BAROMETRE_FACEBOOK_TOKEN``) is sent in the
``Authorization`` header rather than the URL, so it never appears in logged URLs.

Multi-id requests are being withdrawn by Meta (refused from Graph API v26.0, and for apps created
since November 2026): with ``facebook_batch_size = 1`` the poller asks ``GET /{version}/{id}?fields=...``
for each page instead.

Graph errors (``{"error": {"code", "error_subcode", "message", "is_transient"}}``) decide what happens:

- 190 (invalid or expired token), 102, 10 and 200-299 (missing permission): polling stops with a
  message saying what to fix; retrying with the same token cannot succeed;
- 4, 17, 32, 613 and the 80000-range business use-case codes (rate limits, sent as 400/403, not 429):
  a pause, for as long as Facebook's usage headers say or ``facebook_usage_pause_seconds``, then retry;
- 1, 2 and any error marked ``is_transient``: retried with back-off;
- 803 ("Some of the aliases you requested do not exist") or 100/33 ("does not exist"): the page is
  not found. One missing page fails a whole multi-id request, so the batch is split in halves until
  the missing pages are alone: a few extra requests instead of 49 lost pages. A missing page is a
  ``not_found`` failure, never a ``deleted`` snapshot: Graph says the same for a deleted page, a
  page hidden by its owner and a typo.

Usage headers (``X-App-Usage``, ``X-Page-Usage``, ``X-Business-Use-Case-Usage``: percentages of the
limits used) slow requests down above ``facebook_usage_slowdown_percent`` and pause them above
``facebook_usage_pause_percent``, so the poller backs off before Facebook throttles the app.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from services.common.names import Platform
from services.common.settings import Settings
from services.ingest.sources.pollers.base import (
    AccountRef,
    Fail,
    Outcome,
    Poller,
    PollResult,
    Retry,
    chunks,
    json_object,
)
from services.ingest.sources.pollers.errors import (
    FailureReason,
    PollerConfigError,
    RequestFailed,
    StopPolling,
)
from services.ingest.sources.pollers.ratelimit import parse_facebook_usage

FIELDS = "followers_count,fan_count,name"

_AUTH_CODES = frozenset({102, 190})
_PERMISSION_CODES = frozenset({10, *range(200, 300)})
_RATE_LIMIT_CODES = frozenset({4, 17, 32, 341, 613, *range(80000, 80015)})
_TRANSIENT_CODES = frozenset({1, 2})
_NOT_FOUND_CODE = 803
_INVALID_PARAMETER_CODE, _DOES_NOT_EXIST_SUBCODE = 100, 33


class FacebookPoller(Poller):
    """Followers of Facebook pages, from the Graph API."""

    name = "facebook"
    platform = Platform.FACEBOOK
    follow_redirects = False  # the token or key must not follow a redirect elsewhere

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        token = settings.facebook_token.get_secret_value() if settings.facebook_token else ""
        if not token:
            raise PollerConfigError(
                "the Facebook poller needs a Graph API access token: set BAROMETRE_FACEBOOK_TOKEN"
            )
        super().__init__(settings, **kwargs)
        self._root = f"{settings.facebook_graph_url.rstrip('/')}/{settings.facebook_graph_version.strip('/')}"
        self._key = httpx.URL(self._root).host
        self._auth = {"Authorization": f"Bearer {token}"}
        self._batch_size = settings.facebook_batch_size
        self._slowdown_percent = settings.facebook_usage_slowdown_percent
        self._pause_percent = settings.facebook_usage_pause_percent
        self._slowdown_interval = settings.facebook_slowdown_interval_seconds
        self._usage_pause = settings.facebook_usage_pause_seconds

    async def _poll(self, accounts: Sequence[AccountRef], now: datetime, result: PollResult) -> None:
        for batch in chunks(accounts, self._batch_size):
            await self._poll_batch(batch, now, result)

    async def _poll_batch(self, batch: Sequence[AccountRef], now: datetime, result: PollResult) -> None:
        try:
            pages = await self._fetch(batch)
        except RequestFailed as exc:
            if exc.reason is FailureReason.NOT_FOUND and len(batch) > 1:
                middle = len(batch) // 2
                await self._poll_batch(batch[:middle], now, result)
                await self._poll_batch(batch[middle:], now, result)
                return
            for ref in batch:
                result.fail(ref, exc.reason, exc.detail)
            return
        by_id = {str(page.get("id", "")).lower(): page for page in pages.values() if isinstance(page, dict)}
        by_key = {key.lower(): page for key, page in pages.items() if isinstance(page, dict)}
        for ref in batch:
            page = by_key.get(ref.lookup) or by_id.get(ref.lookup)
            if page is None:
                result.fail(ref, FailureReason.NOT_FOUND, "the page is missing from Graph's answer")
                continue
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
                continue
            self._record(result, ref, now, followers=followers)

    async def _fetch(self, batch: Sequence[AccountRef]) -> dict[str, Any]:
        """The Graph objects of ``batch`` keyed by the id or username asked for."""
        if self._batch_size == 1:
            (ref,) = batch
            response = await self._request(
                f"{self._root}/{quote(ref.lookup, safe='')}",
                key=self._key,
                params={"fields": FIELDS},
                headers=self._auth,
            )
            page = json_object(response)
            if page is None:
                raise RequestFailed(FailureReason.INVALID_RESPONSE, "Graph's answer is not an object")
            return {ref.lookup: page}
        response = await self._request(
            f"{self._root}/",
            key=self._key,
            params={"ids": ",".join(ref.lookup for ref in batch), "fields": FIELDS},
            headers=self._auth,
        )
        pages = json_object(response)
        if pages is None:
            raise RequestFailed(FailureReason.INVALID_RESPONSE, "Graph's answer is not an object")
        return pages

    def _observe(self, response: httpx.Response, key: str) -> None:
        super()._observe(response, key)
        usage = parse_facebook_usage(response.headers)
        if usage is None:
            return
        if usage.percent >= self._pause_percent:
            self._limiter.pause(
                key,
                usage.regain_seconds or self._usage_pause,
                FailureReason.RATE_LIMITED,
                f"Facebook reports {usage.percent:g}% of a rate limit used",
            )
        elif usage.percent >= self._slowdown_percent:
            self._limiter.space(key, self._slowdown_interval)
        else:
            self._limiter.space(key, 0.0)

    def _classify(self, response: httpx.Response) -> Outcome:
        if 200 <= response.status_code < 300:
            return None
        body = json_object(response)
        error = body.get("error") if body is not None else None
        if not isinstance(error, dict) or not isinstance(error.get("code"), int):
            return super()._classify(response)
        code: int = error["code"]
        subcode = error.get("error_subcode")
        detail = f"Graph error {code}{f'/{subcode}' if subcode else ''}: {error.get('message', '')}"
        if code in _AUTH_CODES:
            raise StopPolling(
                FailureReason.UNAUTHORIZED,
                f"Facebook refused the access token ({detail}); "
                "set BAROMETRE_FACEBOOK_TOKEN to a valid token",
            )
        if code in _PERMISSION_CODES:
            raise StopPolling(
                FailureReason.UNAUTHORIZED,
                f"the Facebook token lacks a permission ({detail}); public page figures need the "
                "'Page Public Metadata Access' feature or a token of the pages' own",
            )
        if code in _RATE_LIMIT_CODES:
            usage = parse_facebook_usage(response.headers)
            pause = usage.regain_seconds if usage is not None and usage.regain_seconds else self._usage_pause
            return Retry(FailureReason.RATE_LIMITED, detail, delay=pause)
        if code == _NOT_FOUND_CODE or (
            code == _INVALID_PARAMETER_CODE
            and (subcode == _DOES_NOT_EXIST_SUBCODE or "does not exist" in str(error.get("message", "")))
        ):
            return Fail(FailureReason.NOT_FOUND, detail)
        if code in _TRANSIENT_CODES or error.get("is_transient") is True or response.status_code >= 500:
            return Retry(FailureReason.HTTP_ERROR, detail)
        return Fail(FailureReason.HTTP_ERROR, f"HTTP {response.status_code}, {detail}")
