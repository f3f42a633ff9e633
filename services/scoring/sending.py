"""Sending records so that a batch's offsets can wait for them: returns once Kafka acknowledged each.

The worker commits a batch's offsets only after what the batch sends (dead letters, alert candidates,
alerts, incidents) is safe: :func:`send_acked` queues the records on a topic, waits for the broker's
acknowledgements (the producer sends with acks=all), and sends again only the records that failed, for as
long as it takes (``Health`` hears of it: :attr:`Retrying.KAFKA_SENDS`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

from services.common.retry import Health, Retry, Retrying


class Sendable(Protocol):
    """A topic as the worker sends to it (a Faust topic): ``send`` queues a record and returns a future
    that resolves once Kafka acknowledged it."""

    async def send(self, *, key: Any = ..., value: Any = ...) -> Awaitable[Any]: ...


async def send_acked(
    topic: Sendable, records: Sequence[tuple[bytes | None, bytes]], what: str, health: Health
) -> None:
    """Send ``records`` to ``topic`` and return once Kafka acknowledged every one (acks=all), however
    long it takes: the batch's offsets must not be committed before they are safe."""
    pending = list(records)

    async def send_pending() -> None:
        nonlocal pending
        results: list[object] = []
        try:
            # send() only queues the record; awaiting its future waits for the acknowledgement.
            futures = [await topic.send(key=key, value=value) for key, value in pending]
            results = list(await asyncio.gather(*futures, return_exceptions=True))
        except Exception as exc:  # the producer itself failed: resend them all
            results = [exc] * len(pending)
        pending = [
            pair for pair, result in zip(pending, results, strict=True) if isinstance(result, Exception)
        ]
        if pending:  # only those again
            raise next(r for r in results if isinstance(r, Exception))

    detail = f"{what} sends failing, retrying"
    await Retry(f"{what} sends (the worker waits)", health, Retrying.KAFKA_SENDS, detail).acall(send_pending)
