"""The vocabulary of what can go wrong while polling, shared by the pollers, the rate limiter and the runner.

Errors are a policy here, not an accident: one account's failure is a :class:`FailureReason` in the
poll's result and the other accounts go on; only an interruption (:class:`Interrupted`) ends a poll
early, and even then every account not polled is reported with the reason.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum


class FailureReason(StrEnum):
    """Why an account could not be polled (``PollFailure.reason``), or why polling paused or stopped."""

    NOT_FOUND = "not_found"  # the platform does not know the account (deleted, renamed, or a typo)
    HIDDEN = "hidden"  # the account exists but does not show its audience (YouTube hidden subscribers)
    UNSUPPORTED = "unsupported"  # the reference cannot be polled (a Mastodon handle without its server)
    HTTP_ERROR = "http_error"  # an HTTP error that retrying does not fix, or 5xx until attempts ran out
    UNREACHABLE = "unreachable"  # timeouts or connection errors until attempts ran out
    RATE_LIMITED = "rate_limited"  # the platform asked to wait longer than the poll may wait
    QUOTA_EXCEEDED = "quota_exceeded"  # a daily quota is spent (YouTube)
    UNAUTHORIZED = "unauthorized"  # the token or key is invalid, expired or lacks a permission
    INVALID_RESPONSE = "invalid_response"  # the platform answered something that is not a valid snapshot
    NO_POLLER = "no_poller"  # no poller is configured for the account's platform
    INTERNAL_ERROR = "internal_error"  # a bug in barometre; logged with its traceback


class PollerConfigError(ValueError):
    """A poller cannot be built as configured (a missing token); raised at start-up, not mid-poll."""


class RequestFailed(Exception):
    """One request failed for good (not retryable, or out of attempts): its accounts fail, the rest go on."""

    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Interrupted(Exception):
    """Polling had to stop before its end; ``resume_at`` is when it may start again, if known."""

    def __init__(self, reason: FailureReason, message: str, resume_at: datetime | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.resume_at = resume_at


class StopPolling(Interrupted):
    """The whole poller cannot go on: its credentials are refused. The message says what to fix."""


class RateLimited(Interrupted):
    """Requests to one key (a host) must wait longer than a poll may wait."""
