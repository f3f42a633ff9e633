"""A batch's new states into a Faust table: local store at once, changelog in record batches.

Setting ``table[key] = value`` makes Faust send one changelog record through its producer buffer: a
future, a callback, a partitioner call and a serializer lookup for every key, a large share of the
scoring worker's CPU when every event changes a state (bench/scoring.py, py-spy). A batch of
snapshots changes thousands of states at once, so :func:`store_states` writes them the way Kafka
carries them anyway: one record batch per partition (aiokafka's ``create_batch``/``send_batch``,
records built in C), into the same changelog topic, with the same raw key and value bytes Faust would
have sent. Recovery is Faust's own and cannot tell the difference.

Each state goes to the changelog partition of the snapshots it comes from (the table is co-partitioned
with the snapshots topic, and a key's records always come from one partition): the partition recovery
reads when that source partition is assigned. :func:`store_states` returns once Kafka acknowledged
every record (acks=all), retrying what failed with back-off, so a batch's offsets are never committed
before its states are safe; the persisted offsets of a RocksDB store move as Faust's would.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from faust.types import TP

from services.common.retry import Health, Retry, Retrying

log = logging.getLogger(__name__)


class StateTooLarge(ValueError):
    """A state that no record batch takes: no retry can send it. (aiokafka takes any record into an
    empty batch, so this only guards against that changing.)"""


Changes = Mapping[int, Sequence[tuple[bytes, bytes]]]  # partition -> (key, value) in order


async def store_states(
    table: Any,
    changes: Changes,
    *,
    health: Health | None = None,
) -> None:
    """Put ``changes`` in ``table``'s local store and on its changelog topic; return once Kafka
    acknowledged them all, retrying what failed (``health`` hears of it: :attr:`Retrying.CHANGELOG`).
    :class:`StateTooLarge` is raised, not retried."""
    store = table.data
    for items in changes.values():
        for key, value in items:
            store[key] = value
    topic = table.changelog_topic.get_topic_name()
    pending = {partition: items for partition, items in changes.items() if items}

    async def send_pending() -> None:
        nonlocal pending
        producer = table.app.producer._ensure_producer()  # aiokafka's, started with the app
        sends: list[tuple[int, int, asyncio.Future[Any]]] = []  # partition, records, batch future
        failed: dict[int, Sequence[tuple[bytes, bytes]]] = {}
        first_error: BaseException | None = None
        for partition, items in pending.items():
            try:
                sends.extend((partition, n, fut) for n, fut in await _send(producer, topic, partition, items))
            except StateTooLarge:
                raise
            except Exception as exc:  # e.g. no connection: the whole partition again
                failed[partition], first_error = items, first_error or exc
        results = await asyncio.gather(*(fut for _, _, fut in sends), return_exceptions=True)
        last: dict[int, int] = {}
        for (partition, n, _), result in zip(sends, results, strict=True):
            if isinstance(result, BaseException):
                failed[partition], first_error = pending[partition], first_error or result
            else:  # a batch's metadata carries its base offset
                last[partition] = max(last.get(partition, -1), result.offset + n - 1)
        for partition, offset in last.items():
            if partition not in failed:
                store.set_persisted_offset(TP(topic, partition), offset)
        pending = failed
        if isinstance(first_error, Exception):  # only the failed partitions again
            raise first_error
        if first_error is not None:  # a send cancelled under us (not this task): retried all the same
            raise RuntimeError(f"a changelog send was cancelled: {first_error!r}") from first_error

    await Retry(
        "Table changelog sends (the worker waits)",
        health,
        Retrying.CHANGELOG,
        "state changelog sends failing, retrying",
        transient=lambda exc: isinstance(exc, Exception) and not isinstance(exc, StateTooLarge),
    ).acall(send_pending)


async def _send(
    producer: Any, topic: str, partition: int, items: Sequence[tuple[bytes, bytes]]
) -> list[tuple[int, asyncio.Future[Any]]]:
    """Send ``items`` to ``topic``'s ``partition`` in as few record batches as they fit in: for each
    batch, its number of records and its future (resolved with the batch's base offset)."""
    futures: list[tuple[int, asyncio.Future[Any]]] = []
    batch = producer.create_batch()
    size = 0
    for key, value in items:
        while batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start another
            if size == 0:
                raise StateTooLarge(f"a state of {len(value):,} bytes does not fit in a record batch")
            futures.append((size, await producer.send_batch(batch, topic, partition=partition)))
            batch, size = producer.create_batch(), 0
        size += 1
    if size:
        futures.append((size, await producer.send_batch(batch, topic, partition=partition)))
    return futures
