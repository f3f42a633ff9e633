"""Meta Graph API errors, shared by the pollers that speak Graph: Instagram (graph.facebook.com) and
Threads (graph.threads.net / graph.threads.com), which answer errors in the same shape.

An error is ``{"error": {"message", "type", "code", "error_subcode", "is_transient", "error_user_title",
"error_user_msg", "fbtrace_id"}}``, usually with HTTP 400 whatever the cause (rate limits included),
so the ``code`` decides, not the status (Graph API "Handling errors"):

- 190 (invalid or expired token) and 102 (session): the token is refused, polling stops;
- 10 and 200-299 (a permission is missing): polling stops, retrying with the same token cannot succeed;
- 4, 17, 32, 341, 613 and the 80000-range business use-case codes: a rate limit; the usage headers
  say how long until access returns, else ``usage_pause`` seconds;
- 1, 2 and anything marked ``is_transient``: retried with back-off;
- 803, 100/33 and 110 (with Instagram's 2207013 "Cannot find User"): the object is not found.

:func:`classify_graph_error` applies this; the platform module says what to tell the operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from services.common.settings import Settings
from services.ingest.sources.pollers.base import Fail, Retry, json_object
from services.ingest.sources.pollers.errors import FailureReason, StopPolling
from services.ingest.sources.pollers.ratelimit import RateLimiter, parse_facebook_usage

AUTH_CODES = frozenset({102, 190})
PERMISSION_CODES = frozenset({10, *range(200, 300)})
RATE_LIMIT_CODES = frozenset({4, 17, 32, 341, 613, *range(80000, 80015)})
TRANSIENT_CODES = frozenset({1, 2})
NOT_FOUND_CODES = frozenset({803, 110})
INVALID_PARAMETER_CODE, DOES_NOT_EXIST_SUBCODE = 100, 33
# Instagram business discovery: "Invalid user id" / "Cannot find User" — no such username, or one that
# is not a professional (business or creator) account, which the API cannot read: the two look alike.
IG_USER_NOT_FOUND_SUBCODE = 2207013


def graph_timestamp(value: object) -> datetime:
    """A Graph ``timestamp`` (``2017-08-31T18:10:00+0000``: ISO 8601, offset without a colon) as an
    aware UTC datetime; ValueError for anything else."""
    if not isinstance(value, str):
        raise ValueError(f"timestamp {value!r} is not a string")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no offset")
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class GraphError:
    """The ``error`` object of a Graph answer, as far as the classification needs it."""

    status: int
    code: int
    subcode: int | None
    message: str
    transient: bool

    @property
    def detail(self) -> str:
        subcode = f"/{self.subcode}" if self.subcode else ""
        return f"Graph error {self.code}{subcode}: {self.message}"

    @property
    def not_found(self) -> bool:
        return (
            self.code in NOT_FOUND_CODES
            or self.subcode == IG_USER_NOT_FOUND_SUBCODE
            or (
                self.code == INVALID_PARAMETER_CODE
                and (self.subcode == DOES_NOT_EXIST_SUBCODE or "does not exist" in self.message.lower())
            )
        )


def graph_error(response: httpx.Response) -> GraphError | None:
    """The Graph error carried by ``response``, or None when its body is not one."""
    body = json_object(response)
    error: Any = body.get("error") if body is not None else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        return None
    subcode = error.get("error_subcode")
    parts = [str(error.get(name)) for name in ("message", "error_user_msg") if error.get(name)]
    return GraphError(
        status=response.status_code,
        code=error["code"],
        subcode=subcode if isinstance(subcode, int) else None,
        message=" — ".join(parts),
        transient=error.get("is_transient") is True,
    )


def classify_graph_error(
    response: httpx.Response,
    *,
    platform: str,
    credential_env: str,
    permissions: str,
    usage_pause: float,
) -> Retry | Fail | None:
    """What to do about a Graph error response; None when the body is not a Graph error (the caller
    falls back to the status). Raises :class:`StopPolling` for a refused token or a missing permission.

    ``platform`` names the platform in messages, ``credential_env`` the variable to fix, ``permissions``
    what the token needs.
    """
    error = graph_error(response)
    if error is None:
        return None
    if error.code in AUTH_CODES:
        raise StopPolling(
            FailureReason.UNAUTHORIZED,
            f"{platform} refused the access token ({error.detail}); set {credential_env} to a valid token",
        )
    if error.code in PERMISSION_CODES:
        raise StopPolling(
            FailureReason.UNAUTHORIZED,
            f"the {platform} token lacks a permission ({error.detail}); it needs {permissions}",
        )
    if error.code in RATE_LIMIT_CODES:
        usage = parse_facebook_usage(response.headers)
        pause = usage.regain_seconds if usage is not None and usage.regain_seconds else usage_pause
        return Retry(FailureReason.RATE_LIMITED, error.detail, delay=pause)
    if error.not_found:
        return Fail(FailureReason.NOT_FOUND, error.detail)
    if error.code in TRANSIENT_CODES or error.transient or error.status >= 500:
        return Retry(FailureReason.HTTP_ERROR, error.detail)
    return Fail(FailureReason.HTTP_ERROR, f"HTTP {error.status}, {error.detail}")


def apply_usage(limiter: RateLimiter, key: str, headers: httpx.Headers, settings: Settings) -> None:
    """Slow down or pause requests to ``key`` by Meta's usage headers (``X-App-Usage``,
    ``X-Business-Use-Case-Usage``...), with the thresholds of the Facebook poller's settings, so a
    poller backs off before Meta throttles the app."""
    usage = parse_facebook_usage(headers)
    if usage is None:
        return
    if usage.percent >= settings.facebook_usage_pause_percent:
        limiter.pause(
            key,
            usage.regain_seconds or settings.facebook_usage_pause_seconds,
            FailureReason.RATE_LIMITED,
            f"Meta reports {usage.percent:g}% of a rate limit used",
        )
    elif usage.percent >= settings.facebook_usage_slowdown_percent:
        limiter.space(key, settings.facebook_slowdown_interval_seconds)
    else:
        limiter.space(key, 0.0)
