"""How far behind the scoring worker is: its consumer group's lag on the snapshots topic.

The worker commits a partition's offset only once the rows of the events before it are in ClickHouse
(DESIGN.md, principle 2), so ``end offset - committed offset``, summed over the partitions, is the
number of snapshots received that no figure includes yet. Read with Kafka's admin API (ListOffsets and
OffsetFetch: two requests, no consumer group joined, nothing committed). Used by the api
(``GET /v1/status``) and by the simulator, which holds back the rest of its back-fill while the worker
is busy (services/ingest/simulate.py).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from kafka.admin import KafkaAdminClient, OffsetSpec
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from services.common.kafka import admin_client
from services.common.names import Topic
from services.common.settings import Settings


@dataclass(frozen=True, slots=True)
class Lag:
    """The scoring group's position on the snapshots topic at ``checked_at`` (monotonic seconds).

    ``committed`` is what the group has committed (0 on a partition it never committed), ``behind`` the
    records past it; ``group_known`` is False when the group has committed nothing on the topic yet
    (no worker ever ran, or the first one has not finished its first batch)."""

    end: int
    committed: int
    behind: int
    partitions: int
    group_known: bool
    checked_at: float


def committed_offsets(admin: KafkaAdminClient, group: str, topic: str) -> dict[int, int]:
    """Partition -> the offset ``group`` committed on ``topic`` (partitions without one left out).

    A new cluster creates its offsets topic when the first group appears, and a group moving between
    coordinators answers "not available" for a moment: such retriable errors read as nothing committed
    yet (the caller asks again); others raise KafkaError."""
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    except KafkaError as exc:
        if not getattr(exc, "retriable", False):
            raise
        offsets = {}
    return {
        tp.partition: meta.offset
        for tp, meta in offsets.items()
        if isinstance(tp, TopicPartition) and tp.topic == topic and meta.offset >= 0
    }


def read_lag(admin: KafkaAdminClient, settings: Settings, topic: Topic = Topic.ACCOUNT_SNAPSHOTS) -> Lag:
    """The scoring group's lag now, through ``admin`` (the caller's, kept open between calls).

    A topic that does not exist yet has no lag. Retriable errors (a coordinator not available yet on a
    new cluster) count as "nothing committed yet"; others raise KafkaError."""
    name = settings.topic(topic)
    described = [t for t in admin.describe_topics([name]) if t.get("error_code", 0) == 0]
    parts = [TopicPartition(name, p["partition_index"]) for t in described for p in t.get("partitions") or []]
    if not parts:
        return Lag(0, 0, 0, 0, False, time.monotonic())
    ends = admin.list_partition_offsets(dict.fromkeys(parts, OffsetSpec.LATEST))
    committed = committed_offsets(admin, settings.scoring_group(), name)
    end_by_partition = {tp.partition: max(0, found.offset) for tp, found in ends.items()}
    behind = sum(max(0, end - committed.get(p, 0)) for p, end in end_by_partition.items())
    return Lag(
        end=sum(end_by_partition.values()),
        committed=sum(min(committed.get(p, 0), end) for p, end in end_by_partition.items()),
        behind=behind,
        partitions=len(parts),
        group_known=bool(committed),
        checked_at=time.monotonic(),
    )


def scoring_lag(settings: Settings, timeout_s: float = 5.0) -> Lag:
    """:func:`read_lag` with an admin client of its own (closed before returning)."""
    admin = admin_client(settings, "barometre-lag", timeout_s)
    try:
        return read_lag(admin, settings)
    finally:
        admin.close()


class Progress:
    """The group's consumption rate, from the lags seen over the last ``window_s`` seconds (pure)."""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self._seen: deque[tuple[float, int]] = deque()

    def add(self, lag: Lag) -> None:
        if self._seen and lag.committed < self._seen[-1][1]:
            self._seen.clear()  # offsets went back (a new topic, a reset group): start again
        self._seen.append((lag.checked_at, lag.committed))
        while len(self._seen) > 2 and lag.checked_at - self._seen[1][0] >= self.window_s:
            self._seen.popleft()

    def rate(self) -> float | None:
        """Records committed a second over the window; None until two samples a second apart."""
        if len(self._seen) < 2:
            return None
        (t0, c0), (t1, c1) = self._seen[0], self._seen[-1]
        if t1 - t0 < 1.0:
            return None
        return (c1 - c0) / (t1 - t0)

    def seconds_to_catch_up(self, lag: Lag) -> float | None:
        """``lag.behind`` at the recent rate; 0 when nothing is behind, None when the rate is unknown or 0."""
        if lag.behind == 0:
            return 0.0
        rate = self.rate()
        if rate is None or rate <= 0:
            return None
        return lag.behind / rate
