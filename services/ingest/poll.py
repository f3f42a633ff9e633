"""``barometre poll``: read every registered account's figures from the platforms' public APIs and
publish them as snapshots, once or every ``interval``.

The accounts are those registered with ``barometre import accounts`` on a platform that has a poller
and its credentials (Bluesky and Mastodon need none; Facebook and YouTube need a token or key).
Failures (an account not found, a refused token, a spent quota) are reported, never fatal to the
others; the same poller objects are kept across rounds so that a pause a platform asked for holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from services.common import registry
from services.common.clickhouse import make_client
from services.common.kafka import ensure_topics
from services.common.names import Platform
from services.common.settings import Settings
from services.ingest.publisher import Publisher
from services.ingest.sources.pollers.base import AccountRef
from services.ingest.sources.pollers.runner import configured_platforms, open_pollers, poll_accounts

log = logging.getLogger(__name__)


def load_refs(settings: Settings, platforms: Iterable[Platform] | None = None) -> list[AccountRef]:
    """The registered accounts a poller may read on ``platforms`` (default: those with a configured
    poller); a row that cannot be polled as registered is logged and left out."""
    names = [p.value for p in (configured_platforms(settings) if platforms is None else platforms)]
    client = make_client(settings)
    try:
        rows = registry.account_rows(client, settings.clickhouse_database, names)
    finally:
        client.close()
    refs = []
    for account_id, platform, entity_id, handle, platform_id in rows:
        try:
            refs.append(
                AccountRef.create(
                    platform,
                    account_id=account_id,
                    handle=handle,
                    entity_id=entity_id,
                    platform_id=platform_id,
                )
            )
        except ValueError as exc:
            log.warning("skipping %s: %s", account_id, exc)
    return refs


async def poll_forever(
    settings: Settings,
    interval_s: float | None,
    *,
    report: Callable[[str], None] = print,
) -> int:
    """Poll every registered account (once when ``interval_s`` is None); return snapshots published."""
    ensure_topics(settings)
    publisher = Publisher(settings, client_id="barometre-poller")
    total = 0
    try:
        async with open_pollers(settings) as pollers:
            while True:
                refs = load_refs(settings)  # accounts registered since the last round are included
                started = datetime.now(UTC)
                async for result in poll_accounts(refs, pollers, started):
                    records = [(s.account_id.encode(), s.to_event_bytes()) for s in result.snapshots]
                    await asyncio.to_thread(publisher.publish, records)
                    total += len(records)
                    report(
                        f"{result.platform.value}: {len(records)} snapshots, {len(result.failures)} failures"
                    )
                    for failure in result.failures:
                        report(f"  {failure.account_id}: {failure.reason.value}: {failure.detail}")
                    if result.stopped:
                        report(f"  stopped: {result.stopped}")
                if interval_s is None:
                    return total
                elapsed = (datetime.now(UTC) - started).total_seconds()
                await asyncio.sleep(max(0.0, interval_s - elapsed))
    finally:
        publisher.close()
