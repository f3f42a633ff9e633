"""Meta's Graph API, as the three pollers that speak it share it: Facebook (graph.facebook.com),
Instagram (graph.facebook.com, business discovery) and Threads (graph.threads.net / graph.threads.com).
:class:`GraphPoller` is their base: it sends the token, reads Meta's usage headers and classifies
Graph's errors, so each platform module is only about its own endpoints and messages.

An error is ``{"error": {"message", "type", "code", "error_subcode", "is_transient", "error_user_title",
"error_user_msg", "fbtrace_id"}}``, usually with HTTP 400 whatever the cause (rate limits included),
so the ``code`` decides, not the status (Graph API "Handling errors"):

- 190 (invalid or expired token) and 102 (session): the token is refused, polling stops;
- 10 and 200-299 (a permission is missing): polling stops, retrying with the same token cannot succeed
  (a poller may make an exception: Facebook, while reading a page's posts, only turns activity off);
- 4, 17, 32, 341, 613 and the 80000-range business use-case codes: a rate limit; the usage headers
  say how long until access returns, else ``facebook_usage_pause_seconds``;
- 1, 2 and anything marked ``is_transient``: retried with back-off;
- 803 and 100/33 ("does not exist"), and for Instagram and Threads 110 (with Instagram's 2207013
  "Cannot find User"): the object is not found.

Usage headers (``X-App-Usage``, ``X-Page-Usage``, ``X-Business-Use-Case-Usage``: percentages of the
limits used) slow requests down above ``facebook_usage_slowdown_percent`` and pause them above
``facebook_usage_pause_percent``, so a poller backs off before Meta throttles the app.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from services.common.settings import Settings
from services.ingest.sources.pollers.base import AccountRef, Poller, PollResult, api_url, bearer
from services.ingest.sources.pollers.errors import FailureReason, StopPolling
from services.ingest.sources.pollers.http import Fail, Outcome, Retry, host_key, json_object
from services.ingest.sources.pollers.ratelimit import parse_facebook_usage

AUTH_CODES = frozenset({102, 190})
PERMISSION_CODES = frozenset({10, *range(200, 300)})
RATE_LIMIT_CODES = frozenset({4, 17, 32, 341, 613, *range(80000, 80015)})
TRANSIENT_CODES = frozenset({1, 2})
ALIAS_NOT_FOUND_CODE = 803  # "Some of the aliases you requested do not exist"
INVALID_USER_ID_CODE = 110  # "Invalid user id"
INVALID_PARAMETER_CODE, DOES_NOT_EXIST_SUBCODE = 100, 33
# Instagram business discovery: "Invalid user id" / "Cannot find User" — no such username, or one that
# is not a professional (business or creator) account, which the API cannot read: the two look alike.
IG_USER_NOT_FOUND_SUBCODE = 2207013


# Instagram usernames, which Threads shares: up to 30 letters, digits, periods and underscores.
USERNAME = re.compile(r"[a-z0-9._]{1,30}")


def by_username(accounts: Sequence[AccountRef], result: PollResult, kind: str) -> list[AccountRef]:
    """The accounts whose id part is an Instagram username (``kind``: "an Instagram username"), which
    is how Instagram and Threads read accounts; the others fail ``unsupported``."""
    readable: list[AccountRef] = []
    for ref in accounts:
        if USERNAME.fullmatch(ref.lookup):
            readable.append(ref)
        else:
            result.fail(
                ref, FailureReason.UNSUPPORTED, f"{ref.lookup!r} is not {kind} (letters, digits, '.' and '_')"
            )
    return readable


def after_cursor(page: object) -> str | None:
    """The ``paging.cursors.after`` cursor of one page of a Graph list (an answer, or an edge of one),
    None when it has none."""
    paging = page.get("paging") if isinstance(page, dict) else None
    cursors = paging.get("cursors") if isinstance(paging, dict) else None
    after = cursors.get("after") if isinstance(cursors, dict) else None
    return after if isinstance(after, str) and after else None


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

    def not_found(self, codes: frozenset[int]) -> bool:
        """Whether Graph says the object asked for does not exist; ``codes`` are the error codes that
        mean so for the asking poller, besides 100/33."""
        return (
            self.code in codes
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


def graph_root(settings: Settings) -> str:
    """``{facebook_graph_url}/{facebook_graph_version}``, where Facebook and Instagram requests start."""
    return api_url(settings.facebook_graph_url, settings.facebook_graph_version)


class GraphPoller(Poller):
    """A poller of a Graph API: the token in the Authorization header (``_auth``), requests to the
    host of ``root`` under one rate-limit key (``_key``), Meta's usage headers observed and Graph's
    errors classified (see the module)."""

    follow_redirects = False  # the token must not follow a redirect elsewhere
    credential_env: ClassVar[str]  # the variable to fix when the token is refused
    permissions: ClassVar[str]  # what the token needs, said when Graph reports a missing permission
    not_found_codes: ClassVar[frozenset[int]] = frozenset({ALIAS_NOT_FOUND_CODE, INVALID_USER_ID_CODE})

    def __init__(self, settings: Settings, *, token: str, root: str, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self._root = root
        self._key = host_key(root)
        self._auth = bearer(token)
        self._slowdown_percent = settings.facebook_usage_slowdown_percent
        self._pause_percent = settings.facebook_usage_pause_percent
        self._slowdown_interval = settings.facebook_slowdown_interval_seconds
        self._usage_pause = settings.facebook_usage_pause_seconds

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
                f"{self.label} reports {usage.percent:g}% of a rate limit used",
            )
        elif usage.percent >= self._slowdown_percent:
            self._limiter.space(key, self._slowdown_interval)
        else:
            self._limiter.space(key, 0.0)

    def _classify(self, response: httpx.Response) -> Outcome:
        """By the Graph error's code (see the module), by status when the body is not a Graph error.
        Raises :class:`StopPolling` for a refused token or a missing permission."""
        if 200 <= response.status_code < 300:
            return None
        error = graph_error(response)
        if error is None:
            return super()._classify(response)
        if error.code in AUTH_CODES:
            raise StopPolling(
                FailureReason.UNAUTHORIZED,
                f"{self.label} refused the access token ({error.detail}); "
                f"set {self.credential_env} to a valid token",
            )
        if error.code in PERMISSION_CODES:
            return self._permission_missing(error)
        if error.code in RATE_LIMIT_CODES:
            usage = parse_facebook_usage(response.headers)
            pause = usage.regain_seconds if usage is not None and usage.regain_seconds else self._usage_pause
            return Retry(FailureReason.RATE_LIMITED, error.detail, delay=pause)
        if error.not_found(self.not_found_codes):
            return Fail(FailureReason.NOT_FOUND, error.detail)
        if error.code in TRANSIENT_CODES or error.transient or error.status >= 500:
            return Retry(FailureReason.HTTP_ERROR, error.detail)
        return Fail(FailureReason.HTTP_ERROR, f"HTTP {error.status}, {error.detail}")

    def _permission_missing(self, error: GraphError) -> Outcome:
        """Graph refused a permission: polling stops, the same token cannot succeed."""
        raise StopPolling(
            FailureReason.UNAUTHORIZED,
            f"the {self.label} token lacks a permission ({error.detail}); {self.permissions}",
        )
