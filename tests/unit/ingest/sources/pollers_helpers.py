"""What the poller tests share: the recorded answers in ``poller_fixtures/``, settings pointing every
platform at a :class:`~tests.fixtures.replay.LocalService`, pollers on fake time, and polling them.

The ``server`` and ``time`` fixtures are in this folder's ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from services.common.settings import Settings
from services.ingest.sources.pollers import AccountRef, Poller, PollResult
from tests.fixtures.replay import NOW, FakeTime, LocalService

FIXTURES = Path(__file__).parent / "poller_fixtures"
# Test credentials; the tests that check how a token is sent compare with these.
X_TOKEN = "AAAAAAAAAAAAAAAAAAAAAtestbearer"
INSTAGRAM_USER = "17841405309211844"  # the operator's own Instagram professional account
INSTAGRAM_TOKEN = "EAAGinstagramTestToken"
THREADS_TOKEN = "THAAtestThreadsToken"
T = TypeVar("T")
P = TypeVar("P", bound=Poller)


def fixture(name: str) -> Any:
    """A recorded answer of ``poller_fixtures/``, parsed."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def settings_for(server: LocalService, **overrides: Any) -> Settings:
    """Settings sending every platform's requests to ``server``, with test credentials. Retries are
    pinned (4 attempts, back-off from 1 s, pauses up to 300 s waited through), so the delays tests
    expect do not follow the defaults; the HTTP timeout is short, so the timeout tests wait a few
    tenths of a second."""
    values: dict[str, Any] = {
        "bluesky_api_url": server.url,
        "mastodon_url_template": server.url + "/{instance}",
        "facebook_graph_url": server.url,
        "facebook_graph_version": "v25.0",
        "facebook_token": "EAAGm0PX4ZCpsBAtest",
        "youtube_api_url": server.url,
        "youtube_api_key": "AIzaSyTestKey0123456789",
        "x_api_url": server.url,
        "x_bearer_token": X_TOKEN,
        "instagram_business_account_id": INSTAGRAM_USER,
        "instagram_token": INSTAGRAM_TOKEN,
        "threads_api_url": server.url,
        "threads_api_version": "v1.0",
        "threads_token": THREADS_TOKEN,
        "poller_timeout_seconds": 2.0,
        "poller_max_attempts": 4,
        "poller_backoff_seconds": 1.0,
        "poller_max_wait_seconds": 300.0,
    }
    values.update(overrides)
    return Settings(**values)


def make(cls: type[P], server: LocalService, time: FakeTime, **overrides: Any) -> P:
    """A ``cls`` poller of ``server`` on fake time."""
    # random() = 0.5: the jitter is in the middle of its range, so back-off delays are exact.
    return cls(settings_for(server, **overrides), clock=time.clock, sleep=time.sleep, random=lambda: 0.5)


async def poll(poller: Poller, refs: Sequence[AccountRef]) -> PollResult:
    """``refs`` polled at NOW, the poller closed afterwards."""
    async with poller:
        return await poller.poll(refs, NOW)


def poll_now(poller: Poller, refs: Sequence[AccountRef]) -> PollResult:
    """:func:`poll`, run to its end."""
    return run(poll(poller, refs))


def by_account(result: PollResult) -> dict[str, Any]:
    """The snapshot or the failure of each account, by account id; each account answered once."""
    out: dict[str, Any] = {s.account_id: s for s in result.snapshots}
    out.update({f.account_id: f for f in result.failures})
    assert len(out) == len(result.snapshots) + len(result.failures), "an account answered twice"
    return out
