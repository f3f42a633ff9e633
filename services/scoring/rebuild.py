"""``barometre rebuild``: every scoring table recomputed from the snapshots topic, then swapped in.

The log is the truth (DESIGN.md, principle 1). This module is only plumbing around the live worker's own
code: it reads the snapshots topic from its beginning with a plain consumer (partitions assigned by
hand, no group, nothing committed), skips what the worker dead-letters (by its own policy,
:mod:`services.scoring.dead_letters`), feeds batches to the same
:class:`~services.scoring.processor.Processor` with an in-memory dict in place of the Faust state
table, writes the rows with the same
:class:`~services.scoring.sink.ClickHouseSink` into fresh ``<table>__rebuild`` tables, and finally swaps
each fresh table with the live one (``EXCHANGE TABLES``, atomic per table) and drops the old one.
Entity rollups, which the live worker runs after each batch, run once at the end over the final
``account_latest``. Several processes can replay disjoint sets of partitions (``jobs``): an account's
events are all on one partition (the key), and its state depends on nothing else.

It stops at the scoring consumer group's committed offsets, so the rebuilt tables hold exactly what live
processing had written, or at the end of the topic with ``to_end``. It refuses to run while the group
has members: a running worker would keep writing into the old tables, and the swap would lose those
rows. See docs/SCORING.md, "Rebuild".
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient
from kafka.structs import TopicPartition

from services.common.clickhouse import make_client
from services.common.events import AccountSnapshot
from services.common.kafka import client_security
from services.common.names import Table, Topic
from services.common.settings import Settings
from services.scoring.dead_letters import (
    classify,
    describe_processing_error,
    describe_rejection,
    is_infrastructure_error,
    isolate_failures,
)
from services.scoring.processor import LATEST_COLUMNS, BatchOutput, Processor
from services.scoring.sink import ClickHouseSink

log = logging.getLogger(__name__)

# The tables the scoring worker writes, in the order they are swapped: the raw events and the daily
# points first, the live figures the api ranks on last, so these change together at the end.
TABLES = (Table.SNAPSHOTS, Table.ACCOUNT_DAILY, Table.PRESENCE, Table.ACCOUNT_LATEST, Table.ENTITY_LATEST)
SUFFIX = "__rebuild"
OLD_SUFFIX = "__old"  # only for databases without EXCHANGE (see _swap)
# Events per batch, as the live worker's largest batches.
BATCH = 10_000
# A ClickHouse write failing this long stops the rebuild (the live worker waits for ever; an operator
# running a rebuild wants to hear about it).
WRITE_PATIENCE_S = 300.0
PROGRESS_S = 2.0
# A replay process costs seconds to start: one more only for this many records.
RECORDS_PER_JOB = 100_000
# How long Kafka may return nothing while partitions still lack records before we give up.
STALL_S = 60.0


class RebuildError(RuntimeError):
    """The rebuild cannot run or could not finish. The live tables are then left as they were, except
    after a failure of the swap itself, whose message says what is where."""


@dataclass(frozen=True)
class Plan:
    """What to replay: per partition, from ``start`` (the log's first offset) up to ``stop`` (excluded)."""

    topic: str
    start: Mapping[int, int]
    stop: Mapping[int, int]
    basis: str  # where ``stop`` comes from, for the summary

    @property
    def total(self) -> int:
        """Records to read (invalid ones included)."""
        return sum(max(0, self.stop[p] - self.start[p]) for p in self.stop)


@dataclass
class RebuildReport:
    """What a rebuild did."""

    plan: Plan
    events: int = 0  # valid snapshots processed
    # Skipped, as the live worker dead-letters them: records that are not valid snapshots, and the events
    # of accounts the processor fails on.
    invalid: int = 0
    unscorable: int = 0
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)  # rows written to each table (before merges)
    swap: str = ""  # how the tables were swapped
    jobs: int = 1  # replay processes

    @property
    def rate(self) -> float:
        """Records per second over the replay (reading, processing and writing)."""
        return (self.events + self.invalid + self.unscorable) / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """The lines ``barometre rebuild`` prints at the end."""
        tables = ", ".join(f"{t} {n:,}" for t, n in self.rows.items())
        return (
            f"rebuilt from {self.plan.topic} up to {self.plan.basis}: {self.events:,} events, "
            f"{self.invalid:,} invalid and {self.unscorable:,} unscorable skipped (dead letters of the "
            f"worker), in {self.seconds:.1f}s with {self.jobs} process"
            f"{'es' if self.jobs > 1 else ''} ({self.rate:,.0f} events/s)\n"
            f"swapped in ({self.swap}), rows written: {tables}"
        )


def active_members(admin: KafkaAdminClient, group: str) -> list[str]:
    """The client ids of the consumer group's current members (none when the group is empty or dead)."""
    described = admin.describe_groups([group]).get(group, {})
    members: Sequence[Mapping[str, Any]] = described.get("members") or []
    return [str(m.get("client_id") or m.get("member_id") or "?") for m in members]


def _refuse_if_running(admin: KafkaAdminClient, group: str, when: str) -> None:
    members = active_members(admin, group)
    if members:
        raise RebuildError(
            f"{when}the scoring consumer group {group} has {len(members)} active member(s) "
            f"({', '.join(sorted(set(members)))}): its writes during the rebuild would be lost by the "
            "swap; stop the scoring worker first (or pass --force)"
        )


def make_plan(
    settings: Settings, admin: KafkaAdminClient, consumer: KafkaConsumer, *, to_end: bool, force: bool
) -> Plan:
    """Offsets to replay: the whole log up to the group's committed offsets (or the end with ``to_end``)."""
    topic = settings.topic(Topic.ACCOUNT_SNAPSHOTS)
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise RebuildError(f"topic {topic} does not exist on {settings.kafka_bootstrap}: nothing to replay")
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    begin = {tp.partition: off for tp, off in consumer.beginning_offsets(tps).items()}
    end = {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    if to_end:
        stop, basis = dict(end), "the end of the topic (--to-end)"
    else:
        group = settings.scoring_group()
        offsets = admin.list_group_offsets({group: None}).get(group, {})
        committed = {
            tp.partition: meta.offset
            for tp, meta in offsets.items()
            if isinstance(tp, TopicPartition) and tp.topic == topic and meta.offset >= 0
        }
        if not committed and any(end.values()):
            raise RebuildError(
                f"the scoring consumer group {group} has committed no offset on {topic}: live processing "
                "has consumed nothing to rebuild; pass --to-end to rebuild from the whole topic"
            )
        # A partition without a committed offset was not consumed at all; an offset past the end can
        # only come from a deleted and re-created topic: the end is all there is.
        stop = {p: min(committed.get(p, 0), end[p]) for p in end}
        basis = f"the committed offsets of {group}"
    lost = {p: begin[p] for p in stop if begin[p] > 0 and stop[p] > 0}
    if lost and not force:
        where = ", ".join(f"partition {p} starts at offset {o}" for p, o in sorted(lost.items()))
        raise RebuildError(
            f"the log of {topic} no longer holds its first records ({where}; retention deleted them): "
            "a rebuild would lose what they contributed (pass --force to rebuild from what is left)"
        )
    return Plan(topic, begin, stop, basis)


def run_rebuild(
    settings: Settings,
    *,
    to_end: bool = False,
    force: bool = False,
    jobs: int = 1,
    report: Callable[[str], None] = print,
    batch_size: int = BATCH,
) -> RebuildReport:
    """Rebuild every scoring table of ``settings``' database from the snapshots topic (module docstring).

    ``jobs`` processes replay disjoint sets of partitions (an account's events are all on one
    partition, and its state depends on nothing else). ``report`` receives progress lines. Raises
    :class:`RebuildError` when it refuses to run or cannot finish; the live tables are then untouched
    and the fresh ones dropped.
    """
    if settings.clickhouse_cluster:
        # Its fresh tables are made with CREATE TABLE x__rebuild AS x, which on a cluster would copy the
        # Distributed table on one node (docs/OPERATIONS.md, "A ClickHouse cluster").
        raise RebuildError(
            f"not on a ClickHouse cluster (BAROMETRE_CLICKHOUSE_CLUSTER={settings.clickhouse_cluster}): "
            "rebuild into a new database instead (docs/OPERATIONS.md, 'A ClickHouse cluster')"
        )
    bootstrap = _bootstrap(settings)
    group = settings.scoring_group()
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="barometre-rebuild", **client_security(settings)
    )
    consumer = _consumer(settings)
    client = make_client(settings)
    try:
        if not force:
            _refuse_if_running(admin, group, "")
        plan = make_plan(settings, admin, consumer, to_end=to_end, force=force)
        consumer.close()  # the replay opens its own, one per process
        result = RebuildReport(plan)
        parts = [p for p, stop in sorted(plan.stop.items()) if stop > plan.start[p]]
        jobs = result.jobs = max(1, min(jobs, len(parts), plan.total // RECORDS_PER_JOB))
        report(
            f"rebuild: replaying {plan.total:,} records of {plan.topic} up to {plan.basis}"
            f" ({jobs} process{'es' if jobs > 1 else ''})"
        )
        db = settings.clickhouse_database
        _create_fresh(client, db)
        try:
            started = time.monotonic()
            shares = [parts[i::jobs] for i in range(jobs)]
            outcomes = _replay_all(settings, plan, shares, batch_size, report, started)
            touched: set[tuple[str, str]] = set()
            for outcome in outcomes:
                result.events += outcome.events
                result.invalid += outcome.invalid
                result.unscorable += outcome.unscorable
                touched |= outcome.touched
            _roll_up(settings, touched)
            result.seconds = time.monotonic() - started
            if not force:
                # A worker started meanwhile has written into the live tables: swapping would lose it.
                _refuse_if_running(admin, group, "a scoring worker started during the rebuild: ")
            for table in TABLES:
                count = client.query(f"SELECT count() FROM {db}.{table}{SUFFIX}").result_rows[0][0]
                result.rows[table] = int(count)
        except BaseException:  # Ctrl-C included: leave no fresh tables behind
            _drop_fresh(client, db)
            raise
        result.swap = _swap(client, db)
        return result
    finally:
        client.close()
        consumer.close()
        admin.close()


def _bootstrap(settings: Settings) -> list[str]:
    return [b.strip() for b in settings.kafka_bootstrap.split(",") if b.strip()]


def _consumer(settings: Settings) -> KafkaConsumer:
    return KafkaConsumer(
        bootstrap_servers=_bootstrap(settings),
        client_id="barometre-rebuild",
        group_id=None,  # no group: nothing is committed, the live worker's offsets stay as they are
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        **client_security(settings),
    )


@dataclass
class _Outcome:
    """What replaying some partitions gave: counts, and the (platform, entity_id) pairs to roll up."""

    events: int = 0
    invalid: int = 0
    unscorable: int = 0
    touched: set[tuple[str, str]] = field(default_factory=set)


# In each replay process: its slot in the shared progress counters, and the flag that stops it.
_progress: Any = None
_stop: Any = None


def _init_process(progress: Any, stop: Any) -> None:
    global _progress, _stop
    _progress, _stop = progress, stop


def _replay_in_process(
    settings: Settings, plan: Plan, partitions: list[int], batch_size: int, slot: int
) -> _Outcome:
    def progress(done: int) -> None:
        _progress[slot] = done

    return _replay(settings, plan, partitions, batch_size, progress, _stop.is_set)


def _replay_all(
    settings: Settings,
    plan: Plan,
    shares: list[list[int]],
    batch_size: int,
    report: Callable[[str], None],
    started: float,
) -> list[_Outcome]:
    """Replay each share of partitions, in this process (one share) or one process per share,
    reporting the records done every few seconds."""

    def say(done: int) -> None:
        rate = done / max(time.monotonic() - started, 1e-9)
        report(f"rebuild: {done:,}/{plan.total:,} events ({rate:,.0f} events/s)")

    if len(shares) == 1:
        last = [time.monotonic()]

        def progress(done: int) -> None:
            if time.monotonic() - last[0] >= PROGRESS_S:
                last[0] = time.monotonic()
                say(done)

        return [_replay(settings, plan, shares[0], batch_size, progress, lambda: False)]
    # Spawned, not forked: the parent holds Kafka and ClickHouse connections a child must not share.
    ctx = multiprocessing.get_context("spawn")
    counters = ctx.Array("q", len(shares), lock=False)
    stop = ctx.Event()
    with ProcessPoolExecutor(
        len(shares), mp_context=ctx, initializer=_init_process, initargs=(counters, stop)
    ) as pool:
        futures = [
            pool.submit(_replay_in_process, settings, plan, share, batch_size, slot)
            for slot, share in enumerate(shares)
        ]
        try:
            said = 0
            while True:
                done, running = wait(futures, timeout=PROGRESS_S, return_when=FIRST_EXCEPTION)
                for future in done:
                    exc = future.exception()
                    if exc is not None:
                        raise exc
                if not running:
                    return [f.result() for f in futures]
                if sum(counters) > said:
                    said = sum(counters)
                    say(said)
        except BaseException:
            stop.set()  # the other processes stop after their current batch
            raise


def _replay(
    settings: Settings,
    plan: Plan,
    partitions: list[int],
    batch_size: int,
    progress: Callable[[int], None],
    stopped: Callable[[], bool],
) -> _Outcome:
    """Read the planned records of ``partitions`` in batches, process them and write the rows to the
    fresh tables; the entity rollups are left to the caller (the pairs are in the outcome)."""
    patience = _Patience()
    sink = _sink(settings, patience)
    processor = Processor(settings, fetch_history=sink.fetch_history, table_suffix=SUFFIX)
    # The Faust table's stand-in: account_id bytes -> AccountState bytes, exactly what the worker keeps.
    states: dict[bytes, bytes | None] = {}
    outcome = _Outcome()
    # The live worker rolls up the (platform, entity_id) pairs of a batch after it (out.after); a rebuild
    # does it once, at the end, over the final account_latest: these are the pairs of its rows.
    platform_at, entity_at = LATEST_COLUMNS.index("platform"), LATEST_COLUMNS.index("entity_id")

    def score(good: list[AccountSnapshot]) -> tuple[BatchOutput | None, dict[str, Exception]]:
        # The worker's policy (services.scoring.dead_letters): the accounts the processor fails on are
        # left out (the worker dead-letters their events); a dependency's failure is waited out.
        delay = 0.5
        while True:
            try:
                return isolate_failures(good, lambda batch: processor.process(batch, states))
            except Exception as exc:
                if not is_infrastructure_error(exc):
                    raise
                log.warning("reading from ClickHouse failed, retrying: %s", exc)
                patience(delay)
                delay = min(2 * delay, 30.0)

    def flush(records: list[Any]) -> None:
        offsets: dict[int, tuple[int, int]] = {}
        good: list[AccountSnapshot] = []
        for r in records:
            first, last = offsets.get(r.partition, (r.offset, r.offset))
            offsets[r.partition] = (min(first, r.offset), max(last, r.offset))
            verdict = classify(r.key, r.value)
            if isinstance(verdict, AccountSnapshot):
                good.append(verdict)
            else:
                outcome.invalid += 1
        out, failed = score(good) if good else (None, {})
        unscorable = sum(1 for s in good if s.account_id in failed)
        for account_id, exc in sorted(failed.items()):
            log.warning("left out, as the worker does: %s", describe_processing_error(account_id, exc))
        if out is not None:
            rejected = sink.write(out.tables, offsets)  # without out.after: today only that batch's rollup
            for account_id, exc in sorted(rejected.items()):
                log.warning("left out, as the worker does: %s", describe_rejection(account_id, exc))
                unscorable += sum(1 for s in good if s.account_id == account_id)
                out.states.pop(account_id.encode(), None)
            states.update(out.states)
            rows = out.tables[Table.ACCOUNT_LATEST].rows
            outcome.touched.update((str(r[platform_at]), str(r[entity_at])) for r in rows)
        outcome.events += len(good) - unscorable
        outcome.unscorable += unscorable
        progress(outcome.events + outcome.invalid + outcome.unscorable)
        if stopped():
            raise RebuildError("stopped: another rebuild process failed")

    pending = {TopicPartition(plan.topic, p) for p in partitions}
    consumer = _consumer(settings)
    try:
        if pending:
            consumer.assign(sorted(pending))
            for tp in pending:
                consumer.seek(tp, plan.start[tp.partition])
        batch: list[Any] = []
        last_data = time.monotonic()
        while pending:
            polled = consumer.poll(timeout_ms=500, max_records=max(1, batch_size - len(batch)))
            for tp, records in polled.items():
                stop = plan.stop[tp.partition]
                batch.extend(r for r in records if r.offset < stop)
            for tp in list(pending):
                # The position, not a record count: it also steps over transaction markers.
                if consumer.position(tp) >= plan.stop[tp.partition]:
                    pending.discard(tp)
                    consumer.pause(tp)
            if polled:
                last_data = time.monotonic()
            elif time.monotonic() - last_data > STALL_S:
                short = ", ".join(str(tp.partition) for tp in sorted(pending))
                raise RebuildError(f"Kafka returned nothing for {STALL_S:.0f}s; partitions {short} are short")
            if len(batch) >= batch_size or (batch and not pending):
                flush(batch)
                batch = []
    finally:
        consumer.close()
    return outcome


class _Patience:
    """The sink's sleep between retries of a write, giving up once the waits add up to ``limit_s``."""

    def __init__(self, limit_s: float = WRITE_PATIENCE_S) -> None:
        self.limit_s = limit_s
        self.waited = 0.0

    def __call__(self, seconds: float) -> None:
        if self.waited >= self.limit_s:
            raise RebuildError(
                f"ClickHouse has refused the rebuild's writes for {self.waited:.0f}s (see the warning above)"
            )
        time.sleep(seconds)
        self.waited += seconds


def _sink(settings: Settings, patience: _Patience) -> ClickHouseSink:
    # One patience per rebuild process: its waits add up across its writes and reads (a few blips are
    # fine; a server gone, or refusing a statement, for minutes is not).
    return ClickHouseSink(
        lambda: make_client(settings), settings.clickhouse_database, sleep=patience, table_suffix=SUFFIX
    )


def _roll_up(settings: Settings, touched: set[tuple[str, str]]) -> None:
    """The entity rollups of ``touched``, in the worker's chunks (``Processor.rollups``: each statement
    reads the whole of ``account_latest__rebuild``, so the fewer the better)."""
    sink = _sink(settings, _Patience())
    processor = Processor(settings, fetch_history=sink.fetch_history, table_suffix=SUFFIX)
    for statement in processor.rollups(touched):
        sink.write({}, {}, [statement])


def _create_fresh(client: Client, db: str) -> None:
    """Empty ``<table>__rebuild`` tables with the live tables' structure, engine and settings."""
    for table in TABLES:
        # A leftover of an interrupted rebuild is stale by definition.
        client.command(f"DROP TABLE IF EXISTS {db}.{table}{SUFFIX} SYNC")
        client.command(f"CREATE TABLE {db}.{table}{SUFFIX} AS {db}.{table}")


def _drop_fresh(client: Client, db: str) -> None:
    for table in TABLES:
        try:
            client.command(f"DROP TABLE IF EXISTS {db}.{table}{SUFFIX} SYNC")
        except Exception:  # cleaning up after a failure: report the failure, not this
            log.warning("could not drop %s.%s%s", db, table, SUFFIX, exc_info=True)


def _swap(client: Client, db: str) -> str:
    """Put each fresh table in place of the live one, then drop the old ones; returns how.

    ``EXCHANGE TABLES`` swaps two tables atomically (readers see the old table or the new one, never
    none); Atomic and Replicated databases (ClickHouse's default, and the local chDB endpoint's) have it.
    Elsewhere (an Ordinary database) one ``RENAME TABLE`` moves the old table aside and the new one in:
    a reader may then briefly find no table. Every table is swapped before any old one is dropped, so
    a failure half-way leaves every table's data somewhere, and says where.
    """
    engine = client.query(
        "SELECT engine FROM system.databases WHERE name = {db:String}", parameters={"db": db}
    ).result_rows[0][0]
    atomic = engine in ("Atomic", "Replicated")
    olds: list[str] = []
    for table in TABLES:
        live, fresh = f"{db}.{table}", f"{db}.{table}{SUFFIX}"
        try:
            if atomic:
                client.command(f"EXCHANGE TABLES {live} AND {fresh}")
                olds.append(fresh)  # it now holds the old data
            else:
                old = f"{db}.{table}{OLD_SUFFIX}"
                client.command(f"DROP TABLE IF EXISTS {old} SYNC")
                client.command(f"RENAME TABLE {live} TO {old}, {fresh} TO {live}")
                olds.append(old)
        except Exception as exc:
            done = ", ".join(t.split(".", 1)[1] for t in olds) or "none"
            raise RebuildError(
                f"swapping {live} failed ({exc}); tables swapped so far (their old data kept in the "
                f"named tables): {done}; the others are unchanged and their rebuilt data is in "
                f"<table>{SUFFIX}: run the rebuild again"
            ) from exc
    for old in olds:
        client.command(f"DROP TABLE {old} SYNC")
    return "EXCHANGE TABLES" if atomic else f"RENAME TABLE ({engine} database)"
