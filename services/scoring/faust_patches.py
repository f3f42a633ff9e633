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

A sixth fault let commits pass a record that was never written (``tests/faults/test_worker_group.py``:
one event of 30,000 in no table, in one run of four, after a worker joined a group and another was
killed):

6. **Commits that need not start at the committed offset.** ``_new_offset`` returns the end of the
   first run of acknowledged offsets; it checks that the run starts at the committed offset with
   ``min(acked) - committed > 1``, which lets one missing record through (the committed offset is the
   next record to read, not the last one read), and not at all while the committed offset is unknown:
   offset 0 (``perform_seek`` turns it into ``None``), and from a rebalance's assignment until the
   recovery's seek, while acknowledgements of batches that were in flight across the revocation
   still arrive. A record dropped before it was processed was then committed past, never read again.
   The fix: a run is committed only when it starts exactly at the committed offset; nothing is
   committed on a partition between its assignment and the seek; the seek keeps offset 0, and counts
   the record before the committed one as the last delivered, so that a record really missing there
   (compacted away, deleted by retention) is a gap like any other. A record held back this way stops
   its partition's commits (visible as consumer lag, and logged after :data:`HOLE_WARNING_S`) until it
   is read again at the next rebalance or restart, instead of being lost. With no offset committed at
   all (a new group), faust's own rule applies.

With commits held to that rule, the same scenario then stalled instead (one run in twelve): a partition's
commits waited for ever on a record no worker would deliver again. Two more faults:

7. **Records of a fetch handed out after a seek.** ``getmany`` hands out the records of one fetch one
   by one, awaiting in between; when the recovery's ``perform_seek`` rewinds a partition meanwhile,
   the rest of the old fetch is still handed out, moving ``_read_offset`` past the records fetched
   again from the committed offset, which ``_drain_messages`` then drops as already read ("DROPPED
   MESSAGE ROFF"). Those of the dropped records the old fetch did not hand out are never processed:
   plain faust commits past them (the lost event), the rule of fault 6 waits for them for ever. The
   fix: ``perform_seek`` counts the seeks of each partition, and ``getmany`` skips what is left of a
   fetch for a partition sought since it was fetched (those records are fetched again). Only partitions
   aiokafka really moves count: it seeks those with a committed offset above 0 and leaves the others
   where they are, whose fetched records would otherwise never come again.
8. **A refused commit taken as done.** ``_commit_offsets`` records the offsets as committed even when
   the group refused them (a rebalance, "already rebalanced"): the records they cover are then
   acknowledged again only above that offset (``ack`` ignores older ones) although Kafka still has the
   older one. The fix: after a refused commit, the committed offsets are what they were.

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

Each patch, the upstream report of its fault (faust-streaming/faust unless named otherwise), and the test
of ``tests/unit/scoring/test_faust_patches.py`` showing that plain faust still has it:

1. ``perform_seek``, ``_add_gap`` — robinhood/faust#559 and #625 —
   ``test_plain_faust_commits_one_offset_at_a_time_after_that_seek``;
2. ``_add_gap`` — robinhood/faust#559 — ``test_plain_faust_counts_the_record_after_a_gap_twice``;
3. ``FlowControlEvent.resume`` — #221 (records fetched around a rebalance) — ``test_plain_faust_clears_them``;
4. ``_set_active_tps`` — #216 (streams resumed before the seek) —
   ``test_plain_faust_lets_them_be_fetched_at_once``;
5. ``wait_first`` — none, a cost rather than a fault — ``test_plain_faust_makes_four_tasks_a_record``;
6. ``_new_offset``, ``on_partitions_assigned``, ``perform_seek`` — #606 (open) and #312 —
   ``test_plain_faust_commits_past_it``, ``test_plain_faust_commits_the_batch_past_the_cleared_records``;
7. ``getmany``, ``perform_seek`` — #221 (prefetched records after a rebalance) —
   ``test_plain_faust_hands_them_out_and_then_drops_the_records_read_again``;
8. ``_commit_offsets`` — none found — ``test_plain_faust_takes_a_refused_commit_as_done``.

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
import bisect
import functools
import importlib.metadata
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable
from typing import Any

import faust
from faust.transport.consumer import Consumer, ensure_TP
from mode.services import WaitResults
from mode.utils.queues import FlowControlEvent

log = logging.getLogger(__name__)

# The faust-streaming releases whose Consumer these patches were read against and tested with.
PATCHED_VERSIONS = ("0.15.",)
_READ_BEFORE_SEEK = "_barometre_read_before_seek"  # per consumer: TP -> last offset delivered
_AWAITING_SEEK = "_barometre_awaiting_seek"  # per consumer: TPs assigned, not yet sought
_SEEKS = "_barometre_seeks"  # per consumer: TP -> how many seeks
_HOLES = "_barometre_holes"  # per consumer: TP -> (offset not acknowledged, since, warned)
HOLE_WARNING_S = 60.0  # a record holding commits back this long is logged


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


def _awaiting_seek(consumer: Consumer) -> set[Any]:
    """The partitions assigned and not yet sought to their committed offsets (fault 6)."""
    tps: set[Any] | None = consumer.__dict__.get(_AWAITING_SEEK)
    if tps is None:
        tps = consumer.__dict__[_AWAITING_SEEK] = set()
    return tps


def _seeks(consumer: Consumer) -> dict[Any, int]:
    """Per partition: how many times ``perform_seek`` rewound it (fault 7)."""
    seeks: dict[Any, int] | None = consumer.__dict__.get(_SEEKS)
    if seeks is None:
        seeks = consumer.__dict__[_SEEKS] = {}
    return seeks


def _holes(consumer: Consumer) -> dict[Any, tuple[int, float, bool]]:
    """Per partition: the offset holding commits back, since when, and whether that was logged."""
    holes: dict[Any, tuple[int, float, bool]] | None = consumer.__dict__.get(_HOLES)
    if holes is None:
        holes = consumer.__dict__[_HOLES] = {}
    return holes


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
        seeks = _seeks(self)
        for tp, offset in committed_offsets.items():
            tp = ensure_TP(tp)
            _awaiting_seek(self).discard(tp)
            if offset is not None and offset > 0:  # what aiokafka seeks; it leaves the others where they are
                seeks[tp] = seeks.get(tp, 0) + 1
            if offset is None or offset < 0:  # nothing committed yet: faust's own rules (fault 6)
                read_offset[tp] = None
                continue
            # The committed offset is the next record to read: the one before it counts as the last
            # delivered, so that a record missing at the committed offset is a gap like any other
            # (faust counts the committed one as delivered, and turns offset 0 into "none").
            read_offset[tp] = offset - 1
            self._committed_offset[tp] = offset
        log.debug("seek to committed %s (last delivered before: %s)", dict(committed_offsets), dict(marks))

    return perform_seek


def _patch_add_gap(original: Callable[[Consumer, Any, int, int], Awaitable[None]]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def _add_gap(self: Consumer, tp: Any, offset_from: int, offset_to: int) -> None:
        # faust 0.15's Consumer._add_gap with three bounds: offset_to is the record being delivered,
        # not a gap (fault 2); offsets delivered before a seek rewound _read_offset are not gaps either
        # (fault 1); and the committed offset is the next record to read, so a gap may start there
        # (faust starts gaps after it, fault 6).
        last_delivered = _read_before_seek(self).get(tp)
        if last_delivered is not None:
            offset_from = max(offset_from, last_delivered + 1)
        committed = self._committed_offset[tp]
        if committed is not None:
            offset_from = max(offset_from, committed)
        if offset_from < offset_to:
            gaps = self._gap[tp]
            gaps.addi(offset_from, offset_to)  # intervals exclude their end: offset_to is delivered
            await asyncio.sleep(0)  # as faust does: a long gap lets health checks answer
            gaps.merge_overlaps()

    return _add_gap


def _patch_on_partitions_revoked(original: Callable[..., Awaitable[None]]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def on_partitions_revoked(self: Consumer, revoked: Iterable[Any]) -> None:
        marks = _read_before_seek(self)
        for tp in revoked:
            marks.pop(tp, None)
            _holes(self).pop(tp, None)
        await original(self, revoked)

    return on_partitions_revoked


def _patch_on_partitions_assigned(original: Callable[..., Awaitable[None]]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def on_partitions_assigned(self: Consumer, assigned: set[Any], generation_id: int = 0) -> None:
        # Nothing is committed on these partitions until the recovery's seek says where they start
        # (fault 6): acknowledgements arriving meanwhile are from before the rebalance.
        _awaiting_seek(self).update(assigned)
        await original(self, assigned, generation_id)

    return on_partitions_assigned


def _merge_gaps(consumer: Consumer, tp: Any, acked: list[int]) -> None:
    """Add to ``acked`` the recorded gaps up to its last offset (they count as acknowledged), as
    faust's ``_new_offset`` does, and forget them."""
    gaps = consumer._gap[tp]
    if not gaps:
        return
    last = max(acked)
    found = sorted(gaps.overlap(0, last), key=lambda interval: interval.begin)
    if found:
        filled = [offset for interval in found for offset in range(interval.begin, interval.end)]
        acked.extend(filled)
        gaps.chop(0, max(filled[-1], last + 1))


def _patch_new_offset(original: Callable[[Consumer, Any], int | None]) -> Callable[..., Any]:
    @functools.wraps(original)
    def _new_offset(self: Consumer, tp: Any) -> int | None:
        # faust 0.15's Consumer._new_offset (the end of the first run of acknowledged offsets), but the
        # run must start at the committed offset (fault 6), and duplicates are ignored.
        if tp in _awaiting_seek(self):
            return None
        acked = self._acked[tp]
        if not acked:
            return None
        if len(set(acked)) != len(acked):
            log.warning(
                "faust acknowledged offsets of %s more than once (%d duplicates); ignoring the duplicates",
                tp,
                len(acked) - len(set(acked)),
            )
            acked[:] = set(acked)
        _merge_gaps(self, tp, acked)
        acked.sort()
        index = self._acked_index[tp]
        committed = self._committed_offset[tp]
        if committed is not None:
            stale = bisect.bisect_left(acked, committed)
            if stale:  # before the committed offset: committed already (ack() lets none in after)
                index.difference_update(acked[:stale])
                del acked[:stale]
            if not acked or acked[0] != committed:
                _hold(self, tp, committed)
                return None
        _holes(self).pop(tp, None)
        end = 1
        while end < len(acked) and acked[end] == acked[end - 1] + 1:
            end += 1
        run = acked[:end]
        del acked[:end]
        index.difference_update(run)
        new = run[-1] + 1
        log.debug("commit %s: %s -> %s", tp, committed, new)
        return new

    return _new_offset


def _hold(consumer: Consumer, tp: Any, offset: int) -> None:
    """Record that ``offset`` of ``tp``, the next to commit, is not acknowledged; say so once it has
    held every later record back for :data:`HOLE_WARNING_S`."""
    holes = _holes(consumer)
    now = time.monotonic()
    seen_offset, since, warned = holes.get(tp, (offset, now, False))
    if seen_offset != offset or tp not in holes:
        log.debug("commits of %s wait for offset %d", tp, offset)
        seen_offset, since, warned = offset, now, False
    if not warned and now - since >= HOLE_WARNING_S:
        log.warning(
            "offset %d of %s has not been acknowledged for %.0f s: nothing after it is committed until "
            "it is (a batch still retrying, or a record dropped: it is read again at the next rebalance "
            "or restart)",
            offset,
            tp,
            now - since,
        )
        warned = True
    holes[tp] = (seen_offset, since, warned)


def _patch_getmany(original: Callable[..., AsyncIterator[tuple[Any, Any]]]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def getmany(self: Consumer, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        # Records of one fetch, handed out one by one with awaits in between: a partition sought back
        # meanwhile (the recovery's perform_seek) is fetched again from its committed offset, so what
        # is left of the old fetch is not delivered (fault 7). The fetch returns right before the first
        # record is handed out, with no await in between: the count is taken then.
        seeks = _seeks(self)
        fetched: dict[Any, int] | None = None
        async for tp, message in original(self, timeout):
            if fetched is None:
                fetched = dict(seeks)
            if seeks.get(tp, 0) != fetched.get(tp, 0):
                continue
            yield tp, message

    return getmany


def _patch_commit_offsets(original: Callable[..., Awaitable[bool]]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def _commit_offsets(self: Consumer, offsets: Any, start_new_transaction: bool = True) -> bool:
        # faust records a commit's offsets as committed even when the group refused it (a rebalance:
        # "already rebalanced"); the next seek then finds the older offset in Kafka while the records
        # since were taken out of the acknowledged list: kept as they were, the offsets wait for the
        # rebalance's seek, which delivers those records again (fault 8).
        committed = self._committed_offset
        before = {tp: committed.get(tp) for tp in offsets}
        did_commit = await original(self, offsets, start_new_transaction=start_new_transaction)
        if not did_commit:
            for tp, offset in before.items():
                if offset is None:
                    committed.pop(tp, None)
                else:
                    committed[tp] = offset
        return did_commit

    return _commit_offsets


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
    Consumer.on_partitions_assigned = _patch_on_partitions_assigned(  # type: ignore[method-assign]
        Consumer.on_partitions_assigned
    )
    Consumer._new_offset = _patch_new_offset(Consumer._new_offset)  # type: ignore[method-assign]
    Consumer.getmany = _patch_getmany(Consumer.getmany)  # type: ignore[method-assign]
    Consumer._commit_offsets = _patch_commit_offsets(Consumer._commit_offsets)  # type: ignore[method-assign]
    Consumer._set_active_tps = _patch_set_active_tps(Consumer._set_active_tps)  # type: ignore[method-assign]
    Consumer.wait_first = _patch_wait_first(Consumer.wait_first)  # type: ignore[method-assign]
    FlowControlEvent.resume = _patch_flow_resume(FlowControlEvent.resume)  # type: ignore[method-assign]
    Consumer._barometre_patched = True  # type: ignore[attr-defined]
    return True


apply()
