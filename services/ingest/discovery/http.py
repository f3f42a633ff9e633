"""The HTTP client of discovery: one request at a time per host, retried with back-off, rate limits honoured.

Discovery asks public registries (Wikidata's SPARQL endpoint, the administration's directory) and two
platforms (Bluesky, Mastodon) for a few thousand answers, once in a while. :class:`Fetcher` is a
:class:`~services.ingest.sources.pollers.http.RetryingClient`, the pollers' request machinery (pauses
per host, ``Retry-After``, ``RateLimit-*`` budgets, exponential back-off with equal jitter), under the
``discovery_*`` settings, with what discovery adds: a POST of a form (SPARQL queries are POSTed, so
that long queries fit), one request at a time per host, and a pause longer than
``discovery_max_wait_seconds`` failing the one request rather than stopping the run.

Retried: 429 and 408 (after ``Retry-After`` when given), 5xx, timeouts and connection errors, up to
``discovery_max_attempts``. Other 4xx are returned to the caller when it said it reads them
(``accept``), else raised as :class:`RequestFailed`: asking again will not change a 400.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from typing import Unpack

import httpx

from services.common.settings import Settings
from services.ingest.sources.pollers.errors import RateLimited, RequestFailed
from services.ingest.sources.pollers.http import ClientOptions, RetryingClient, RetryPolicy, host_key


class Fetcher(RetryingClient):
    """GET and POST with retries; use as an async context manager (it owns an httpx client)."""

    name = "discovery"

    def __init__(self, settings: Settings, **options: Unpack[ClientOptions]) -> None:
        super().__init__(
            timeout=settings.discovery_timeout_seconds,
            headers={"User-Agent": settings.discovery_user_agent()},
            max_wait=settings.discovery_max_wait_seconds,
            policy=RetryPolicy(
                max_attempts=settings.discovery_max_attempts,
                base_delay=settings.discovery_backoff_seconds,
                max_delay=settings.discovery_backoff_max_seconds,
            ),
            **options,
        )
        # One request at a time per host: the SPARQL endpoint allows a handful of parallel queries per
        # client, and a directory or a Mastodon server is better served by a patient client.
        self._gates: dict[str, asyncio.Lock] = {}

    async def get(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        accept: Collection[int] = (),
    ) -> httpx.Response:
        """GET ``url``: a 2xx response or one whose status is in ``accept``; RequestFailed otherwise."""
        return await self._send("GET", url, params=params, data=None, headers=headers, accept=accept)

    async def post_form(
        self,
        url: str,
        data: Mapping[str, str],
        *,
        headers: Mapping[str, str] | None = None,
        accept: Collection[int] = (),
    ) -> httpx.Response:
        """POST ``data`` as ``application/x-www-form-urlencoded`` (how SPARQL 1.1 sends a long query)."""
        return await self._send("POST", url, params=None, data=data, headers=headers, accept=accept)

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None,
        data: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        accept: Collection[int],
    ) -> httpx.Response:
        key = host_key(url)
        async with self._gates.setdefault(key, asyncio.Lock()):
            try:
                return await self._request(
                    url, key=key, method=method, params=params, data=data, headers=headers, accept=accept
                )
            except RateLimited as exc:
                # A pause longer than discovery may wait: this request fails, the caller goes on.
                raise RequestFailed(exc.reason, exc.message) from None
