"""HTTP requests under a platform's rate limits, retried with back-off: the one request machinery of the
pollers (:class:`~services.ingest.sources.pollers.base.Poller`) and of discovery
(:class:`~services.ingest.discovery.http.Fetcher`).

:class:`RetryingClient` owns an ``aiohttp.ClientSession``; :meth:`RetryingClient._request` is the one
way its subclasses send a request, GET or POST, and what it returns is an ``httpx.Response`` (the
body read whole), the answer type the pollers read. aiohttp sends, because httpx's own stack costs
several times its CPU a request, and a poller sends hundreds a second (bench/poll.py). Each attempt:

- waits for the :class:`~services.ingest.sources.pollers.ratelimit.RateLimiter` of its *key* (a host,
  an endpoint): a pause longer than ``max_wait`` raises
  :class:`~services.ingest.sources.pollers.errors.RateLimited` instead of hanging;
- reads the response's rate-limit headers into the limiter (:meth:`RetryingClient._observe`), success
  or not;
- passes through the send hooks (:meth:`RetryingClient.add_send_hooks`: the poller service paces
  every request, retries included, within the platform's budget);
- decides whether the response is usable, worth retrying or a failure (:meth:`RetryingClient._classify`,
  by status unless a platform knows better).

Retried, a bounded number of times: 429, 408, 5xx, timeouts and connection errors, after the delay the
platform asked for (``Retry-After``, a quota pause), else after exponential back-off with equal jitter.
Other 4xx are never retried: asking again will not make a missing account appear. A request that
fails for good raises :class:`~services.ingest.sources.pollers.errors.RequestFailed`.

Clock, sleep and the random source of the jitter are injected, so tests run without waiting.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random as _random
import urllib.request
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, ClassVar, Self, TypedDict, Unpack

import aiohttp
import httpx

from services.ingest.sources.pollers.errors import FailureReason, RequestFailed
from services.ingest.sources.pollers.ratelimit import (
    Clock,
    RateLimiter,
    Sleep,
    parse_retry_after,
    read_budget,
)

log = logging.getLogger(__name__)

# How much of an error body goes into a failure's detail: enough to read the platform's message.
DETAIL_LENGTH = 300

Params = Mapping[str, str | Sequence[str]]


class ClientOptions(TypedDict, total=False):
    """What a client's maker may inject (tests do): its clock, its sleep, the random source of the
    back-off's jitter."""

    clock: Clock
    sleep: Sleep
    random: Callable[[], float]


BeforeSend = Callable[[str], Awaitable[None]]  # called with the request's key before it is sent
AfterReceive = Callable[[int], None]  # called with the status of every response


class Proxies:
    """The proxies of the environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``NO_PROXY``), read once.

    aiohttp's own ``trust_env`` reads them, and ``~/.netrc``, again on every request, which more than
    doubled a request's CPU. Here they are read when the client is made, and decided once per host.
    """

    def __init__(self) -> None:
        self._proxies = urllib.request.getproxies_environment()
        self._by_host: dict[tuple[str, str], str | None] = {}

    def for_url(self, url: str) -> str | None:
        """The proxy URL to send a request for ``url`` through, or None."""
        scheme, _, rest = url.partition("://")
        key = (scheme.lower(), rest.split("/", 1)[0].split("?", 1)[0])  # no URL parsing per request
        if key not in self._by_host:
            proxy = self._proxies.get(key[0])
            host = key[1].rpartition("@")[2]
            bypass = proxy is None or bool(urllib.request.proxy_bypass(host))
            self._by_host[key] = None if bypass else proxy
        return self._by_host[key]


def utc_now() -> datetime:
    """The system clock, as an aware UTC datetime."""
    return datetime.now(UTC)


def host_key(url: str) -> str:
    """The rate-limit key of requests to ``url``: its host (the URL itself when it has none)."""
    return httpx.URL(url).host or url


@dataclass(frozen=True)
class Retry:
    """The response (or the lack of one) is worth another attempt, after ``delay`` seconds if the
    platform said how long (Retry-After, a quota pause), else after exponential back-off."""

    reason: FailureReason
    detail: str
    delay: float | None = None


@dataclass(frozen=True)
class Fail:
    """The request failed and asking again will not help: its accounts fail with ``reason``."""

    reason: FailureReason
    detail: str


Outcome = Retry | Fail | None  # None: the response is usable


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a request gets, and how long to wait between them."""

    max_attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 60.0

    def backoff(self, attempt: int, draw: float) -> float:
        """The wait after failed attempt ``attempt`` (1-based), with ``draw`` in [0, 1) as jitter.

        "Equal jitter": half the exponential delay is fixed, the other half random, so clients that
        failed together do not retry in step, yet no retry comes immediately after a failure.
        """
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return ceiling / 2 + ceiling / 2 * draw


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The response's body if it is a JSON object, else None."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def describe_response(response: httpx.Response) -> str:
    """``HTTP 404 Not Found: <the platform's message>``, short enough for a log line."""
    text = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    message = _error_message(response)
    if message:
        text += f": {message}"
    return text


def _error_message(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return response.text.strip()[:DETAIL_LENGTH]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # Graph API, Google APIs: {"error": {"message": ...}}
            error = error.get("message") or error
        message = body.get("message")
        parts = [str(part) for part in (error, message) if part]
        if parts:
            return ": ".join(parts)[:DETAIL_LENGTH]
    return json.dumps(body)[:DETAIL_LENGTH]


class RetryingClient:
    """Sends requests with retries, back-off and rate limits; use as an async context manager, or call
    :meth:`aclose`. Subclasses adapt :meth:`_observe` and :meth:`_classify` to a platform."""

    name: ClassVar[str]  # who is asking, in the log lines of failed attempts
    # Clients that send a secret in a header of their own (an API key) set this to False: httpx drops
    # Authorization on a redirect to another host, but not other headers.
    follow_redirects: ClassVar[bool] = True
    # The rate-limit header families read, as the platform spells them: the IETF draft's ``RateLimit-*``
    # (Bluesky) and the older ``X-RateLimit-*`` (Mastodon); the first one present wins.
    rate_limit_prefixes: ClassVar[tuple[str, ...]] = ("RateLimit-", "X-RateLimit-")

    def __init__(
        self,
        *,
        timeout: float,
        headers: Mapping[str, str],
        max_wait: float,
        policy: RetryPolicy,
        **options: Unpack[ClientOptions],
    ) -> None:
        self._clock = options.get("clock", utc_now)
        self._random = options.get("random", _random.random)
        self._limiter = RateLimiter(
            clock=self._clock, sleep=options.get("sleep", asyncio.sleep), max_wait=max_wait
        )
        self._policy = policy
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._headers = dict(headers)
        self._proxies = Proxies()
        self._session: aiohttp.ClientSession | None = None  # made in the event loop, at the first request
        self._before_send: list[BeforeSend] = []
        self._after_receive: list[AfterReceive] = []

    def add_send_hooks(self, *, before: BeforeSend | None = None, after: AfterReceive | None = None) -> None:
        """Have ``before(key)`` awaited before every request is sent (retries included), and
        ``after(status)`` called with the status of every response."""
        if before is not None:
            self._before_send.append(before)
        if after is not None:
            self._after_receive.append(after)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _request(
        self,
        url: str,
        *,
        key: str,
        method: str = "GET",
        params: Params | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        accept: Collection[int] = (),
    ) -> httpx.Response:
        """Send ``method`` to ``url`` (``data`` as a form body) under the rate limit of ``key``,
        retrying what is worth retrying.

        Returns a 2xx response, or one whose status is in ``accept`` (the caller reads those itself,
        such as Bluesky's 400 for a suspended account). Raises :class:`RequestFailed` when the request
        failed for good, and lets through what :meth:`_classify` or the limiter raise
        (:class:`~services.ingest.sources.pollers.errors.Interrupted`).
        """
        last: Retry | None = None
        for attempt in range(1, self._policy.max_attempts + 1):
            await self._limiter.acquire(key)
            outcome = await self._attempt(method, url, key, params, data, headers, accept)
            if isinstance(outcome, httpx.Response):
                return outcome
            if isinstance(outcome, Fail):
                raise RequestFailed(outcome.reason, outcome.detail)
            last = outcome
            if outcome.delay is not None:
                # A pause the platform asked for applies to every request to this key, and is kept
                # even after the last attempt so that the next request waits too.
                self._limiter.pause(key, outcome.delay, outcome.reason, outcome.detail)
            elif attempt < self._policy.max_attempts:
                delay = self._policy.backoff(attempt, self._random())
                self._limiter.pause(key, delay, outcome.reason, outcome.detail)
            log.info("%s: attempt %d on %s failed: %s", self.name, attempt, key, outcome.detail)
        assert last is not None  # the loop ran at least once: max_attempts >= 1
        raise RequestFailed(
            last.reason, f"{last.detail} (gave up after {self._policy.max_attempts} attempts)"
        )

    async def _attempt(
        self,
        method: str,
        url: str,
        key: str,
        params: Params | None,
        data: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        accept: Collection[int],
    ) -> httpx.Response | Retry | Fail:
        """One request: the usable response, or what to do about its failure."""
        for before in self._before_send:
            await before(key)
        try:
            response = await self._exchange(method, url, params, data, headers)
        except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors too
            return Retry(FailureReason.UNREACHABLE, f"timed out ({type(exc).__name__})")
        except aiohttp.ClientError as exc:
            return Retry(FailureReason.UNREACHABLE, f"connection failed ({type(exc).__name__}: {exc})")
        for after in self._after_receive:
            after(response.status_code)
        self._observe(response, key)
        if response.status_code in accept:
            return response
        outcome = self._classify(response)
        return response if outcome is None else outcome

    async def _exchange(
        self,
        method: str,
        url: str,
        params: Params | None,
        data: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        """Send one request with aiohttp and read its answer whole, as an ``httpx.Response``."""
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        query = [(name, v) for name, value in (params or {}).items() for v in _values(value)]
        async with self._session.request(
            method,
            url,
            params=query or None,
            data=data,
            headers=headers,
            allow_redirects=self.follow_redirects,
            proxy=self._proxies.for_url(url),
        ) as answer:
            body = await answer.read()
            return httpx.Response(
                answer.status,
                headers=answer.raw_headers,
                content=body,
                extensions={"reason_phrase": (answer.reason or "").encode()},
            )

    def _observe(self, response: httpx.Response, key: str) -> None:
        """Read the rate-limit headers of any response, success or not, into the limiter: the first
        family of :attr:`rate_limit_prefixes` present. Platforms with headers of another shape (Meta's
        usage percentages) extend this."""
        now = self._clock()
        for prefix in self.rate_limit_prefixes:
            budget = read_budget(response.headers, now, prefix)
            if budget is not None:
                # Named in the platform's own spelling: ``RateLimit-Remaining``, ``x-rate-limit-remaining``.
                remaining = "remaining" if prefix.islower() else "Remaining"
                self._limiter.observe_budget(
                    key,
                    remaining=budget.remaining,
                    limit=budget.limit,
                    reset_at=budget.reset_at,
                    source=f"{prefix}{remaining}",
                )
                return

    def _classify(self, response: httpx.Response) -> Outcome:
        """Usable (None), worth retrying, or failed: by status, for platforms without error codes of
        their own. 429 and 408 are retried (honouring ``Retry-After``), 5xx too, other 4xx never."""
        status = response.status_code
        if 200 <= status < 300:
            return None
        retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock())
        detail = describe_response(response)
        if status == httpx.codes.TOO_MANY_REQUESTS:
            return Retry(FailureReason.RATE_LIMITED, detail, delay=retry_after)
        if status == httpx.codes.REQUEST_TIMEOUT:
            return Retry(FailureReason.UNREACHABLE, detail, delay=retry_after)
        if status >= 500:
            return Retry(FailureReason.HTTP_ERROR, detail, delay=retry_after)
        return Fail(FailureReason.HTTP_ERROR, detail)


def _values(value: str | Sequence[str]) -> Sequence[str]:
    return [value] if isinstance(value, str) else value
