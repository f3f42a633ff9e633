"""Fixes to faust-streaming's offset bookkeeping that the scoring worker depends on (faust 0.15.x).

Faust commits, per partition, the end of the first run of consecutive offsets in ``Consumer._acked[tp]``
(``Consumer._new_offset``). Offsets the fetcher never saw (a compacted topic, transaction markers) are
recorded as a *gap* (``Consumer._add_gap``) and merged into that list at commit time, so that the run
goes on across them. Two faults of that gap detection stalled our commits (robinhood/faust#559, #625):

1. **Seeking back after resuming.** At the end of a recovery, faust resumes the stream partitions and
   only then awaits ``Consumer.perform_seek()`` (``faust/tables/recovery.py``), a round trip to the
   group coordinator. The fetcher, already running for the changelogs, delivers the first records of
   the stream partitions meanwhile, and ``perform_seek`` then sets ``_read_offset[tp]`` (the last offset
   delivered) back to the committed offset. The next record delivered looks like it skipped every
   offset since: those offsets, already delivered and acknowledged, are recorded as a gap, and the
   gap is appended to ``_acked[tp]`` a second time. ``_new_offset`` cuts its run at the first
   duplicate, so each commit (one a second) moves a partition's offset by one: after a restart of
   the scoring worker with state to recover, its offsets lagged the written rows by minutes (the
   bench's "commit stall", 50-150 duplicates a partition). Worse, records delivered but not yet
   written can be inside such a gap, which lets a commit pass them before their rows are in
   ClickHouse.
2. **The record after a real gap.** ``_drain_messages`` calls ``_add_gap(tp, last + 1, offset)`` and
   ``_add_gap`` records ``[last + 1, offset]`` *inclusive*: the record being delivered counts as
   acknowledged before it is processed, and once acked it is in ``_acked`` twice (same stall).

The fix: ``perform_seek`` remembers the last offset delivered before it rewound ``_read_offset``, and
``_add_gap`` records only offsets after that one and before the record being delivered, i.e. offsets
that were really never delivered. The remembered offsets are forgotten with the partition
(``on_partitions_revoked``), when faust forgets its own read offsets. As a safety net against other
paths to duplicates, ``_new_offset`` removes duplicates from ``_acked[tp]`` first and logs a warning.

Our own acknowledgements play no part: the agent acks each event once (``take_events``), and
``app.hold_back`` only marks messages acknowledged *without* telling the consumer, which adds nothing
to ``_acked``.

A third fault lost records after every start or rebalance with records waiting (seen in
``tests/integration/scoring/test_state_recovery.py`` under CPU load, 3 to 4 runs in 10):

3. **Queues cleared while streams flow.** The recovery resumes ``app.flow_control`` when it starts
   reading the changelogs (``Recovery._restart_recovery``), and when it is done it resumes the stream
   partitions, awaits ``perform_seek`` and calls ``app.flow_control.resume()`` once more
   (``Recovery.on_recovery_completed``). Every ``resume`` clears the channels' queues, so the records
   fetched in between, already handed to the conductor (flow control was active) and past the read
   offset, were dropped: never delivered again, never acknowledged, and ``_new_offset`` commits the
   first run of acknowledged offsets even when it does not start at the committed one. Delivery logs
   showed the first record of a partition (its account's new snapshot) fetched right after the seek
   and gone. The fix: ``resume`` clears the queues only when flow control was suspended (what
   clearing is for: events queued before a rebalance). Records delivered twice because of the seek
   are processed twice, which is idempotent.
4. **Stream records before the recovery.** ``Consumer.on_partitions_assigned`` makes every assigned
   partition active; the app pauses them only after a few awaits. A stream record fetched in that
   window reaches the agent once the recovery resumes flow control, before the tables are recovered
   (a state scored as empty). The fix: partitions assigned while flow control is suspended (a
   rebalance) start paused, except the tables' changelogs, which the recovery reads; the recovery
   resumes the stream partitions when it is done, as it always did.

One more patch is for speed, not a fault:

5. **A task per record.** ``_drain_messages`` hands each fetched record to the conductor with
   ``wait_first(callback(message), suspend_flow.wait())``, which makes four tasks (the callback, the
   flow-control wait, the consumer's stopped and crashed waits) and an ``asyncio.wait`` for every
   record, though the callback nearly always finishes at once (it puts the record on a stream's queue
   that has room). The patched ``wait_first`` first runs the callback up to its first suspension; if it
   finished, that is the result and nothing else is scheduled. Otherwise (a full queue, a held lock) it
   goes on as before, the callback continuing from where it stopped. bench/scoring.py shows the gain
   in worker CPU an event (docs/DEVELOPING.md, "Benchmarks"). ``_drain_messages`` is the consumer's
   only caller of ``wait_first``.

The patches are applied once, on import (``services.scoring.app`` imports this module), for the
faust versions whose consumer code they were written against; on another version nothing is patched
and a warning says to check again (``tests/unit/scoring/test_faust_patches.py`` fails then).

They reach into private parts of faust-streaming and mode-streaming, which change between patch
releases: the worker starts only on the exact releases they were tested with (:data:`TESTED_VERSIONS`,
pinned in constraints.txt). :func:`require_tested_versions`, called before the worker starts, stops it
(a message naming the installed and the tested versions, exit status 1) on any other release, unless
``BAROMETRE_SCORING_ALLOW_UNTESTED_FAUST=true`` (for whoever tries a new release: a loud warning then).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import logging
from collections.abc import Awaitable, Callable, Generator, Iterable
from typing import Any

import faust
from faust.transport.consumer import Consumer, ensure_TP
from mode.services import WaitResults
from mode.utils.queues import FlowControlEvent

log = logging.getLogger(__name__)

# The faust-streaming releases whose Consumer these patches were read against and tested with.
PATCHED_VERSIONS = ("0.15.",)
_READ_BEFORE_SEEK = "_barometre_read_before_seek"  # per consumer: TP -> last offset delivered


# The exact releases the patches were tested with (constraints.txt pins them): the worker refuses others.
TESTED_VERSIONS = {"faust-streaming": "0.15.3", "mode-streaming": "0.7.1"}


def applies_to(version: str) -> bool:
    """Whether the patches are written for faust ``version``."""
    return version.startswith(PATCHED_VERSIONS)


def installed_versions() -> dict[str, str]:
    """The installed release of each package of :data:`TESTED_VERSIONS` ("not installed" when absent)."""
    found = {}
    for name in TESTED_VERSIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def untested(installed: dict[str, str]) -> str | None:
    """What differs from the tested releases, in words, or None when ``installed`` is exactly them."""
    wrong = [f"{n} {installed.get(n, 'not installed')} (tested: {v})" for n, v in TESTED_VERSIONS.items()
             if installed.get(n) != v]  # fmt: skip
    if not wrong:
        return None
    return (
        "the scoring worker's patches to faust (services/scoring/faust_patches.py) were tested only with "
        + " and ".join(f"{n}=={v}" for n, v in TESTED_VERSIONS.items())
        + "; installed: "
        + ", ".join(wrong)
        + ". Install the tested releases (pip install -c constraints.txt .), or set "
        "BAROMETRE_SCORING_ALLOW_UNTESTED_FAUST=true to run anyway while testing a new release."
    )


def require_tested_versions(allow_untested: bool, installed: dict[str, str] | None = None) -> None:
    """Stop the process (``SystemExit`` with the message, exit status 1) unless faust-streaming and
    mode-streaming are exactly the tested releases; with ``allow_untested``, log a loud warning instead."""
    problem = untested(installed_versions() if installed is None else installed)
    if problem is None:
        return
    if allow_untested:
        log.warning("UNTESTED faust release, allowed by BAROMETRE_SCORING_ALLOW_UNTESTED_FAUST: %s", problem)
        return
    raise SystemExit(f"barometre scoring: refusing to start: {problem}")


def _read_before_seek(consumer: Consumer) -> dict[Any, int]:
    marks: dict[Any, int] | None = consumer.__dict__.get(_READ_BEFORE_SEEK)
    if marks is None:
        marks = consumer.__dict__[_READ_BEFORE_SEEK] = {}
    return marks


def _patch_perform_seek(original: Callable[[Consumer], Awaitable[None]]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def perform_seek(self: Consumer) -> None:
        # faust 0.15's Consumer.perform_seek, plus the marks: the fetcher goes on delivering during
        # the round trip, so the last offsets delivered are the ones read right before the rewind.
        read_offset = self._read_offset
        committed_offsets = await self.seek_to_committed()
        marks = _read_before_seek(self)
        for tp, offset in read_offset.items():
            if offset is not None:
                marks[tp] = max(offset, marks.get(tp, offset))
        read_offset.update(
            {
                tp: offset if offset is not None and offset >= 0 else None
                for tp, offset in committed_offsets.items()
            }
        )
        self._committed_offset.update(
            {
                ensure_TP(tp): offset if offset else None
                for tp, offset in committed_offsets.items()
                if offset is not None
            }
        )

    return perform_seek


def _patch_add_gap(original: Callable[[Consumer, Any, int, int], Awaitable[None]]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def _add_gap(self: Consumer, tp: Any, offset_from: int, offset_to: int) -> None:
        # offset_to is the record being delivered: not a gap (fault 2).
        last_delivered = _read_before_seek(self).get(tp)
        if last_delivered is not None:  # delivered before a seek rewound _read_offset (fault 1)
            offset_from = max(offset_from, last_delivered + 1)
        await original(self, tp, offset_from, offset_to - 1)

    return _add_gap


def _patch_on_partitions_revoked(original: Callable[..., Awaitable[None]]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def on_partitions_revoked(self: Consumer, revoked: Iterable[Any]) -> None:
        marks = _read_before_seek(self)
        for tp in revoked:
            marks.pop(tp, None)
        await original(self, revoked)

    return on_partitions_revoked


def _patch_new_offset(original: Callable[[Consumer, Any], int | None]) -> Callable[..., Any]:
    @functools.wraps(original)
    def _new_offset(self: Consumer, tp: Any) -> int | None:
        acked = self._acked[tp]
        if len(set(acked)) != len(acked):
            log.warning(
                "faust acknowledged offsets of %s more than once (%d duplicates); ignoring the duplicates",
                tp,
                len(acked) - len(set(acked)),
            )
            acked[:] = sorted(set(acked))
        return original(self, tp)

    return _new_offset


def _patch_flow_resume(original: Callable[[FlowControlEvent], None]) -> Callable[..., Any]:
    @functools.wraps(original)
    def resume(self: FlowControlEvent) -> None:
        if self.is_active():  # already flowing: what the queues hold is live (fault 3)
            return
        original(self)

    return resume


def _patch_set_active_tps(original: Callable[[Consumer, Any], set[Any]]) -> Callable[..., Any]:
    @functools.wraps(original)
    def _set_active_tps(self: Consumer, tps: Any) -> set[Any]:
        active = original(self, tps)
        if not self.app.flow_control.is_active():  # a rebalance: streams wait for the recovery (fault 4)
            streams = {tp for tp in active if not self._is_changelog_tp(tp)}
            active.difference_update(streams)
            self._paused_partitions.update(streams)
        return active

    return _set_active_tps


class _Resumed:
    """Awaiting this continues ``coro``, which has already run up to its first suspension (``yielded``,
    what it gave the event loop to wait on). It passes on, both ways, what a task and the coroutine
    exchange: values sent, exceptions thrown in (a cancellation), and the coroutine's return value."""

    __slots__ = ("coro", "yielded")

    def __init__(self, coro: Any, yielded: Any) -> None:
        self.coro, self.yielded = coro, yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, yielded = self.coro, self.yielded
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # thrown in by the task (a cancellation): the coroutine handles it
                try:
                    yielded = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration as done:
                    return done.value


async def _resume(coro: Any, yielded: Any) -> Any:
    return await _Resumed(coro, yielded)


def _close(awaitables: Iterable[Any]) -> None:
    for other in awaitables:
        if asyncio.iscoroutine(other):
            other.close()  # never started: no "never awaited" warning


def _patch_wait_first(original: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def wait_first(self: Consumer, *coros: Any, timeout: Any = None) -> Any:
        first, rest = coros[0], coros[1:]
        if asyncio.iscoroutine(first) and not (self._stopped.is_set() or self._crashed.is_set()):
            try:
                yielded = first.send(None)  # run the callback now, up to its first suspension (5)
            except StopIteration as done:
                _close(rest)
                return WaitResults([first], [done.value], False)
            except BaseException:
                _close(rest)
                raise
            coros = (_resume(first, yielded), *rest)
        return await original(self, *coros, timeout=timeout)

    return wait_first


def apply() -> bool:
    """Patch faust's Consumer (once); return whether the patches are in place."""
    if getattr(Consumer, "_barometre_patched", False):
        return True
    if not applies_to(faust.__version__):
        log.warning(
            "faust %s: the offset-commit patches of %s were written for %s and are NOT applied; "
            "check whether that version still needs them",
            faust.__version__,
            __name__,
            ", ".join(f"{v}x" for v in PATCHED_VERSIONS),
        )
        return False
    # The wrapped methods keep their signatures; mypy cannot follow the assignment to a class.
    Consumer.perform_seek = _patch_perform_seek(Consumer.perform_seek)  # type: ignore[method-assign]
    Consumer._add_gap = _patch_add_gap(Consumer._add_gap)  # type: ignore[method-assign]
    Consumer.on_partitions_revoked = _patch_on_partitions_revoked(  # type: ignore[method-assign]
        Consumer.on_partitions_revoked
    )
    Consumer._new_offset = _patch_new_offset(Consumer._new_offset)  # type: ignore[method-assign]
    Consumer._set_active_tps = _patch_set_active_tps(Consumer._set_active_tps)  # type: ignore[method-assign]
    Consumer.wait_first = _patch_wait_first(Consumer.wait_first)  # type: ignore[method-assign]
    FlowControlEvent.resume = _patch_flow_resume(FlowControlEvent.resume)  # type: ignore[method-assign]
    Consumer._barometre_patched = True  # type: ignore[attr-defined]
    return True


apply()
