"""Platform pollers: read the public figures of registered accounts from each platform's API and turn
them into AccountSnapshot events (``source = "poller:<name>"``).

- ``base``: the interface (:class:`AccountRef`, :class:`Poller`, :class:`PollResult`);
- ``http``: the request machinery every poller (and discovery) shares: retries, back-off, rate limits;
- ``ratelimit``: the platforms' rate-limit headers, and the limiter that waits for them;
- ``errors``: why an account could not be polled, and why a poll stopped;
- ``graph``: Meta's Graph API (errors, usage headers), shared by ``facebook``, ``instagram``, ``threads``;
- ``bluesky``, ``mastodon``, ``facebook``, ``youtube``, ``x``, ``instagram``, ``threads``: one module per
  platform;
- ``runner``: poll a list of accounts across platforms.
"""

from services.ingest.sources.pollers.base import AccountRef, Poller, PollFailure, PollResult
from services.ingest.sources.pollers.errors import FailureReason, PollerConfigError
from services.ingest.sources.pollers.runner import configured_platforms, open_pollers, poll_accounts

__all__ = [
    "AccountRef",
    "FailureReason",
    "PollFailure",
    "PollResult",
    "Poller",
    "PollerConfigError",
    "configured_platforms",
    "open_pollers",
    "poll_accounts",
]
