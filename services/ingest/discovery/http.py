"""The HTTP client of discovery: one request at a time per host, retried with back-off, rate limits honoured.

Discovery asks public registries (Wikidata's SPARQL endpoint, the administration's directory) and two
platforms (Bluesky, Mastodon) for a few thousand answers, once in a while. The pollers' machinery is
reused where it fits: :class:`~services.ingest.sources.pollers.ratelimit.RateLimiter` (pauses per host,
``Retry-After``, ``RateLimit-*`` budgets), :class:`~services.ingest.sources.pollers.base.RetryPolicy`
(exponential back-off with equal jitter) and the failure vocabulary. What the pollers' ``_request``
cannot do is a POST (SPARQL queries are POSTed, so that long queries fit), hence this small client.

Retried: 429 and 408 (after ``Retry-After`` when given), 5xx, timeouts and connection errors, up to
``discovery_max_attempts``. Other 4xx are returned to the caller when it said it reads them
(``accept``), else raised as :class:`RequestFailed`: asking again will not change a 400.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
from collections.abc import Callable, Collection, Mapping
from types import TracebackType
from typing import Self

import httpx

from services.common.settings import Settings
from services.ingest.sources.pollers.base import RetryPolicy, describe_response, utc_now
from services.ingest.sources.pollers.errors import FailureReason, RateLimited, RequestFailed
from services.ingest.sources.pollers.ratelimit import (
    Clock,
    RateLimiter,
    Sleep,
    parse_retry_after,
    read_budget,
)

log = logging.getLogger(__name__)


class Fetcher:
    """GET and POST with retries; use as an async context manager (it owns an httpx client)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utc_now,
        sleep: Sleep = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._clock = clock
        self._random = random
        self._limiter = RateLimiter(clock=clock, sleep=sleep, max_wait=settings.discovery_max_wait_seconds)
        self._policy = RetryPolicy(
            max_attempts=settings.discovery_max_attempts,
            base_delay=settings.discovery_backoff_seconds,
            max_delay=settings.discovery_backoff_max_seconds,
        )
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.discovery_timeout_seconds),
            headers={"User-Agent": settings.discovery_user_agent()},
            follow_redirects=True,
        )
        # One request at a time per host: the SPARQL endpoint allows a handful of parallel queries per
        # client, and a directory or a Mastodon server is better served by a patient client.
        self._gates: dict[str, asyncio.Lock] = {}

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def get(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        accept: Collection[int] = (),
    ) -> httpx.Response:
        """GET ``url``: a 2xx response or one whose status is in ``accept``; RequestFailed otherwise."""
        return await self._request("GET", url, params=params, data=None, headers=headers, accept=accept)

    async def post_form(
        self,
        url: str,
        data: Mapping[str, str],
        *,
        headers: Mapping[str, str] | None = None,
        accept: Collection[int] = (),
    ) -> httpx.Response:
        """POST ``data`` as ``application/x-www-form-urlencoded`` (how SPARQL 1.1 sends a long query)."""
        return await self._request("POST", url, params=None, data=data, headers=headers, accept=accept)

    async def _request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None,
        data: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        accept: Collection[int],
    ) -> httpx.Response:
        key = httpx.URL(url).host or url
        gate = self._gates.setdefault(key, asyncio.Lock())
        last = ""
        reason = FailureReason.HTTP_ERROR
        async with gate:
            for attempt in range(1, self._policy.max_attempts + 1):
                try:
                    await self._limiter.acquire(key)
                except RateLimited as exc:
                    # A pause longer than discovery may wait: this request fails, the caller goes on.
                    raise RequestFailed(exc.reason, exc.message) from None
                delay: float | None = None
                try:
                    response = await self._client.request(
                        method, url, params=params, data=data, headers=headers
                    )
                except httpx.TimeoutException as exc:
                    reason, last = FailureReason.UNREACHABLE, f"timed out ({type(exc).__name__})"
                except httpx.TransportError as exc:
                    reason, last = (
                        FailureReason.UNREACHABLE,
                        f"connection failed ({type(exc).__name__}: {exc})",
                    )
                else:
                    self._observe(response, key)
                    status = response.status_code
                    if 200 <= status < 300 or status in accept:
                        return response
                    last = describe_response(response)
                    retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock())
                    if status == httpx.codes.TOO_MANY_REQUESTS:
                        reason, delay = FailureReason.RATE_LIMITED, retry_after
                    elif status == httpx.codes.REQUEST_TIMEOUT:
                        reason, delay = FailureReason.UNREACHABLE, retry_after
                    elif status >= 500:
                        reason, delay = FailureReason.HTTP_ERROR, retry_after
                    else:
                        raise RequestFailed(FailureReason.HTTP_ERROR, last)
                log.info("discovery: attempt %d on %s failed: %s", attempt, key, last)
                if delay is not None:
                    self._limiter.pause(key, delay, reason, last)
                elif attempt < self._policy.max_attempts:
                    self._limiter.pause(key, self._policy.backoff(attempt, self._random()), reason, last)
        raise RequestFailed(reason, f"{last} (gave up after {self._policy.max_attempts} attempts)")

    def _observe(self, response: httpx.Response, key: str) -> None:
        """Apply the ``RateLimit-*`` / ``X-RateLimit-*`` budget a response reports, if any."""
        now = self._clock()
        for prefix in ("RateLimit-", "X-RateLimit-"):
            budget = read_budget(response.headers, now, prefix)
            if budget is not None:
                self._limiter.observe_budget(
                    key,
                    remaining=budget.remaining,
                    limit=budget.limit,
                    reset_at=budget.reset_at,
                    source=f"{prefix}Remaining",
                )
                return
