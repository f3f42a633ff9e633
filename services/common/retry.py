"""How every service waits out a failing dependency: one retry helper and one health object.

A dependency that fails (ClickHouse, Kafka, the network) is waited out rather than given up on: the
operation is tried again after 0.5 s, then 1, 2, 4... seconds, never more than ``max_s`` apart, for as long
as it takes. :class:`Retry` says it once: it runs an operation (a function, or a coroutine function) with
tenacity's loop and back-off, and adds what the services need around it:

- what is retried: ``transient`` decides (by default, any :class:`Exception`); anything else, e.g. a
  statement ClickHouse rejects, which would fail again on every try, is raised at once;
- a stop (a :class:`threading.Event`, thread-safe): once set, a wait ends at once and raises what
  ``stopped`` makes of the last failure (the scoring worker's shutdown must not wait on a back-off);
- the first failure is logged as a warning, the recovery after failures as info, and a
  :class:`Health` hears both: the service's readiness reports what is being retried.

:class:`Health` is what a service is retrying now, by :class:`Retrying` (one enum for every service): the
scoring worker's ``/readyz`` answers from it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import tenacity

log = logging.getLogger(__name__)

T = TypeVar("T")


class Retrying(StrEnum):
    """What a service may be retrying (a :class:`Health` key)."""

    CLICKHOUSE_READS = "clickhouse_reads"  # scoring: reading old history while scoring a batch
    CLICKHOUSE_WRITES = "clickhouse_writes"  # scoring: a batch's rows
    KAFKA_SENDS = "kafka_sends"  # scoring: dead letters, alert candidates, alerts, incidents
    CHANGELOG = "changelog"  # scoring: a batch's states on their changelog
    BATCHES = "batches"  # scoring: a batch failing on a bug of ours, retried in place
    ALERT_READS = "alert_reads"  # the alert stage: silences, active accounts
    ALERT_WRITES = "alert_writes"  # the alert stage: alerts and incidents
    KAFKA_TOPICS = "kafka_topics"  # a service creating its topics at start
    KAFKA_CONSUMER = "kafka_consumer"  # a service starting its consumer


class Health:
    """What a service is retrying now: each :class:`Retrying` that fails -> what fails, for people.
    Thread-safe (a write retried in a worker thread sets it, a web page reads it)."""

    def __init__(self) -> None:
        self._failing: dict[Retrying, str] = {}
        self._lock = threading.Lock()

    def failing(self, what: Retrying, detail: str) -> None:
        with self._lock:
            self._failing[what] = detail

    def recovered(self, what: Retrying) -> None:
        with self._lock:
            self._failing.pop(what, None)

    def get(self, what: Retrying) -> str | None:
        """What fails of ``what``; None when it does not."""
        with self._lock:
            return self._failing.get(what)

    def __contains__(self, what: object) -> bool:
        with self._lock:
            return what in self._failing

    def failures(self) -> dict[Retrying, str]:
        """Everything that fails now."""
        with self._lock:
            return dict(self._failing)


def any_exception(exc: BaseException) -> bool:
    """The default of :attr:`Retry.transient`: every :class:`Exception` (not a cancellation, nor an exit)."""
    return isinstance(exc, Exception)


@dataclass(frozen=True)
class Retry:
    """Run an operation until it succeeds, waiting out failures (module docstring).

    ``name`` says what is retried in the logs ("ClickHouse write"); ``health`` and ``key`` are told of
    each failure (with ``detail``) and of the success that ends them. ``on_failure`` hears each failed
    attempt (drop a broken client, count a metric). ``sleep`` (sync callers only) replaces the wait
    between attempts, e.g. one that gives up after a while by raising.
    """

    name: str
    health: Health | None = None
    key: Retrying | None = None
    detail: str = "failing, retrying"
    first_s: float = 0.5
    max_s: float = 30.0
    transient: Callable[[BaseException], bool] = any_exception
    stop: threading.Event | None = None
    stopped: Callable[[BaseException], BaseException] | None = None
    on_failure: Callable[[BaseException], None] | None = None
    sleep: Callable[[float], object] | None = None
    traceback: bool = False  # log the first failure with its traceback (a bug of ours, not a dependency)

    def call(self, operation: Callable[[], T]) -> T:
        """``operation()``, retried until it succeeds (from a thread, or a synchronous program)."""
        last: list[BaseException] = []

        def wait(seconds: float) -> None:
            if self.stop is None or not self.stop.is_set():
                if self.sleep is not None:
                    self.sleep(seconds)
                elif self.stop is not None:
                    self.stop.wait(seconds)
                else:
                    time.sleep(seconds)
            self._check_stop(last)

        result = tenacity.Retrying(sleep=wait, **self._policy(last))(operation)
        self._succeeded(bool(last))
        return result

    async def acall(self, operation: Callable[[], Awaitable[T]]) -> T:
        """``await operation()``, retried until it succeeds. With a :attr:`stop`, each wait takes a
        thread of the default executor (a threading event can be set from anywhere)."""
        last: list[BaseException] = []

        async def wait(seconds: float) -> None:
            if self.stop is None:
                await asyncio.sleep(seconds)
            elif not self.stop.is_set():
                await asyncio.to_thread(self.stop.wait, seconds)
            self._check_stop(last)

        retrying = tenacity.AsyncRetrying(sleep=wait, **self._policy(last))

        async def attempt() -> T:
            # tenacity awaits only what a coroutine *function* returns: a lambda returning an awaitable
            # would be taken for a sync function, its coroutine for a result.
            return await operation()

        result: T = await retrying(attempt)
        self._succeeded(bool(last))
        return result

    def _policy(self, last: list[BaseException]) -> dict[str, Any]:
        """What tenacity is told, sync or async: for ever, waiting first_s then doubling (tenacity:
        multiplier * 2 ** (attempt - 1)) up to max_s, on the transient failures, raising the last."""
        return {
            "stop": tenacity.stop_never,
            "wait": tenacity.wait_exponential(multiplier=self.first_s, max=self.max_s),
            "retry": tenacity.retry_if_exception(self.transient),
            "before_sleep": self._before_sleep(last),
            "reraise": True,
        }

    def _before_sleep(self, last: list[BaseException]) -> Callable[[tenacity.RetryCallState], None]:
        def failed(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            assert exc is not None  # before_sleep follows a failed attempt
            last[:] = [exc]
            self._failed(exc, first=state.attempt_number == 1)

        return failed

    def _check_stop(self, last: list[BaseException]) -> None:
        if self.stop is not None and self.stop.is_set():
            cause = last[0]
            raise (self.stopped(cause) if self.stopped else cause) from cause

    def _failed(self, exc: BaseException, *, first: bool) -> None:
        # Said once: at a call's first failure, unless another call already said it (health).
        already = self.health is not None and self.key is not None and self.key in self.health
        if first and not already:
            log.warning("%s failed, retrying: %s", self.name, exc, exc_info=exc if self.traceback else None)
        if self.health is not None and self.key is not None:
            self.health.failing(self.key, self.detail)
        if self.on_failure is not None:
            self.on_failure(exc)

    def _succeeded(self, after_failures: bool) -> None:
        if after_failures:
            log.info("%s works again", self.name)
        if self.health is not None and self.key is not None:
            self.health.recovered(self.key)
