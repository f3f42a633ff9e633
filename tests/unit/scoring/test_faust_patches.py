"""faust's offset bookkeeping with ``services.scoring.faust_patches``: the commit position follows the
acknowledged records through a seek back after a recovery and across a real gap, never past a record
not yet acknowledged; records queued while streams flow survive the recovery's last ``resume``, and
stream partitions assigned during a rebalance wait for the recovery; records go from the fetcher to the
streams without a task each, in order, waiting when a stream's queue is full and giving up when flow
control is suspended; plain faust still has the faults (so the patches still have a reason).

The consumer is faust's own (the aiokafka driver's ``Consumer`` of a real ``faust.App``), driven as its
fetcher drives it (``deliver`` mirrors the bookkeeping of ``Consumer._drain_messages``). The one call
that needs a broker, the group coordinator's committed offsets behind ``perform_seek``, answers from
``COMMITTED``.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import types
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import faust
import pytest
from click.testing import CliRunner
from faust.transport.conductor import Conductor
from faust.transport.consumer import Consumer
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from services.cli import main
from services.scoring import faust_patches

TOPIC = "account-snapshots.v1"
PART = TP(TOPIC, 0)
COMMITTED = 100


@pytest.fixture
def consumer() -> Iterator[Consumer]:
    loop = asyncio.new_event_loop()  # the worker's loop: faust's services take it when they start
    asyncio.set_event_loop(loop)
    app = faust.App("faust-patches-test", broker="kafka://127.0.0.1:9", store="memory://")
    consumer = cast(Consumer, app.consumer)
    # What the conductor does for a topic an agent consumes:
    cast(Conductor, app.topics)._acking_topics.add(TOPIC)

    async def seek_to_committed() -> Mapping[TP, int]:
        return {PART: COMMITTED}

    consumer.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
    yield consumer
    asyncio.set_event_loop(None)
    loop.close()


def unpatched(consumer: Consumer) -> Consumer:
    """``consumer`` with faust's own methods in place of the patched ones."""
    for name in (
        "perform_seek",
        "_add_gap",
        "on_partitions_revoked",
        "on_partitions_assigned",
        "_new_offset",
        "_set_active_tps",
        "wait_first",
        "getmany",
        "_commit_offsets",
    ):
        original = getattr(Consumer, name).__wrapped__
        setattr(consumer, name, types.MethodType(original, consumer))
    return consumer


def message(offset: int) -> ConsumerMessage:
    return ConsumerMessage(TOPIC, 0, offset, 0.0, 0, None, b"key", b"value", None)


async def deliver(consumer: Consumer, offset: int) -> ConsumerMessage:
    """What ``Consumer._drain_messages`` does with a record before and after handing it to the streams."""
    last = consumer._read_offset[PART]
    if last is None or offset >= last:
        if offset - (last or 0) > 1 and last:
            await consumer._add_gap(PART, last + 1, offset)
        consumer._read_offset[PART] = offset
    return message(offset)


async def restart_with_recovery(consumer: Consumer) -> None:
    """A worker restarting with state: assigned at the committed offset, records delivered and acked
    once the recovery resumes the partition, then the recovery's ``perform_seek`` (more records are
    delivered during its round trip to the coordinator), then more records."""
    await consumer.perform_seek()  # on assignment
    for offset in range(COMMITTED, COMMITTED + 40):
        consumer.ack(await deliver(consumer, offset))

    async def seek_to_committed() -> Mapping[TP, int]:
        for offset in range(COMMITTED + 40, COMMITTED + 50):
            consumer.ack(await deliver(consumer, offset))
        return {PART: COMMITTED}

    consumer.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
    await consumer.perform_seek()  # recovery done: "Seek stream partitions to committed offsets"
    for offset in range(COMMITTED + 50, COMMITTED + 80):
        consumer.ack(await deliver(consumer, offset))


def commits_until(consumer: Consumer, end: int, most: int = 200) -> int:
    """How many commits (each ``_new_offset`` then the commit's bookkeeping) bring the committed
    offset to ``end``; faust's commit timer makes one a second (``broker_commit_interval``)."""
    for n in range(1, most + 1):
        offset = consumer._new_offset(PART)
        if offset is not None:
            consumer._committed_offset[PART] = offset
        if consumer._committed_offset[PART] == end:
            return n
    raise AssertionError(f"the committed offset is stuck at {consumer._committed_offset[PART]}")


def test_a_seek_back_after_recovery_leaves_the_acknowledged_records_one_commit_away(
    consumer: Consumer,
) -> None:
    asyncio.run(restart_with_recovery(consumer))
    assert commits_until(consumer, COMMITTED + 80) == 1


def test_plain_faust_commits_one_offset_at_a_time_after_that_seek(consumer: Consumer) -> None:
    asyncio.run(restart_with_recovery(unpatched(consumer)))
    assert consumer._new_offset(PART) == COMMITTED + 2
    assert commits_until(consumer, COMMITTED + 80) >= 49


async def around_a_gap(consumer: Consumer) -> None:
    """Records 100-109 and 115-119 (110-114 missing, e.g. compacted away), all acknowledged."""
    await consumer.perform_seek()
    for offset in [*range(100, 110), *range(115, 120)]:
        consumer.ack(await deliver(consumer, offset))


def test_a_real_gap_is_passed_in_one_commit(consumer: Consumer) -> None:
    asyncio.run(around_a_gap(consumer))
    assert commits_until(consumer, 120) == 1


def test_plain_faust_counts_the_record_after_a_gap_twice(consumer: Consumer) -> None:
    asyncio.run(around_a_gap(unpatched(consumer)))
    assert consumer._new_offset(PART) == 116  # 115 came from the gap and from its own ack


def test_a_gap_never_covers_a_record_not_acknowledged_yet(consumer: Consumer) -> None:
    async def run() -> None:
        await consumer.perform_seek()
        for offset in range(100, 110):
            consumer.ack(await deliver(consumer, offset))
        await deliver(consumer, 115)  # delivered, still being processed
        consumer.ack(await deliver(consumer, 116))  # acknowledged first (e.g. another agent)

    asyncio.run(run())
    assert consumer._new_offset(PART) == 115


async def one_record_dropped(consumer: Consumer) -> None:
    """Record 100, the committed offset, delivered and dropped (never processed, never acknowledged);
    101-119 delivered and acknowledged."""
    await consumer.perform_seek()
    await deliver(consumer, 100)
    for offset in range(101, 120):
        consumer.ack(await deliver(consumer, offset))


def test_a_record_not_acknowledged_at_the_committed_offset_holds_commits_back(consumer: Consumer) -> None:
    asyncio.run(one_record_dropped(consumer))
    assert consumer._new_offset(PART) is None
    consumer.ack(message(100))  # read again after a rebalance, and processed
    assert consumer._new_offset(PART) == 120


def test_plain_faust_commits_past_it(consumer: Consumer) -> None:
    asyncio.run(one_record_dropped(unpatched(consumer)))
    assert consumer._new_offset(PART) == 120  # 100 is lost


async def acks_across_a_rebalance(consumer: Consumer) -> None:
    """The partition is revoked while a batch (110-119) is in flight and records 100-109 wait in a
    queue that the revocation clears; it is assigned back; the batch's acknowledgements arrive before
    the recovery's seek."""
    await consumer.perform_seek()
    in_flight = [await deliver(consumer, offset) for offset in range(100, 120)][10:]
    consumer._on_partitions_revoked = _nothing  # the app's part
    consumer._on_partitions_assigned = _nothing
    await consumer.on_partitions_revoked({PART})
    await consumer.on_partitions_assigned({PART})
    for msg in in_flight:
        consumer.ack(msg)


async def _nothing(*args: Any) -> None:
    return None


def test_nothing_is_committed_between_an_assignment_and_the_seek(consumer: Consumer) -> None:
    asyncio.run(acks_across_a_rebalance(consumer))
    assert consumer._new_offset(PART) is None
    asyncio.run(consumer.perform_seek())  # the recovery is done: 100 is read again
    assert consumer._new_offset(PART) is None  # 100-109 not processed yet
    for offset in range(100, 110):
        consumer.ack(message(offset))
    assert consumer._new_offset(PART) == 120


def test_plain_faust_commits_the_batch_past_the_cleared_records(consumer: Consumer) -> None:
    asyncio.run(acks_across_a_rebalance(unpatched(consumer)))
    assert consumer._new_offset(PART) == 120  # 100-109 are lost


def test_a_record_missing_at_the_committed_offset_is_a_gap(consumer: Consumer) -> None:
    async def run() -> None:
        await consumer.perform_seek()
        for offset in range(101, 110):  # 100 compacted away, or deleted by retention
            consumer.ack(await deliver(consumer, offset))

    asyncio.run(run())
    assert consumer._new_offset(PART) == 110


def test_offset_zero_is_a_committed_offset(consumer: Consumer) -> None:
    async def run() -> None:
        async def at_zero() -> Mapping[TP, int]:
            return {PART: 0}

        consumer.seek_to_committed = at_zero  # type: ignore[method-assign]
        await consumer.perform_seek()
        await deliver(consumer, 0)  # dropped
        for offset in range(1, 10):
            consumer.ack(await deliver(consumer, offset))

    asyncio.run(run())
    assert consumer._committed_offset[PART] == 0
    assert consumer._new_offset(PART) is None


def test_a_long_hold_is_logged_once(
    consumer: Consumer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(one_record_dropped(consumer))
    monkeypatch.setattr(faust_patches, "HOLE_WARNING_S", 0.0)
    with caplog.at_level(logging.WARNING, logger=faust_patches.__name__):
        assert consumer._new_offset(PART) is None
        assert consumer._new_offset(PART) is None
    held = [r for r in caplog.records if "has not been acknowledged" in r.getMessage()]
    assert len(held) == 1 and "offset 100 of" in held[0].getMessage()


OTHER = TP(TOPIC, 1)


def fetched_around_a_seek(consumer: Consumer, committed: int | None = COMMITTED) -> list[tuple[int, int]]:
    """The (partition, offset) of each record ``getmany`` hands out from one fetch of 100-109 on
    partition 0 and 200-204 on partition 1, partition 0 being sought back to its committed offset (the
    recovery's ``perform_seek``) after the third record."""
    records = {
        PART: [types.SimpleNamespace(topic=TOPIC, partition=0, offset=o) for o in range(100, 110)],
        OTHER: [types.SimpleNamespace(topic=TOPIC, partition=1, offset=o) for o in range(200, 205)],
    }

    async def wait_next_records(timeout: float) -> tuple[Any, Any]:
        return records, None

    async def run() -> list[tuple[int, int]]:
        consumer._wait_next_records = wait_next_records  # type: ignore[method-assign]
        consumer._to_message = lambda tp, record: record  # type: ignore[method-assign]
        consumer.highwater = lambda tp: 1000  # type: ignore[method-assign]
        consumer.flow_active = True
        handed: list[tuple[int, int]] = []
        async for tp, record in consumer.getmany(timeout=1.0):
            handed.append((tp.partition, record.offset))
            if handed == [(0, 100), (1, 200), (0, 101)]:

                async def only_part() -> Mapping[TP, int | None]:
                    return {PART: committed}

                consumer.seek_to_committed = only_part  # type: ignore[method-assign,assignment]
                await consumer.perform_seek()
        return handed

    return asyncio.run(run())


def test_records_of_a_fetch_are_not_handed_out_after_their_partition_was_sought_back(
    consumer: Consumer,
) -> None:
    handed = fetched_around_a_seek(consumer)
    assert [o for p, o in handed if p == 0] == [100, 101]  # 102-109 are read again from 100
    assert [o for p, o in handed if p == 1] == list(range(200, 205))


@pytest.mark.parametrize("committed", [None, 0])
def test_a_partition_aiokafka_does_not_seek_keeps_its_fetch(
    consumer: Consumer, committed: int | None
) -> None:
    # aiokafka's seek_to_committed moves only partitions with a committed offset above 0: the others
    # are not fetched again, so nothing of their fetch may be skipped.
    handed = fetched_around_a_seek(consumer, committed)
    assert [o for p, o in handed if p == 0] == list(range(100, 110))


def test_plain_faust_hands_them_out_and_then_drops_the_records_read_again(consumer: Consumer) -> None:
    handed = fetched_around_a_seek(unpatched(consumer))
    assert [o for p, o in handed if p == 0] == list(range(100, 110))
    # _drain_messages then sets the read offset to 109: the records fetched again from 100 are older,
    # and dropped ("DROPPED MESSAGE ROFF"); only those 102-109 handed out here are ever processed.


def commit_refused(consumer: Consumer) -> int | None:
    """The committed offset faust keeps after the group refuses a commit of 120 (a rebalance)."""

    async def refused(offsets: Mapping[TP, int]) -> bool:
        return False

    async def run() -> int | None:
        await consumer.perform_seek()
        consumer._commit = refused  # type: ignore[method-assign]
        consumer.assignment = lambda: {PART}  # type: ignore[method-assign]
        await consumer._commit_offsets({PART: 120})
        return consumer._committed_offset[PART]

    return asyncio.run(run())


def test_a_refused_commit_leaves_the_committed_offset_as_it_was(consumer: Consumer) -> None:
    assert commit_refused(consumer) == COMMITTED


def test_plain_faust_takes_a_refused_commit_as_done(consumer: Consumer) -> None:
    assert commit_refused(unpatched(consumer)) == 120


def test_duplicates_from_elsewhere_do_not_stall_commits(consumer: Consumer) -> None:
    consumer._acked[PART] = [100, 101, 101, 102, 102, 103]
    consumer._acked_index[PART] = {100, 101, 102, 103}
    assert consumer._new_offset(PART) == 104


def queued_after_two_resumes(resume: Callable[[FlowControlEvent], None]) -> list[str]:
    """What a channel's queue holds after the recovery's two ``resume`` calls, a record having been
    queued in between (fetched after the stream partitions were resumed)."""

    async def run() -> list[str]:
        flow = FlowControlEvent()  # suspended, as during a rebalance
        queue: FlowControlQueue[str] = FlowControlQueue(flow_control=flow, clear_on_resume=True)
        queue.put_nowait("queued before the rebalance")
        types.MethodType(resume, flow)()  # the recovery starts reading the changelogs
        assert queue.empty()
        queue.put_nowait("record 15")
        types.MethodType(resume, flow)()  # the recovery is done
        return [queue.get_nowait() for _ in range(queue.qsize())]

    return asyncio.run(run())


def test_records_queued_while_flowing_survive_the_last_resume() -> None:
    assert queued_after_two_resumes(FlowControlEvent.resume) == ["record 15"]


def test_plain_faust_clears_them() -> None:
    plain = FlowControlEvent.resume.__wrapped__  # type: ignore[attr-defined]
    assert queued_after_two_resumes(plain) == []


CHANGELOG = TP("faust-patches-test-account-state-changelog", 0)


def assigned_during_a_rebalance(consumer: Consumer) -> tuple[set[TP], set[TP]]:
    """The active and the paused partitions once the stream's and the changelog's are assigned while
    flow control is suspended (as it is from the revocation until the recovery resumes it)."""
    consumer.app.Table("account-state", default=None, partitions=1)
    assert not consumer.app.flow_control.is_active()
    active = set(consumer._set_active_tps({PART, CHANGELOG}))
    return active, set(consumer._paused_partitions)


def test_stream_partitions_assigned_during_a_rebalance_wait_for_the_recovery(consumer: Consumer) -> None:
    assert assigned_during_a_rebalance(consumer) == ({CHANGELOG}, {PART})
    consumer.app.flow_control.resume()
    assert set(consumer._set_active_tps({PART, CHANGELOG})) == {CHANGELOG}  # paused until resumed
    consumer.resume_partitions({PART})
    assert set(consumer._get_active_partitions()) == {PART, CHANGELOG}


def test_plain_faust_lets_them_be_fetched_at_once(consumer: Consumer) -> None:
    assert assigned_during_a_rebalance(unpatched(consumer)) == ({PART, CHANGELOG}, set())


class Fetcher:
    """What ``_drain_messages`` needs of faust's fetcher service: a stopped flag."""

    def __init__(self) -> None:
        self._stopped = asyncio.Event()


def drain(consumer: Consumer, offsets: range, callback: Callable[..., Any]) -> tuple[int, Fetcher]:
    """Run faust's ``Consumer._drain_messages`` over records at ``offsets`` (one ``getmany``), each handed
    to ``callback``; return how many tasks were created meanwhile, and the fetcher (stopped at the end)."""
    fetcher = Fetcher()

    async def getmany(timeout: float) -> AsyncIterator[tuple[TP, ConsumerMessage]]:
        for offset in offsets:
            yield PART, message(offset)
        fetcher._stopped.set()

    consumer.getmany = getmany  # type: ignore[method-assign]
    consumer.callback = callback
    tasks = 0

    def counting(loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task[Any]:
        nonlocal tasks
        tasks += 1
        return asyncio.Task(coro, loop=loop)

    consumer.loop.set_task_factory(counting)
    consumer.loop.run_until_complete(consumer._drain_messages(fetcher))  # type: ignore[arg-type]
    return tasks, fetcher


def test_records_reach_the_streams_in_order_without_a_task_each(consumer: Consumer) -> None:
    got: list[int] = []

    async def on_message(msg: ConsumerMessage) -> None:  # a stream's queue with room: no suspension
        got.append(msg.offset)

    tasks, _ = drain(consumer, range(100, 400), on_message)
    assert got == list(range(100, 400))
    assert tasks < 10  # the consumer's own sleeps; none per record
    assert consumer._read_offset[PART] == 399


def test_plain_faust_makes_four_tasks_a_record(consumer: Consumer) -> None:
    got: list[int] = []

    async def on_message(msg: ConsumerMessage) -> None:
        got.append(msg.offset)

    tasks, _ = drain(unpatched(consumer), range(100, 400), on_message)
    assert got == list(range(100, 400))
    assert tasks >= 4 * 300


@pytest.mark.parametrize("plain", [False, True], ids=["patched", "plain faust"])
def test_a_record_waits_for_room_and_the_next_ones_wait_for_it(consumer: Consumer, plain: bool) -> None:
    """A full queue: the callback suspends half-way and is continued, its result and order kept."""
    got: list[tuple[str, int]] = []
    room = asyncio.Event()

    async def on_message(msg: ConsumerMessage) -> str:
        got.append(("handed", msg.offset))
        if msg.offset == 101:
            asyncio.get_running_loop().call_later(0.05, room.set)
            await room.wait()  # suspends: the patch goes on with the rest of the callback in a task
            await asyncio.sleep(0)  # and once more, after being resumed
        got.append(("queued", msg.offset))
        return "queued"

    drain(unpatched(consumer) if plain else consumer, range(100, 103), on_message)
    assert got == [(step, n) for n in (100, 101, 102) for step in ("handed", "queued")]


@pytest.mark.parametrize("plain", [False, True], ids=["patched", "plain faust"])
def test_a_waiting_record_is_given_up_when_flow_control_is_suspended(consumer: Consumer, plain: bool) -> None:
    """A rebalance while a record waits for room: as in plain faust, the wait is cancelled (the record
    is fetched again from the committed offset) and the fetcher goes on."""
    seen: list[str] = []

    async def on_message(msg: ConsumerMessage) -> None:
        if msg.offset == 101:
            asyncio.get_running_loop().call_later(0.05, consumer.suspend_flow.set)
            try:
                await asyncio.Event().wait()  # never room
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise
        seen.append(f"queued {msg.offset}")

    drain(unpatched(consumer) if plain else consumer, range(100, 103), on_message)
    assert sorted(seen) == ["cancelled", "queued 100", "queued 102"]


@pytest.mark.parametrize("plain", [False, True], ids=["patched", "plain faust"])
def test_a_failing_callback_fails_the_fetcher(consumer: Consumer, plain: bool) -> None:
    async def on_message(msg: ConsumerMessage) -> None:
        raise KeyError(msg.offset)

    with pytest.raises(KeyError):
        drain(unpatched(consumer) if plain else consumer, range(100, 103), on_message)


def test_the_patches_are_applied_for_the_installed_faust() -> None:
    assert faust_patches.applies_to(faust.__version__), (
        f"faust {faust.__version__}: check whether services/scoring/faust_patches.py is still needed "
        "(the plain-faust tests above say whether the faults are still there), then update PATCHED_VERSIONS"
    )
    assert faust_patches.apply()
    assert not faust_patches.applies_to("0.16.0")


# --- The worker starts only on the tested releases.

TESTED = {"faust-streaming": "0.15.3", "mode-streaming": "0.7.1"}


def test_the_tested_releases_are_the_ones_installed_and_pinned() -> None:
    assert faust_patches.TESTED_VERSIONS == TESTED
    assert faust_patches.installed_versions() == TESTED
    pins = (Path(__file__).resolve().parents[3] / "constraints.txt").read_text().splitlines()
    for name, version in TESTED.items():
        assert f"{name}=={version}" in pins
    faust_patches.require_tested_versions(False)  # no exit


@pytest.mark.parametrize(
    "installed",
    [
        {"faust-streaming": "0.15.4", "mode-streaming": "0.7.1"},
        {"faust-streaming": "0.15.3", "mode-streaming": "0.8.0"},
        {"faust-streaming": "0.16.0", "mode-streaming": "not installed"},
    ],
)
def test_another_release_stops_the_worker_naming_both(installed: dict[str, str]) -> None:
    with pytest.raises(SystemExit) as info:
        faust_patches.require_tested_versions(False, installed)
    message = str(info.value.code)  # a str code: printed to stderr, exit status 1
    assert message.startswith("barometre scoring: refusing to start:")
    assert "tested only with faust-streaming==0.15.3 and mode-streaming==0.7.1" in message
    for name, version in installed.items():
        if version != TESTED[name]:
            assert f"{name} {version} (tested: {TESTED[name]})" in message
    assert "BAROMETRE_SCORING_ALLOW_UNTESTED_FAUST=true" in message


def test_the_escape_hatch_warns_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=faust_patches.__name__):
        faust_patches.require_tested_versions(True, {**TESTED, "faust-streaming": "0.15.4"})
    assert (
        "UNTESTED faust release" in caplog.text and "faust-streaming 0.15.4 (tested: 0.15.3)" in caplog.text
    )


def test_barometre_scoring_exits_non_zero_on_another_release(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the command the containers run, before any connection to Kafka (none is reachable here)."""
    real = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata, "version", lambda name: "0.15.9" if name == "faust-streaming" else real(name)
    )
    result = CliRunner().invoke(main, ["scoring"], env={"BAROMETRE_KAFKA_BOOTSTRAP": "127.0.0.1:9"})
    assert result.exit_code == 1, result.output
    assert "refusing to start" in result.output and "faust-streaming 0.15.9 (tested: 0.15.3)" in result.output
