"""Changelogs written straight to Kafka, for ``bench/scoring.py``'s recovery and memory phases.

Running the worker through a year of daily snapshots of 300,000 accounts (110 million events) to fill
its state table would take days: these phases write the table's changelog topic themselves, as the
worker would have left it, then start the worker on it. Records are the worker's own format
(``processor.AccountState`` bytes, keyed by the account id's bytes, on the partition the murmur2
partitioner gives the key: that of the account's snapshots), so Faust recovers them as its own:

* :func:`year_states`: for each given account, its state after a year of daily points ending the day
  before ``until`` (counts drawn once per template; a few hundred templates, the account id spliced in:
  a series holds its account id, and derived event ids follow from it);
* :func:`filler_states`: small one-point states of made-up accounts, to make a changelog of a million
  records (what the recovery target is about).
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.partitioner.default import murmur2

from services.common.events import AccountSnapshot
from services.common.names import AccountStatus
from services.scoring.maths import DAY_MS, AccountSeries, DailyPoint, intervals_from_points, to_ms
from services.scoring.processor import AccountState

STATE_TABLE = "account-state"  # services.scoring.app's table name
TEMPLATES = 256
_SERIES_HEADER = struct.Struct("<BH")  # format version, len(account id): AccountSeries.to_bytes


def changelog_topic(group: str) -> str:
    """The state table's changelog topic, as Faust names it (``<app id>-<table>-changelog``)."""
    return f"{group}-{STATE_TABLE}-changelog"


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's (and kafka-python's) default partitioner gives ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass
class _Template:
    first_seen: int
    series_tail: bytes  # the series' bytes after its account id
    spans: tuple[tuple[int, int], ...]


def _templates(until_ms: int, days: int, staleness_ms: int, n: int) -> list[_Template]:
    rng = random.Random(14)
    first_day = until_ms // DAY_MS - days
    out = []
    for _ in range(n):
        followers = rng.randrange(50, 200_000)
        posts = rng.randrange(0, 200)
        points = []
        for d in range(days):
            followers = max(0, followers + rng.randrange(-20, 60))
            at = (first_day + d) * DAY_MS + 9 * 3_600_000 + rng.randrange(0, 600_000)
            points.append(
                DailyPoint.with_derived_id(
                    "t:t",
                    at,
                    followers,
                    AccountStatus.ACTIVE,
                    posts + rng.randrange(0, 10),
                    rng.randrange(0, 5_000),
                    rng.randrange(0, 50),
                    rng.randrange(0, 3),
                )
            )
        series = AccountSeries.from_points("t:t", points)
        data = series.to_bytes()
        tail = data[_SERIES_HEADER.size + len(b"t:t") :]
        out.append(_Template(points[0].observed_at, tail, intervals_from_points(series.points, staleness_ms)))
    return out


def _state_bytes(account_id: str, entity_id: str, handle: str | None, t: _Template) -> bytes:
    account = account_id.encode()
    entity = entity_id.encode()
    handle_b = b"" if handle is None else handle.encode()
    head = AccountState._HEADER.pack(
        1, t.first_seen, len(entity), 0 if handle is None else len(handle_b) + 1, len(t.spans)
    )
    spans = struct.pack(f"<{2 * len(t.spans)}q", *(v for span in t.spans for v in span))
    series = _SERIES_HEADER.pack(1, len(account)) + account + t.series_tail
    return b"".join((head, entity, handle_b, spans, series))


def year_states(
    snapshots: Sequence[AccountSnapshot], until_ms: int, days: int, staleness_ms: int
) -> Iterator[tuple[bytes, bytes]]:
    """(key, state) of each account of ``snapshots`` after ``days`` daily points before ``until_ms``'s
    day (checked: the first state reads back with ``days`` points)."""
    templates = _templates(until_ms, days, staleness_ms, TEMPLATES)
    for i, s in enumerate(snapshots):
        value = _state_bytes(s.account_id, s.entity_id or "", s.handle, templates[i % len(templates)])
        if i == 0:
            back = AccountState.from_bytes(value)
            assert back.series.account_id == s.account_id and len(back.series) == days, "bad state bytes"
        yield s.account_id.encode(), value


def filler_states(n: int, at_ms: int, staleness_ms: int) -> Iterator[tuple[bytes, bytes]]:
    """``n`` one-point states of made-up accounts (``x:recovery<i>``) observed at ``at_ms`` (one state
    built, the account id spliced into it; checked: the first reads back as that account's)."""
    point = DailyPoint.with_derived_id("t:t", at_ms, 1_000, AccountStatus.ACTIVE, 1, 2, 3, 0)
    series = AccountSeries.from_points("t:t", [point])
    tail = series.to_bytes()[_SERIES_HEADER.size + len(b"t:t") :]
    template = _Template(at_ms, tail, intervals_from_points(series.points, staleness_ms))
    for i in range(n):
        account_id = f"x:recovery{i:08d}"
        value = _state_bytes(account_id, "E", None, template)
        if i == 0:
            back = AccountState.from_bytes(value)
            assert back.series.account_id == account_id and len(back.series) == 1, "bad state bytes"
        yield account_id.encode(), value


def create_changelog(bootstrap: str, topic: str, partitions: int, replication: int) -> None:
    """Create ``topic`` as the worker would (compacted, ``partitions``), unless it exists."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        admin.create_topics(
            [NewTopic(topic, partitions, replication, topic_configs={"cleanup.policy": "compact"})]
        )
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def write_changelog(
    bootstrap: str, topic: str, partitions: int, records: Iterable[tuple[bytes, bytes]]
) -> tuple[int, int]:
    """Send ``records`` to ``topic`` (each on its key's partition) in record batches; return (records,
    bytes of keys and values). Acknowledged by Kafka when it returns."""

    async def go() -> tuple[int, int]:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", max_request_size=16 * 2**20, linger_ms=5
        )
        await producer.start()
        n = size = 0
        try:
            batches = [producer.create_batch() for _ in range(partitions)]
            futures: list[asyncio.Future[object]] = []
            for key, value in records:
                p = partition_of(key, partitions)
                while batches[p].append(key=key, value=value, timestamp=None) is None:
                    futures.append(await producer.send_batch(batches[p], topic, partition=p))
                    batches[p] = producer.create_batch()
                n += 1
                size += len(key) + len(value)
                if len(futures) > 200:
                    await asyncio.gather(*futures)
                    futures = []
            for p, batch in enumerate(batches):
                if batch.record_count():
                    futures.append(await producer.send_batch(batch, topic, partition=p))
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        return n, size

    return asyncio.run(go())


def snapshot_of(value: bytes) -> AccountSnapshot:
    return AccountSnapshot.from_event_bytes(value)


__all__ = [
    "changelog_topic",
    "create_changelog",
    "filler_states",
    "partition_of",
    "snapshot_of",
    "to_ms",
    "write_changelog",
    "year_states",
]
