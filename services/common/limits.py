"""Limits on every door of the HTTP services (OWASP API Security 2023, API4: unrestricted resource use).

:class:`RequestLimits` is a pure ASGI middleware, installed by :func:`services.common.web.install`, that
checks in this order, before the application sees the request:

1. **Rate**: requests a minute per client address and per bearer token (the ``limits`` package, a
   moving window in the process's memory), answered ``429`` with ``Retry-After``;
2. **Token before body** (the api): a write (POST, PUT, PATCH, DELETE) under ``/v1/`` must carry a valid
   token, checked before a byte of the body is read or parsed, else ``401``; the route still checks the
   token's scope (``403``);
3. **Concurrency**: requests being served at once by the process, beyond which ``503`` with
   ``Retry-After``; long-lived streams are not counted (they have their own cap);
4. **Body size**: bytes are counted as they arrive, so a chunked body (no ``Content-Length``) or a lying
   ``Content-Length`` is cut at the limit: ``413``. A declared length over the limit is refused at once.

Every refusal is the contract's JSON error ``{"error": {"code", "message"}}``. ``/healthz``, ``/readyz``
and ``/metrics`` are exempt from rates and concurrency, so probes and scrapes always get through.

The client address is the socket peer; ``X-Forwarded-For`` is believed only when the peer is one of the
``trusted_proxies`` networks, and then the rightmost address that is not itself a trusted proxy is the
client (what the nearest proxy saw; the left part is the client's own word).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import Counter
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.settings import Settings

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BUSY_RETRY_AFTER_S = 1

REJECTED = Counter(
    "barometre_http_rejected_total",
    "Requests refused by the limits before reaching a route, by service and reason.",
    ["service", "reason"],
)

# Why a bearer token is refused (the 401 message), or None when it is valid.
WriteTokenCheck = Callable[[str], Awaitable[str | None]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BodyTooLarge(HTTPException):
    """The request body passed the limit while it was read: the JSON error handler answers 413.

    An HTTPException so that FastAPI's body parsing lets it through as it is (other exceptions become
    "400 there was an error parsing the body")."""

    code = "payload_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds {limit} bytes")


def networks(text: str) -> tuple[Network, ...]:
    """The networks of a comma-separated setting (validated by Settings)."""
    return tuple(ipaddress.ip_network(i.strip()) for i in text.split(",") if i.strip())


@dataclass(frozen=True)
class LimitConfig:
    """What :class:`RequestLimits` enforces for one service; 0 disables a limit."""

    max_body_bytes: int
    per_address: int = 0
    per_token: int = 0
    max_concurrent: int = 0
    trusted_proxies: tuple[Network, ...] = ()
    exempt_paths: frozenset[str] = EXEMPT_PATHS
    # Paths of long-lived answers (SSE) that the concurrency cap does not count.
    uncounted_paths: frozenset[str] = frozenset()
    # When set, a write under write_prefix needs a token this accepts before its body is read.
    write_token_check: WriteTokenCheck | None = None
    write_prefix: str = "/v1/"

    @classmethod
    def from_settings(cls, settings: Settings, max_body_bytes: int, **kwargs: Any) -> LimitConfig:
        return cls(
            max_body_bytes=max_body_bytes,
            per_address=settings.rate_limit_per_address,
            per_token=settings.rate_limit_per_token,
            max_concurrent=settings.max_concurrent_requests,
            trusted_proxies=networks(settings.trusted_proxies),
            **kwargs,
        )


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_address(scope: Scope, trusted: Iterable[Network]) -> str:
    """The client's address: the socket peer, or what a trusted proxy says it saw."""
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    trusted = tuple(trusted)
    if not trusted:
        return peer

    def is_trusted(text: str) -> bool:
        ip = _ip(text)
        return ip is not None and any(ip in net for net in trusted)

    if not is_trusted(peer):
        return peer
    forwarded: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            forwarded += [part.strip() for part in value.decode("latin-1").split(",")]
    address = peer
    for hop in reversed(forwarded):
        if _ip(hop) is None:
            break  # garbage: keep the last address a trusted hop vouched for
        address = hop
        if not is_trusted(hop):
            break
    return address


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text: str = bytes(value).decode("latin-1")
            scheme, _, token = text.partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Callable[[Send], Awaitable[None]]:
    """An ASGI answer with the contract's JSON error body."""
    body = json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":")).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]

    async def respond(send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    return respond


@dataclass
class _State:
    in_flight: int = 0


class RequestLimits:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, config: LimitConfig, service: str = "") -> None:
        self.app = app
        self.config = config
        self.service = service
        self._state = _State()
        # Exact: at most N requests in any 60 s (one timestamp per request kept, N at most per key,
        # expired by the storage's own timer), and Retry-After is when the oldest of them leaves.
        enabled = config.per_address or config.per_token
        self._limiter = MovingWindowRateLimiter(MemoryStorage()) if enabled else None
        self._per_address = RateLimitItemPerMinute(config.per_address) if config.per_address else None
        self._per_token = RateLimitItemPerMinute(config.per_token) if config.per_token else None

    @property
    def in_flight(self) -> int:
        return self._state.in_flight

    def _reject(self, reason: str) -> None:
        REJECTED.labels(self.service, reason).inc()

    def _over_rate(self, item: RateLimitItemPerMinute | None, *key: str) -> int | None:
        """Seconds until the next request is allowed when this one is over the rate, else None."""
        if item is None or self._limiter is None or self._limiter.hit(item, *key):
            return None
        reset = self._limiter.get_window_stats(item, *key).reset_time
        return max(1, math.ceil(reset - time.time()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        config = self.config
        path: str = scope.get("path", "")
        exempt = path in config.exempt_paths
        token = bearer_token(scope)

        if not exempt:
            address = client_address(scope, config.trusted_proxies)
            wait = self._over_rate(self._per_address, "address", address)
            if wait is None and token is not None:
                # By the token's hash: the secret itself is not kept as a key.
                digest = hashlib.sha256(token.encode()).hexdigest()[:32]
                wait = self._over_rate(self._per_token, "token", digest)
            if wait is not None:
                self._reject("rate")
                await error_response(
                    429,
                    "too_many_requests",
                    f"rate limit reached; retry in {wait} s",
                    {"Retry-After": str(wait)},
                )(send)
                return

        if (
            config.write_token_check is not None
            and scope.get("method") in WRITE_METHODS
            and path.startswith(config.write_prefix)
        ):
            refusal = await self._check_write_token(token)
            if refusal is not None:
                self._reject("unauthorized")
                await refusal(send)
                return

        limit = config.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            self._reject("body_size")
            await error_response(413, BodyTooLarge.code, f"the request body exceeds {limit} bytes")(send)
            return

        counted = not exempt and path not in config.uncounted_paths and config.max_concurrent > 0
        if counted and self._state.in_flight >= config.max_concurrent:
            self._reject("concurrency")
            await error_response(
                503,
                "overloaded",
                f"this process is serving {config.max_concurrent} requests already; retry shortly",
                {"Retry-After": str(BUSY_RETRY_AFTER_S)},
            )(send)
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    self._reject("body_size")
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        if counted:
            self._state.in_flight += 1
        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:
            # Reached here only when nothing in the application turned it into an answer.
            if started:
                raise
            await error_response(413, BodyTooLarge.code, str(exc.detail))(send)
        finally:
            if counted:
                self._state.in_flight -= 1

    async def _check_write_token(self, token: str | None) -> Callable[[Send], Awaitable[None]] | None:
        assert self.config.write_token_check is not None
        challenge = {"WWW-Authenticate": "Bearer"}
        if token is None:
            return error_response(
                401, "unauthorized", "a bearer token is needed to change anything", challenge
            )
        try:
            refusal = await self.config.write_token_check(token)
        except Exception:
            return error_response(
                503,
                "service_unavailable",
                "the token cannot be checked now (ClickHouse does not answer); try again in a few seconds",
                {"Retry-After": "5"},
            )
        if refusal is not None:
            return error_response(401, "unauthorized", refusal, challenge)
        return None


def limit_responses(model: type, *, queries: bool = False) -> dict[int | str, dict[str, Any]]:
    """The answers the limits add to a route, for its OpenAPI (``responses=`` of a router or route)."""
    out: dict[int | str, dict[str, Any]] = {
        413: {"model": model, "description": "The request body is larger than the service accepts."},
        429: {
            "model": model,
            "description": "Too many requests from this address or token; retry after `Retry-After` s.",
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
        },
        503: {
            "model": model,
            "description": "The service is overloaded or a dependency does not answer; retry after "
            "`Retry-After` seconds.",
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
        },
    }
    if queries:
        out[504] = {
            "model": model,
            "description": "The query ran past its time limit (or its memory or row limit); narrow it "
            "or retry after `Retry-After` seconds.",
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
        }
    return out
