"""A small in-process cache of answers, keyed by the full query, so that a busy dashboard or a script
polling the same figure costs ClickHouse one query per key and per half-second, not one per request.

Policy (written down in docs/CONTRACT.md): an answer is served as is while it is younger than ``fresh``
(0.5 s); between ``fresh`` and ``max_age`` (1 s) it is still served, and the first request to see it
that old starts one refresh in the background; an answer older than ``max_age`` is never served: the
request waits for a new one. Ages count from the moment the query that produced the answer started, so
whatever a client receives reflects the tables at most ``max_age`` earlier.

Concurrent requests for a key that has no servable answer share one computation (single flight), so
a burst of identical requests after a quiet spell sends one query, not a hundred. Failures are not
cached: every waiter gets the exception and the next request tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import anyio
from anyio import CapacityLimiter
from prometheus_client import Counter

log = logging.getLogger(__name__)

T = TypeVar("T")

CACHE_LOOKUPS = Counter(
    "barometre_api_cache_lookups_total",
    "Answer cache look-ups: hit (fresh), stale (served while refreshing) or miss (computed).",
    ["result"],
)


@dataclass
class _Entry:
    value: Any
    at: float  # clock() when the computation started


class AnswerCache:
    """See the module docstring. Must be used from one event loop (the application's)."""

    def __init__(
        self,
        limiter: CapacityLimiter | None,
        *,
        fresh: float = 0.5,
        max_age: float = 1.0,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= fresh <= max_age:
            raise ValueError("the cache needs 0 <= fresh <= max_age")
        self.fresh, self.max_age, self.max_entries = fresh, max_age, max_entries
        self._limiter = limiter
        self._clock = clock
        self._entries: dict[Hashable, _Entry] = {}
        self._inflight: dict[Hashable, asyncio.Task[Any]] = {}

    async def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The answer for ``key``: cached when young enough, else from ``compute`` (run in a worker
        thread, at most one at a time per key)."""
        entry = self._entries.get(key)
        if entry is not None:
            age = self._clock() - entry.at
            if age < self.fresh:
                CACHE_LOOKUPS.labels("hit").inc()
                return cast(T, entry.value)
            if age < self.max_age:
                CACHE_LOOKUPS.labels("stale").inc()
                if key not in self._inflight:
                    self._start(key, compute)
                return cast(T, entry.value)
        CACHE_LOOKUPS.labels("miss").inc()
        task = self._inflight.get(key) or self._start(key, compute)
        # shield: a client that goes away does not cancel the computation others may be waiting for.
        return cast(T, await asyncio.shield(task))

    def _start(self, key: Hashable, compute: Callable[[], T]) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(self._run(key, compute))
        self._inflight[key] = task
        task.add_done_callback(self._finished)
        return task

    async def _run(self, key: Hashable, compute: Callable[[], T]) -> T:
        try:
            started = self._clock()
            value = await anyio.to_thread.run_sync(compute, limiter=self._limiter)
            self._store(key, _Entry(value, started))
            return value
        finally:
            self._inflight.pop(key, None)

    @staticmethod
    def _finished(task: asyncio.Task[Any]) -> None:
        # A background refresh may fail with nobody awaiting it: log it (and mark it retrieved).
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.debug("answer computation failed: %s", exc)

    def _store(self, key: Hashable, entry: _Entry) -> None:
        current = self._entries.pop(key, None)
        if current is not None and current.at > entry.at:
            entry = current  # a computation that started later already stored its answer
        self._entries[key] = entry
        if len(self._entries) > self.max_entries:
            now = self._clock()
            for k in [k for k, e in self._entries.items() if now - e.at >= self.max_age]:
                del self._entries[k]
            while len(self._entries) > self.max_entries:
                del self._entries[next(iter(self._entries))]  # the least recently stored

    def clear(self) -> None:
        """Forget every answer (tests)."""
        self._entries.clear()
