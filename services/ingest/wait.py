"""``import --wait``: block until the scoring worker has consumed (and so written) given offsets.

The worker commits a partition's offset only after the rows of the events before it are in ClickHouse
(DESIGN.md, principle 2), so "the group's committed offset ≥ the offset after our last record" on every
partition we wrote means everything we published is visible through the API.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from kafka.admin import KafkaAdminClient

from services.common.kafka import client_security
from services.common.lag import committed_offsets
from services.common.names import Topic
from services.common.settings import Settings


class WaitTimeout(TimeoutError):
    """The consumer group did not reach the offsets in time."""


def behind(committed: Mapping[int, int], wanted: Mapping[int, int]) -> dict[int, int]:
    """Partitions still short of ``wanted``, with how many records they lack (pure)."""
    return {p: end - committed.get(p, 0) for p, end in wanted.items() if committed.get(p, 0) < end}


def wait_until_consumed(
    settings: Settings,
    end_offsets: Mapping[int, int],
    *,
    group: str | None = None,
    topic: Topic = Topic.ACCOUNT_SNAPSHOTS,
    timeout: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    poll_s: float = 0.5,
) -> None:
    """Return once ``group`` has committed at least ``end_offsets`` on ``topic``; WaitTimeout otherwise."""
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        client_id="barometre-wait",
        **client_security(settings),
    )
    name = settings.topic(topic)
    group = group or settings.scoring_group()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            committed = committed_offsets(admin, group, name)
            missing = behind(committed, end_offsets)
            if not missing:
                return
            if on_progress is not None:
                on_progress(sum(missing.values()))
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(
                    f"the scoring worker ({group}) still lacks {sum(missing.values())} records after "
                    f"{timeout:g}s: is `barometre scoring` running?"
                )
            time.sleep(poll_s)
    finally:
        admin.close()
