"""Rate limiting for the pollers: reading the platforms' rate-limit headers, and waiting before requests.

Two halves:

- pure functions that read what a platform says about its limits (``Retry-After``, the ``RateLimit-*``
  and ``X-RateLimit-*`` families, Facebook's usage headers) into numbers and instants, testable alone;
- :class:`RateLimiter`, which remembers per *key* (a host, an instance) until when requests must wait
  and how far apart they must be, and makes :meth:`RateLimiter.acquire` wait accordingly.

Waiting uses an injected clock and sleep, so tests advance a fake clock instead of really sleeping.
A wait longer than ``max_wait`` is not slept through: :meth:`~RateLimiter.acquire` raises
:class:`RateLimited` with the instant polling may resume. A poll is a batch job that should end in
minutes and report what it could not do, not hang until YouTube's quota resets at midnight; the pause
is remembered, so the next poll before that instant stops at once instead of hammering the platform.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from services.ingest.sources.pollers.errors import FailureReason, RateLimited

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]

# Reset values at or above this are Unix timestamps (2001-09-09 onwards), below it delays in seconds.
# The IETF RateLimit draft says "delta seconds", but Bluesky's servers (and GitLab, X) send an epoch
# timestamp under the same name; no sane window lasts 30 years, so the two cannot be confused.
_EPOCH_THRESHOLD = 1_000_000_000

# Below this share of the window's budget, requests are spread evenly over the rest of the window
# rather than spent at full speed and then stopped dead by a 429.
LOW_BUDGET_SHARE = 0.1


@dataclass
class _KeyState:
    not_before: datetime | None = None  # no request before this instant
    reason: FailureReason = FailureReason.RATE_LIMITED
    detail: str = ""
    interval: float = 0.0  # seconds between two requests while the budget is low
    last_request: datetime | None = None


class RateLimiter:
    """Per-key pauses and pacing; one per poller, keyed by host so one Mastodon server's limit is its own."""

    def __init__(self, *, clock: Clock, sleep: Sleep, max_wait: float) -> None:
        self._clock = clock
        self._sleep = sleep
        self._max_wait = max_wait
        self._keys: dict[str, _KeyState] = {}

    def _state(self, key: str) -> _KeyState:
        return self._keys.setdefault(key, _KeyState())

    def pause_until(self, key: str, until: datetime, reason: FailureReason, detail: str) -> None:
        """No request to ``key`` before ``until``; an earlier pause never shortens a longer one."""
        state = self._state(key)
        if state.not_before is None or until > state.not_before:
            state.not_before = until
            state.reason = reason
            state.detail = detail

    def pause(self, key: str, seconds: float, reason: FailureReason, detail: str) -> None:
        """No request to ``key`` for ``seconds`` from now."""
        self.pause_until(key, self._clock() + timedelta(seconds=max(0.0, seconds)), reason, detail)

    def space(self, key: str, interval: float) -> None:
        """Keep ``interval`` seconds between requests to ``key`` (0 stops pacing)."""
        self._state(key).interval = max(0.0, interval)

    def observe_budget(
        self, key: str, *, remaining: int | None, limit: int | None, reset_at: datetime | None, source: str
    ) -> None:
        """Apply a "remaining requests until reset" report: stop at zero, spread out when it runs low."""
        if remaining is None or reset_at is None:
            return
        now = self._clock()
        seconds_left = (reset_at - now).total_seconds()
        if remaining <= 0:
            self.pause_until(
                key, reset_at, FailureReason.RATE_LIMITED, f"{source}: no request left until reset"
            )
            return
        if limit and remaining < limit * LOW_BUDGET_SHARE and seconds_left > 0:
            self.space(key, seconds_left / remaining)
        else:
            self.space(key, 0.0)

    async def acquire(self, key: str) -> None:
        """Wait until a request to ``key`` may be sent; RateLimited if that is more than ``max_wait`` away."""
        state = self._state(key)
        while True:
            now = self._clock()
            ready = now
            if state.not_before is not None and state.not_before > ready:
                ready = state.not_before
            if state.interval and state.last_request is not None:
                ready = max(ready, state.last_request + timedelta(seconds=state.interval))
            wait = (ready - now).total_seconds()
            if wait <= 0:
                state.last_request = now
                return
            if wait > self._max_wait:
                blocked = state.not_before is not None and state.not_before >= ready
                reason = state.reason if blocked else FailureReason.RATE_LIMITED
                detail = state.detail if blocked else "requests are paced by the platform's rate limit"
                raise RateLimited(
                    reason,
                    f"{detail}; paused until {ready.astimezone(UTC).isoformat(timespec='seconds')}",
                    resume_at=ready,
                )
            # Loop rather than return after sleeping: a response to a concurrent request may have
            # pushed the pause further while this one slept.
            await self._sleep(wait)


# --- Header readers. Each returns None for a missing or unreadable header: a malformed header from a
# platform must not break polling, only lose the hint it carried.


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` (RFC 9110): delay in seconds, or an HTTP date; as seconds from ``now``."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def parse_reset(value: str | None, now: datetime) -> datetime | None:
    """A rate-limit reset header as an instant.

    Accepts delta seconds (the IETF draft), a Unix timestamp (Bluesky, X), an ISO 8601 timestamp
    (Mastodon: ``2024-05-01T12:05:00.123456Z``) and an HTTP date.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(number) or number < 0:
            return None
        if number >= _EPOCH_THRESHOLD:
            return datetime.fromtimestamp(number, UTC)
        return now + timedelta(seconds=number)
    try:
        when = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def parse_int(value: str | None) -> int | None:
    """An integer header such as ``RateLimit-Remaining``; the first item of a list (``10, 100;w=60``)."""
    if value is None:
        return None
    text = value.split(",")[0].split(";")[0].strip()
    try:
        return int(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class Budget:
    """What a ``*RateLimit-*`` header family says: requests left in the window, its size, its end."""

    remaining: int | None
    limit: int | None
    reset_at: datetime | None


def read_budget(headers: Mapping[str, str], now: datetime, prefix: str) -> Budget | None:
    """The budget in ``<prefix>Limit``, ``<prefix>Remaining`` and ``<prefix>Reset``; None when absent.

    ``prefix`` is ``"RateLimit-"`` (IETF draft, Bluesky) or ``"X-RateLimit-"`` (Mastodon and many others).
    """
    remaining = parse_int(headers.get(f"{prefix}Remaining"))
    if remaining is None:
        return None
    return Budget(
        remaining=remaining,
        limit=parse_int(headers.get(f"{prefix}Limit")),
        reset_at=parse_reset(headers.get(f"{prefix}Reset"), now),
    )


@dataclass(frozen=True)
class Usage:
    """Facebook's share of a rate limit used, in percent, and when access returns if it was cut."""

    percent: float
    regain_seconds: float | None  # from ``estimated_time_to_regain_access`` (minutes), when > 0


_USAGE_FIELDS = ("call_count", "total_cputime", "total_time")


def _usage_of(item: object) -> tuple[float, float | None] | None:
    if not isinstance(item, dict):
        return None
    shares = [float(v) for k, v in item.items() if k in _USAGE_FIELDS and isinstance(v, int | float)]
    if not shares:
        return None
    regain = item.get("estimated_time_to_regain_access")
    regain_seconds = float(regain) * 60 if isinstance(regain, int | float) and regain > 0 else None
    return max(shares), regain_seconds


def parse_facebook_usage(headers: Mapping[str, str]) -> Usage | None:
    """The highest usage in ``X-App-Usage``, ``X-Page-Usage`` and ``X-Business-Use-Case-Usage``.

    ``X-App-Usage`` and ``X-Page-Usage`` are one object of percentages (``call_count``,
    ``total_cputime``, ``total_time``); ``X-Business-Use-Case-Usage`` maps a business id to a list of
    such objects, one per use-case type, which may add ``estimated_time_to_regain_access`` in minutes.
    Whichever limit is closest to full is the one that will cut access first.
    """
    found: list[tuple[float, float | None]] = []
    for name in ("X-App-Usage", "X-Page-Usage"):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            usage = _usage_of(json.loads(raw))
        except ValueError:
            continue
        if usage is not None:
            found.append(usage)
    raw = headers.get("X-Business-Use-Case-Usage")
    if raw is not None:
        try:
            document = json.loads(raw)
        except ValueError:
            document = None
        if isinstance(document, dict):
            for items in document.values():
                for item in items if isinstance(items, list) else [items]:
                    usage = _usage_of(item)
                    if usage is not None:
                        found.append(usage)
    if not found:
        return None
    regains = [regain for _, regain in found if regain is not None]
    return Usage(percent=max(share for share, _ in found), regain_seconds=max(regains) if regains else None)
