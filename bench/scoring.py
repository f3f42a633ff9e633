"""Benchmark of the scoring worker beside Faust's own floor: throughput, freshness, memory, recovery.

The worker runs as its own process, `python -m services.scoring`, exactly as deployed, on a fresh
database and fresh topics (the default partition count, 12). Prints, in one run:

* **throughput**: ``--ticks`` (3) ticks of the simulator, an hour apart (``--scale`` 9.4 = about 300,000
  accounts, one snapshot each a tick), are published first, then read by, one after the other:
  - a bare aiokafka consumer decoding nothing (for information: no Faust worker comes near it);
  - **Faust's floor**: a Faust agent that takes the same ``take_events`` batches and does nothing, run as
    the worker runs (uvloop, its collector tuning, ``services.scoring.faust_patches``, ``RawRecords``,
    its buffer and commit sizes), in a process of its own (``bench/_floors.py``; its consumer group
    starts at the same offsets);
  - the worker, started on them. Events/s between the first move of the group's committed offsets and
    the moment they reach the end of every partition (the worker commits only after the rows are in
    ClickHouse), so Faust's start-up is left out, as the floor leaves out its first batch; the same
    between the first and the last row appearing in ``snapshots`` (polled every 250 ms), which does not
    depend on commits. If the offsets are still short ``COMMIT_GRACE_S`` after the last row, the bench
    reports a COMMIT STALL, stops waiting and commits them itself (after the check below) so that the
    next phases measure what they should. Row counts in ``snapshots`` and ``account_latest`` are
    checked. The ratio worker / floor is the target; the CPU an event of each is printed beside it
    (and that of our own Kafka broker and ClickHouse endpoint when the bench started them): on a shared
    machine the rates move with the load, the CPU an event much less;
* **freshness** at a steady ``--rate`` (1,000 events/s) for ``--fresh-seconds``: the ingest Publisher
  sends 100 events every 100 ms, each observed at its send time; for a sample of them (1 in 4), the
  time from Kafka's acknowledgement to the row being queryable in ClickHouse, polled every 50 ms: the
  raw row in ``snapshots`` (the first table the sink writes) and the account's row in
  ``account_latest`` (what the api serves, written after it). p50/p99 of both; the target is on the
  later of the two;
* **peak RSS** of the worker (VmHWM of its process tree) after the throughput and freshness phases with
  the state of every account, and after recovering that state;
* **recovery**: the worker is stopped, its local state deleted (the memory store always recovers from the
  changelog), 1,000 new events published and the worker started again: seconds from the process start
  until the 1,000 rows are in ClickHouse (and until the first commit, and all commits), against the same
  measure at the very first start (no state). The difference of the rows figures is the cost of
  recovering the table, whose changelog records are counted. A bare aiokafka read of the changelog topic
  is printed beside it;
* **scale-out** with ``--workers N`` (N > 1): N worker processes of one consumer group read the same
  records from topics, a group, changelogs and a database of their own (nothing of the one-worker run is
  reused); the combined rate, measured as above, and its ratio to the one worker's rate of this run. On
  a 2-core machine it is bounded by the cores (the workers share them with Kafka and ClickHouse);
* the machine's CPU count and load average at each phase (the figures are only as good as the machine
  is quiet).

Targets (issue #14): one worker >= 0.8 x Faust's floor; >= 15,000 events/s sustained over 3 ticks (judged
with ``--ticks`` >= 3); freshness p99 <= 1 s at 1,000 events/s; peak RSS <= 0.5 GiB for 300,000 accounts
each holding a year of daily history (the bench loads one day: over the target already is a miss,
under it is "not measured"); table recovery of 1,000,000 changelog records <= 20 s (judged when the
changelog holds that many; otherwise "not measured", with the figure for what it holds). Each is printed
against its figure, or as "not measured" with why; exit status 1 when a measured one is missed.

Starts its own Kafka broker and ClickHouse endpoint on bench ports (or uses BAROMETRE_BENCH_KAFKA /
BAROMETRE_BENCH_CLICKHOUSE when set, and then drops its databases and topics at the end). Usage:
`python bench/scoring.py [--scale 9.4] [--ticks 3] [--workers 1] [--worker-log PATH]
[--worker-script WRAPPER.py]` (a wrapper script runs instead of `-m services.scoring`, e.g. to profile
the worker in place).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError
from kafka.structs import TopicPartition as KafkaTopicPartition

from bench._floors import (
    Ends,
    Records,
    bare_read,
    commit_offsets,
    faust_floor,
    merge_ends,
    publish,
    topic_ends,
)
from infra.clickhouse import ClickHouseEndpoint
from infra.kafka import KafkaCluster, ensure_jars
from services.common.bootstrap import prepare_database
from services.common.clickhouse import make_client
from services.common.events import AccountSnapshot, format_timestamp
from services.common.kafka import ensure_topics
from services.common.names import Table, Topic
from services.common.reference import load_entities
from services.common.settings import Settings
from services.ingest.publisher import Publisher
from services.ingest.sources.simulator import Simulator, SimulatorParams

KAFKA_PORT, KAFKA_CONTROLLER_PORT, CH_PORT, WEB_PORT = 19600, 19601, 18193, 18760
# Targets (issue #14, "Show"). The ratio is to Faust's own floor, measured in the same run.
RATE_TARGET, RATE_TICKS = 15_000, 3  # events/s of one worker, sustained over three ticks
FLOOR_RATIO_TARGET = 0.8
FRESH_TARGET_S, FRESH_RATE = 1.0, 1_000  # p99 ack -> queryable, at this steady rate
RSS_TARGET, RSS_ACCOUNTS = 0.5 * 2**30, 300_000  # each account holding a year of daily history
RECOVERY_TARGET_S, RECOVERY_RECORDS = 20.0, 1_000_000  # table recovery from the changelog
PROBE = 1_000  # events published before each timed start
SAMPLE_EVERY = 4  # freshness: one event in four is followed until it is queryable
POLL_S = 0.05
POLL_IDS = 2_000  # event ids (36 characters) or account ids a freshness query asks for at most
# Once every row is in ClickHouse, how long the committed offsets may stand still before the bench stops
# waiting for them (see the report's "commit stall").
COMMIT_GRACE_S = 45.0


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (its threads included), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Worker:
    """One `python -m services.scoring` process, its log, memory and CPU."""

    def __init__(
        self, env: Mapping[str, str], log_path: Path, state_dir: Path, script: str | None = None
    ) -> None:
        self.env, self.log_path, self.state_dir = dict(env), log_path, state_dir
        self.args = [script] if script else ["-m", "services.scoring"]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start the process; return the monotonic time just before it was spawned."""
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, *self.args],
                env=self.env,
                cwd=Path(__file__).resolve().parents[1],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return started

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise SystemExit(f"the scoring worker died; its log ends with:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def delete_state(self) -> None:
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def _tree(self) -> list[int]:
        assert self.proc is not None
        pids, i = [self.proc.pid], 0
        while i < len(pids):
            for task in Path(f"/proc/{pids[i]}/task").glob("*/children"):
                pids.extend(int(c) for c in task.read_text().split())
            i += 1
        return pids

    def peak_rss(self) -> int:
        """VmHWM (peak resident set) of the worker and its descendants, in bytes."""
        total = 0
        for pid in self._tree():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
        return total

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""


@dataclass
class Sample:
    """One poll during the throughput run."""

    at: float  # monotonic time
    committed: int  # records committed by the group (within the wanted ends)
    rows: int  # rows in ClickHouse's snapshots table
    cpu: dict[str, float]  # CPU seconds of the worker (and of our Kafka and ClickHouse when we own them)


def cpu_of(workers: Sequence[Worker], others: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds of each worker ("scoring worker", or "scoring worker 1", "2"...) and of ``others``."""
    if len(workers) == 1:
        cpu = {"scoring worker": workers[0].cpu_seconds()}
    else:
        cpu = {f"scoring worker {i + 1}": w.cpu_seconds() for i, w in enumerate(workers)}
    cpu.update((name, cpu_seconds(pid)) for name, pid in others.items())
    return cpu


class GroupOffsets:
    """The scoring group's committed offsets on the snapshots topic."""

    def __init__(self, settings: Settings) -> None:
        self.bootstrap = settings.kafka_bootstrap
        self.admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap.split(","))
        self.group = settings.scoring_group()
        self.topic = settings.topic(Topic.ACCOUNT_SNAPSHOTS)

    def committed(self) -> Ends:
        try:
            offsets = self.admin.list_group_offsets({self.group: None}).get(self.group, {})
        except KafkaError:  # e.g. no coordinator yet on a fresh broker: nothing committed so far
            return {}
        return {
            tp.partition: meta.offset
            for tp, meta in offsets.items()
            if isinstance(tp, KafkaTopicPartition) and tp.topic == self.topic and meta.offset >= 0
        }

    def wait(
        self,
        ends: Mapping[int, int],
        workers: Sequence[Worker],
        rows: Callable[[], int],
        rows_wanted: int,
        timeout: float,
        poll_s: float = 0.25,
        others: Mapping[str, int] | None = None,
    ) -> list[Sample]:
        """Poll until the committed offsets reach ``ends``, or until ``COMMIT_GRACE_S`` after ``rows()``
        reached ``rows_wanted`` (the offsets are then reported short)."""
        samples: list[Sample] = []
        start = time.monotonic()
        next_note = start + 15.0
        while True:
            now = time.monotonic()
            committed = self.committed()
            cpu = cpu_of(workers, others or {})
            total = sum(min(committed.get(p, 0), end) for p, end in ends.items())
            samples.append(Sample(now, total, rows(), cpu))
            if all(committed.get(p, 0) >= end for p, end in ends.items()):
                return samples
            done = [x for x in samples if x.rows >= rows_wanted]
            if done and now - done[0].at > COMMIT_GRACE_S:
                return samples
            for worker in workers:
                worker.check_alive()
            if now > next_note:
                missing = sum(max(0, end - committed.get(p, 0)) for p, end in ends.items())
                print(f"  ... {missing:,} records not committed yet", flush=True)
                next_note = now + 15.0
            if now - start > timeout:
                raise SystemExit(f"the worker did not reach {ends} in {timeout:.0f}s (at {committed})")
            time.sleep(poll_s)

    def commit(self, ends: Mapping[int, int]) -> None:
        """Set the (stopped) group's committed offsets to ``ends``."""
        commit_offsets(self.bootstrap, self.group, self.topic, ends)

    def close(self) -> None:
        self.admin.close()


def snapshot_event(template: bytes, observed_at: datetime) -> AccountSnapshot:
    """The account of ``template`` observed again at ``observed_at`` (one more follower when active)."""
    d = json.loads(template)
    d.pop("event_id")
    d["observed_at"] = format_timestamp(observed_at)
    if d["status"] == "active":
        d["followers"] += 1
    return AccountSnapshot.model_validate(d)


def probe_records(pool: list[bytes], n: int, observed_at: datetime) -> tuple[Records, list[str]]:
    """``n`` accounts of ``pool`` observed again at ``observed_at``: the records and their event ids."""
    records, ids = [], []
    for template in random.sample(pool, n):
        s = snapshot_event(template, observed_at)
        records.append((s.account_id.encode(), s.to_event_bytes()))
        ids.append(s.event_id)
    return records, ids


@dataclass
class Start:
    """A timed start of the worker on a probe of events: seconds from the process start until..."""

    rows_s: float  # ... every probe row is in ClickHouse (snapshots)
    first_commit_s: float  # ... the group's committed offsets first move
    committed_s: float  # ... the committed offsets cover the probe


def timed_start(
    settings: Settings,
    worker: Worker,
    offsets: GroupOffsets,
    publisher: Publisher,
    probe: tuple[Records, list[str]],
    ends: Mapping[int, int],
    timeout: float,
) -> tuple[Start, Ends]:
    """Publish ``probe``, start the worker, time it (see :class:`Start`); return the new ends too."""
    records, ids = probe
    before = offsets.committed()
    ends = merge_ends(ends, publisher.publish(records))
    client = make_client(settings)
    db = settings.clickhouse_database
    sql = f"SELECT count() FROM {db}.{Table.SNAPSHOTS} WHERE event_id IN {{ids:Array(String)}}"
    started = worker.start()
    rows_s = first_s = committed_s = float("nan")
    try:
        while True:
            now = time.monotonic()
            if rows_s != rows_s and client.query(sql, parameters={"ids": ids}).result_rows[0][0] >= len(ids):
                rows_s = now - started
            committed = offsets.committed()
            if first_s != first_s and any(committed.get(p, 0) > before.get(p, 0) for p in ends):
                first_s = now - started
            if committed_s != committed_s and all(committed.get(p, 0) >= e for p, e in ends.items()):
                committed_s = now - started
            if rows_s == rows_s and (committed_s == committed_s or now - started - rows_s > COMMIT_GRACE_S):
                return Start(rows_s, first_s, committed_s), ends
            worker.check_alive()
            if now - started > timeout:
                raise SystemExit(f"the worker did not take {len(ids):,} events in {timeout:.0f}s")
            time.sleep(0.1)
    finally:
        client.close()


@dataclass
class Freshness:
    """Acknowledgement-to-queryable delays of the sampled events, in seconds."""

    snapshots: list[float] = field(default_factory=list)
    latest: list[float] = field(default_factory=list)
    sent: int = 0
    sampled: int = 0
    missing: int = 0
    achieved_rate: float = 0.0


def measure_freshness(
    settings: Settings, pool: list[bytes], rate: int, seconds: float, worker: Worker
) -> Freshness:
    """Publish ``rate`` events/s for ``seconds``, each observed when sent, and follow a sample of them."""
    db = settings.clickhouse_database
    out = Freshness()
    lock = threading.Lock()
    # event_id -> (account_id, observed_at ms, ack time); account_id -> (observed_at ms, ack time)
    pending_snap: dict[str, tuple[str, float]] = {}
    pending_latest: dict[str, tuple[int, float]] = {}
    done = threading.Event()
    order = pool[:]
    random.shuffle(order)
    tick_s = 0.1
    per_tick = max(1, round(rate * tick_s))

    def produce() -> None:
        publisher = Publisher(settings, client_id="bench-freshness")
        try:
            publisher.publish(probe_records(pool, 10, datetime.now(UTC))[0])  # metadata, connections
            start = time.monotonic()
            k = 0
            while (now := time.monotonic()) < start + seconds:
                batch: Records = []
                sampled: list[AccountSnapshot] = []
                observed = datetime.now(UTC)
                for _ in range(per_tick):
                    s = snapshot_event(order[k % len(order)], observed)
                    batch.append((s.account_id.encode(), s.to_event_bytes()))
                    if k % SAMPLE_EVERY == 0:
                        sampled.append(s)
                    k += 1
                publisher.publish(batch)
                acked = time.monotonic()
                ms = int(observed.timestamp() * 1000)
                with lock:
                    for s in sampled:
                        pending_snap[s.event_id] = (s.account_id, acked)
                        # an account comes back once per pass over the pool (200,000 of them)
                        pending_latest[s.account_id] = (ms, acked)
                out.sent += len(batch)
                out.sampled += len(sampled)
                next_tick = start + (k // per_tick) * tick_s
                if next_tick > now:
                    time.sleep(max(0.0, next_tick - time.monotonic()))
            out.achieved_rate = out.sent / (time.monotonic() - start)
        finally:
            publisher.close()
            done.set()

    def poll() -> None:
        client = make_client(settings)
        try:
            grace_end: float | None = None
            while True:
                with lock:  # the oldest first, at most POLL_IDS: a query's parameter is at most 128 KiB
                    snap = dict(itertools.islice(pending_snap.items(), POLL_IDS))
                    latest = dict(itertools.islice(pending_latest.items(), POLL_IDS))
                if done.is_set():
                    grace_end = grace_end or time.monotonic() + 30.0
                    if (not snap and not latest) or time.monotonic() > grace_end:
                        with lock:
                            out.missing = len(pending_snap) + len(pending_latest)
                        return
                if not snap and not latest:
                    time.sleep(POLL_S)
                    continue
                t0 = time.monotonic()
                if snap:
                    rows = client.query(
                        f"SELECT event_id FROM {db}.{Table.SNAPSHOTS} "
                        "WHERE account_id IN {a:Array(String)} AND event_id IN {e:Array(String)}",
                        parameters={"a": sorted({a for a, _ in snap.values()}), "e": list(snap)},
                    ).result_rows
                    with lock:
                        for (event_id,) in rows:
                            if event_id in pending_snap:
                                out.snapshots.append(t0 - pending_snap.pop(event_id)[1])
                t1 = time.monotonic()
                if latest:
                    rows = client.query(
                        "SELECT account_id, toUnixTimestamp64Milli(max(observed_at)) "
                        f"FROM {db}.{Table.ACCOUNT_LATEST} WHERE account_id IN {{a:Array(String)}} "
                        "GROUP BY account_id",
                        parameters={"a": list(latest)},
                    ).result_rows
                    with lock:
                        for account_id, ms in rows:
                            wanted = pending_latest.get(account_id)
                            if wanted is not None and ms >= wanted[0]:
                                out.latest.append(t1 - wanted[1])
                                del pending_latest[account_id]
                time.sleep(max(0.0, POLL_S - (time.monotonic() - t0)))
        finally:
            client.close()

    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:
                errors.append(exc)
                done.set()

        return run

    threads = [threading.Thread(target=guarded(f), daemon=True) for f in (produce, poll)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        worker.check_alive()
        if errors:
            raise errors[0]
        time.sleep(0.5)
    if errors:
        raise errors[0]
    return out


@dataclass
class Throughput:
    """One run of the worker(s) through the pre-loaded events."""

    rate: float = 0.0  # events/s by committed offsets (the target)
    rows_rate: float = 0.0  # events/s by rows in ClickHouse
    cpu_share: dict[str, float] = field(default_factory=dict)  # of one core, by process
    cpu_per_event: float = 0.0  # CPU seconds of the workers together, an event
    commit_lag_s: float = 0.0  # offsets all committed this long after the last row (NaN: stalled)
    short_at_commit: int = 0  # rows not in ClickHouse yet when every offset was committed (must be 0)
    uncommitted: int = 0
    rows_ok: bool = False


@dataclass
class Results:
    workers: int = 1  # --workers
    one: Throughput = field(default_factory=Throughput)
    many: Throughput | None = None  # --workers N > 1
    floor_rate: float = 0.0
    floor_cpu_per_event: float = 0.0
    baseline_rate: float = 0.0
    events: int = 0
    accounts: int = 0
    ticks: int = 1
    fresh: Freshness = field(default_factory=Freshness)
    rss_loaded: int = 0
    rss_recovered: int = 0
    start_empty: Start = field(default_factory=lambda: Start(0.0, 0.0, 0.0))
    start_full: Start = field(default_factory=lambda: Start(0.0, 0.0, 0.0))
    changelog_records: int = 0
    changelog_bytes: int = 0
    changelog_read_s: float = 0.0
    loads: list[tuple[str, tuple[float, float, float]]] = field(default_factory=list)


def throughput(
    settings: Settings,
    workers: Sequence[Worker],
    offsets: GroupOffsets,
    begin: Mapping[int, int],
    ends: Mapping[int, int],
    events: int,
    accounts: int,
    since: datetime,
    timeout: float,
    others: Mapping[str, int],
) -> Throughput:
    """Start ``workers`` (one consumer group) on the pre-loaded ``begin`` → ``ends`` (``events`` events
    of ``accounts`` accounts, observed from ``since``) and time them until every offset is committed."""
    out = Throughput()
    client = make_client(settings)
    db = settings.clickhouse_database

    def rows() -> int:
        return int(client.command(f"SELECT count() FROM {db}.{Table.SNAPSHOTS}"))  # type: ignore[arg-type]

    rows_base = rows()
    for worker in workers:
        worker.start()
    base = sum(begin.values())
    samples = offsets.wait(ends, workers, rows, rows_base + events, timeout, others=others)
    # Offsets are committed only after their rows are written: rows missing once every offset is
    # committed are a fault of the worker (reported, then waited for so that the rates can be computed).
    out.short_at_commit = max(0, rows_base + events - samples[-1].rows)
    deadline = time.monotonic() + 60.0
    while samples[-1].rows < rows_base + events and time.monotonic() < deadline:
        time.sleep(0.25)
        samples.append(Sample(time.monotonic(), samples[-1].committed, rows(), cpu_of(workers, others)))
    if samples[-1].rows < rows_base + events:
        raise SystemExit(f"only {samples[-1].rows - rows_base:,} of {events:,} rows ever written")
    # By committed offsets (the target): from their first move to their last one; when they stalled
    # (rows all written, offsets not), up to when the bench gave up waiting.
    moved = [x for x in samples if x.committed > base]
    first = moved[0]
    out.uncommitted = sum(ends.values()) - moved[-1].committed
    last = moved[-1] if out.uncommitted else next(x for x in moved if x.committed == moved[-1].committed)
    out.rate = (last.committed - first.committed) / (last.at - first.at)
    # How long after the last row the offsets were committed (NaN: not within COMMIT_GRACE_S).
    rows_done = next(x.at for x in samples if x.rows >= rows_base + events)
    out.commit_lag_s = float("nan") if out.uncommitted else last.at - rows_done
    # By rows in ClickHouse: from the first rows to the last ones (the CPU figures are taken there).
    r0 = next(x for x in samples if x.rows > rows_base)
    r1 = next(x for x in samples if x.rows >= rows_base + events)
    out.rows_rate = (r1.rows - r0.rows) / (r1.at - r0.at)
    out.cpu_share = {name: (r1.cpu[name] - r0.cpu[name]) / (r1.at - r0.at) for name in r1.cpu}
    worker_cpu = sum(r1.cpu[n] - r0.cpu[n] for n in r1.cpu if n.startswith("scoring worker"))
    out.cpu_per_event = worker_cpu / (r1.rows - r0.rows)
    snap_rows = client.query(
        f"SELECT count() FROM {db}.{Table.SNAPSHOTS} FINAL WHERE observed_at >= {{t:DateTime64(3)}}",
        parameters={"t": since},
    ).result_rows[0][0]
    latest_rows = client.query(f"SELECT count() FROM {db}.{Table.ACCOUNT_LATEST} FINAL").result_rows[0][0]
    client.close()
    out.rows_ok = snap_rows == events and latest_rows == accounts and not out.short_at_commit
    if out.short_at_commit:
        print(f"OFFSETS COMMITTED BEFORE THEIR ROWS: {out.short_at_commit:,} rows missing at the last commit")
    verdict = "ok" if out.rows_ok else "WRONG"
    print(
        f"rows: {Table.SNAPSHOTS} {snap_rows:,} (want {events:,}), "
        f"{Table.ACCOUNT_LATEST} {latest_rows:,} (want {accounts:,}): {verdict}",
        flush=True,
    )
    return out


def say_rate(label: str, t: Throughput) -> None:
    stalled = f"; {t.uncommitted:,} events never committed" if t.uncommitted else ""
    cpu = ", ".join(f"{name} {100 * share:.0f}%" for name, share in t.cpu_share.items())
    print(
        f"{label}: {t.rate:,.0f} events/s by committed offsets{stalled}, {t.rows_rate:,.0f} events/s by "
        f"rows in ClickHouse; CPU, % of one core: {cpu}",
        flush=True,
    )


def run(
    settings: Settings, args: argparse.Namespace, tmp: Path, stack: ExitStack, others: Mapping[str, int]
) -> Results:
    res = Results(workers=args.workers, ticks=args.ticks)
    say: Callable[[str], None] = lambda text: print(text, flush=True)  # noqa: E731
    res.loads.append(("start", os.getloadavg()))
    topic = settings.topic(Topic.ACCOUNT_SNAPSHOTS)
    prepare_database(settings)
    ensure_topics(settings)

    # The events: ``ticks`` observations of every simulated account, an hour apart, ending 2 h ago.
    t0 = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
    first_tick = t0 - timedelta(hours=args.ticks - 1)
    params = replace(SimulatorParams(), scale=args.scale)
    sim = Simulator(load_entities(), params=params, seed=0, origin=first_tick - timedelta(days=2))
    records: Records = []
    for k in range(args.ticks):
        for chunk in sim.observe(first_tick + timedelta(hours=k)).iter_records():
            records.extend(chunk)
    res.events = len(records)
    res.accounts = len({key for key, _ in records})
    # One template per account: a probe observes its accounts at one instant, and two snapshots of an
    # account at the same instant are one event (with --ticks > 1 the bench waited for a row too many).
    latest = sorted(dict(records).items())  # account -> its last snapshot
    pool = [value for _, value in random.Random(1).sample(latest, min(len(latest), 200_000))]
    say(f"{res.events:,} events of {res.accounts:,} accounts ({args.ticks} tick(s), scale {args.scale})")

    env = dict(os.environ)
    env.update(
        BAROMETRE_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        BAROMETRE_CLICKHOUSE_URL=settings.clickhouse_url,
        BAROMETRE_CLICKHOUSE_DATABASE=settings.clickhouse_database,
        BAROMETRE_KAFKA_TOPIC_PREFIX=settings.kafka_topic_prefix,
        BAROMETRE_KAFKA_PARTITIONS=str(settings.kafka_partitions),
        BAROMETRE_SCORING_PORT=str(args.web_port),
        BAROMETRE_DATA_DIR=str(tmp / "worker"),
        BAROMETRE_LOG_LEVEL="WARNING",
    )
    log_path = Path(args.worker_log) if args.worker_log else tmp / "scoring.log"
    worker = Worker(env, log_path, tmp / "worker" / "scoring", args.worker_script)
    stack.callback(worker.stop)
    offsets = GroupOffsets(settings)
    stack.callback(offsets.close)
    publisher = Publisher(settings, client_id="bench-scoring")
    stack.callback(publisher.close)

    # 1. First start, no state: time until 1,000 events are consumed (the start-up reference).
    probe = probe_records(pool, PROBE, t0 - timedelta(hours=args.ticks))
    res.start_empty, ends = timed_start(settings, worker, offsets, publisher, probe, {}, timeout=args.timeout)
    worker.stop()
    worker.delete_state()
    if res.start_empty.committed_s != res.start_empty.committed_s:  # stalled (see Start): commit for it
        offsets.commit(ends)
    say(f"first start (no state): {PROBE:,} events in ClickHouse after {res.start_empty.rows_s:.1f}s")

    # 2. Pre-load the topic, then the bare consumer, Faust's floor and the worker read the same records
    # (same topic, partitions and offsets), one after the other.
    begin = dict(ends)
    t = time.perf_counter()
    ends = merge_ends(ends, publish(publisher, records))
    say(f"published {len(records):,} events in {time.perf_counter() - t:.1f}s")
    n, secs, _ = asyncio.run(bare_read(settings.kafka_bootstrap, topic, begin, ends))
    res.baseline_rate = n / secs
    say(f"bare aiokafka consumer: {res.baseline_rate:,.0f} events/s")
    res.loads.append(("before Faust's floor", os.getloadavg()))
    floor_group = f"{settings.kafka_topic_prefix}faust-floor"
    res.floor_rate, res.floor_cpu_per_event = faust_floor(
        "worker", settings.kafka_bootstrap, floor_group, topic, begin, ends
    )
    say(f"Faust's floor (a do-nothing agent run as the worker runs): {res.floor_rate:,.0f} events/s")

    res.loads.append(("before the worker run", os.getloadavg()))
    res.one = throughput(
        settings, [worker], offsets, begin, ends, res.events, res.accounts, first_tick, args.timeout, others
    )
    res.loads.append(("after the worker run", os.getloadavg()))
    say_rate("one worker", res.one)

    # 3. Freshness at a steady rate, with the state of every account loaded.
    res.fresh = measure_freshness(settings, pool, args.rate, args.fresh_seconds, worker)
    res.loads.append(("after the freshness run", os.getloadavg()))
    res.rss_loaded = worker.peak_rss()
    f = res.fresh
    say(f"freshness: {f.sent:,} events at {f.achieved_rate:,.0f}/s, {f.sampled:,} followed")

    # 4. Recovery: stop, forget the local state, publish 1,000 events, start again.
    worker.stop()
    worker.delete_state()
    ends = merge_ends(ends, topic_ends(settings.kafka_bootstrap, topic))
    if res.one.uncommitted:
        # Every row is in ClickHouse (checked above) but faust did not commit: commit for it, or the
        # restart would score them all again before the probe and time that instead of the recovery.
        offsets.commit(ends)
    probe = probe_records(pool, PROBE, datetime.now(UTC))
    res.start_full, ends = timed_start(
        settings, worker, offsets, publisher, probe, ends, timeout=args.timeout
    )
    res.rss_recovered = worker.peak_rss()
    worker.stop()
    changelog = [
        name
        for name in offsets.admin.list_topics()
        if name.startswith(settings.kafka_topic_prefix) and name.endswith("account-state-changelog")
    ]
    if changelog:
        cl_ends = topic_ends(settings.kafka_bootstrap, changelog[0])
        n, secs, size = asyncio.run(bare_read(settings.kafka_bootstrap, changelog[0], {}, cl_ends))
        res.changelog_records, res.changelog_bytes = sum(cl_ends.values()), size
        res.changelog_read_s = secs * res.changelog_records / max(n, 1)

    # 5. Scale-out: N workers of one consumer group on the same records, from a fresh start (topics,
    # group, changelogs and database of their own, so that nothing of the runs above is reused).
    if args.workers > 1:
        many = settings.model_copy(
            update={
                "kafka_topic_prefix": settings.kafka_topic_prefix.removesuffix(".") + "w.",
                "clickhouse_database": settings.clickhouse_database + "_w",
            }
        )
        stack.callback(clean_up, many)
        prepare_database(many)
        ensure_topics(many)
        publisher_many = Publisher(many, client_id="bench-scoring-workers")
        try:
            ends_many = publish(publisher_many, records)
        finally:
            publisher_many.close()
        env_many = dict(
            env,
            BAROMETRE_KAFKA_TOPIC_PREFIX=many.kafka_topic_prefix,
            BAROMETRE_CLICKHOUSE_DATABASE=many.clickhouse_database,
        )
        workers = [
            Worker(
                dict(
                    env_many, BAROMETRE_SCORING_INSTANCE=str(i), BAROMETRE_SCORING_PORT=str(args.web_port + i)
                ),
                log_path.with_name(f"{log_path.stem}-{i}{log_path.suffix}"),
                tmp / "worker" / f"scoring-{i}",
                args.worker_script,
            )
            for i in range(1, args.workers + 1)
        ]
        for w in workers:
            stack.callback(w.stop)
        offsets_many = GroupOffsets(many)
        stack.callback(offsets_many.close)
        res.loads.append((f"before {args.workers} workers", os.getloadavg()))
        res.many = throughput(
            many,
            workers,
            offsets_many,
            {},
            ends_many,
            res.events,
            res.accounts,
            first_tick,
            args.timeout,
            others,
        )
        res.loads.append((f"after {args.workers} workers", os.getloadavg()))
        say_rate(f"{args.workers} workers", res.many)
        for w in workers:
            w.stop()
    res.loads.append(("end", os.getloadavg()))
    return res


def clean_up(settings: Settings) -> None:
    """Drop the bench's database and delete its topics (changelog included)."""
    try:
        client = make_client(settings, database=None)
        client.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        client.close()
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap.split(","))
        mine = [t for t in admin.list_topics() if t.startswith(settings.kafka_topic_prefix)]
        if mine:
            admin.delete_topics(mine)
        admin.close()
    except Exception as exc:  # the figures matter more than the clean-up
        print(f"clean-up failed: {exc}", file=sys.stderr)


def report(res: Results) -> bool:
    gib = 2**30
    f, one = res.fresh, res.one
    ratio = one.rate / res.floor_rate
    rss = max(res.rss_loaded, res.rss_recovered)
    recovery = res.start_full.rows_s - res.start_empty.rows_s
    fresh_p99 = max(quantile(f.snapshots, 0.99), quantile(f.latest, 0.99))
    lines = [
        "",
        f"machine: {os.cpu_count()} CPUs, shared with whatever else runs; load average (1, 5, 15 min):",
        *(f"  {label:<26} {a:5.2f} {b:5.2f} {c:5.2f}" for label, (a, b, c) in res.loads),
        f"events: {res.events:,} of {res.accounts:,} accounts ({res.ticks} tick(s))",
        f"bare aiokafka consumer (for information): {res.baseline_rate:>10,.0f} events/s",
        f"Faust's floor (no-op agent, as the worker): {res.floor_rate:>10,.0f} events/s  "
        f"CPU {1e6 * res.floor_cpu_per_event:.0f} µs an event",
        f"one scoring worker:                        {one.rate:>10,.0f} events/s  ratio to the floor "
        f"{ratio:.2f}  (rows in ClickHouse {'checked' if one.rows_ok else 'WRONG'})",
        f"  the same by rows in ClickHouse:          {one.rows_rate:>10,.0f} events/s  ratio to the floor "
        f"{one.rows_rate / res.floor_rate:.2f}",
        "  CPU during that run, % of one core: "
        + ", ".join(f"{name} {100 * share:.0f}%" for name, share in one.cpu_share.items()),
        f"  worker CPU per event: {1e6 * one.cpu_per_event:.0f} µs "
        f"(-> {1 / one.cpu_per_event:,.0f} events/s at most on one free core)",
        f"  the floor's CPU per event / the worker's: {res.floor_cpu_per_event / one.cpu_per_event:.2f} "
        "(for information: the ratio of the rates if both were bound by their CPU, each on a free core; "
        "it moves less than the rates with the machine's load)",
        (
            f"  COMMIT STALL: {one.uncommitted:,} events written but still not committed "
            f"{COMMIT_GRACE_S:.0f}s after the last row"
            if one.uncommitted
            else f"  offsets all committed {one.commit_lag_s:.1f}s after the last row was written"
        ),
    ]
    many = res.many
    if many is not None:
        lines += [
            f"{res.workers} scoring workers, one group:              {many.rate:>10,.0f} events/s combined, "
            f"{many.rate / one.rate:.2f} x one worker  (rows in ClickHouse "
            f"{'checked' if many.rows_ok else 'WRONG'})",
            f"  the same by rows in ClickHouse:          {many.rows_rate:>10,.0f} events/s, "
            f"{many.rows_rate / one.rows_rate:.2f} x one worker",
            "  CPU during that run, % of one core: "
            + ", ".join(f"{name} {100 * share:.0f}%" for name, share in many.cpu_share.items()),
            f"  on this machine's {os.cpu_count()} cores, shared by the workers, Kafka, ClickHouse and the "
            "bench, the combined rate is bounded by the cores, not by the workers",
        ]
    lines.append(
        f"freshness at {f.achieved_rate:,.0f} events/s, Kafka ack -> queryable, polled every "
        f"{POLL_S * 1000:.0f} ms ({f.missing} samples never seen):"
    )
    for name, values in (("snapshots row", f.snapshots), ("account_latest row", f.latest)):
        lines.append(
            f"  {name:<20} p50 {quantile(values, 0.5):5.2f}s  p99 {quantile(values, 0.99):5.2f}s  "
            f"max {max(values, default=float('nan')):5.2f}s  ({len(values):,} samples)"
        )
    lines += [
        f"peak RSS of the worker: {res.rss_loaded / gib:.2f} GiB with {res.accounts:,} accounts loaded "
        f"({res.ticks} point(s) each, one day), {res.rss_recovered / gib:.2f} GiB after recovering them",
        f"start, then {PROBE:,} new events: seconds from the process start until",
    ]
    starts = (("without state", res.start_empty), (f"{res.accounts:,} accounts", res.start_full))
    for label, start in starts:
        committed = "never (stall)" if start.committed_s != start.committed_s else f"{start.committed_s:.1f}s"
        lines.append(
            f"  {label:<18} rows in ClickHouse {start.rows_s:5.1f}s, "
            f"first commit {start.first_commit_s:5.1f}s, all committed {committed}"
        )
    lines.append(f"  -> table recovery: {recovery:.1f}s (difference of the rows figures)")
    if res.changelog_records:
        lines.append(
            f"  changelog: {res.changelog_records:,} records, {res.changelog_bytes / 2**20:.0f} MiB "
            f"({res.changelog_bytes / res.changelog_records:.0f} B/record); a bare aiokafka read of it "
            f"takes {res.changelog_read_s:.1f}s"
        )
    checks = targets(res, ratio, fresh_p99, rss, recovery)
    lines.append("targets (exit status 1 when a measured one is missed):")
    for name, figure, ok in checks:
        verdict = "not measured" if ok is None else ("met" if ok else "MISSED")
        lines.append(f"  {name:<52} {verdict:<12} {figure}")
    print("\n".join(lines))
    return all(ok is not False for _, _, ok in checks)


def targets(
    res: Results, ratio: float, fresh_p99: float, rss: float, recovery: float
) -> list[tuple[str, str, bool | None]]:
    """(target, figure or why it is not measured, met / missed / None when not measured)."""
    gib = 2**30
    f, one = res.fresh, res.one
    checks: list[tuple[str, str, bool | None]] = [
        (f"one worker >= {FLOOR_RATIO_TARGET} x Faust's floor", f"{ratio:.2f}", ratio >= FLOOR_RATIO_TARGET)
    ]
    rate = f"{one.rate:,.0f} events/s"
    if res.ticks >= RATE_TICKS:
        checks.append(
            (f"one worker >= {RATE_TARGET:,} events/s over {RATE_TICKS} ticks", rate, one.rate >= RATE_TARGET)
        )
    else:
        checks.append(
            (
                f"one worker >= {RATE_TARGET:,} events/s over {RATE_TICKS} ticks",
                f"{rate} over {res.ticks} tick(s): the target is over --ticks {RATE_TICKS}",
                None,
            )
        )
    name = f"freshness p99 <= {FRESH_TARGET_S:g} s at {FRESH_RATE:,} events/s"
    p99 = f"p99 {fresh_p99:.2f} s at {f.achieved_rate:,.0f} events/s, {f.missing} never seen"
    if f.achieved_rate >= 0.95 * FRESH_RATE:
        checks.append((name, p99, fresh_p99 <= FRESH_TARGET_S and f.missing == 0))
    else:
        checks.append((name, f"{p99}: below the target's rate (--rate {FRESH_RATE})", None))
    name = f"peak RSS <= {RSS_TARGET / gib:g} GiB, {RSS_ACCOUNTS:,} accounts x a year"
    peak = f"{rss / gib:.2f} GiB with {res.accounts:,} accounts x {res.ticks} point(s) of one day"
    if res.accounts >= RSS_ACCOUNTS and rss > RSS_TARGET:
        # a year of history can only take more: the target is missed already
        checks.append((name, f"{peak}: over with one day already", False))
    else:
        checks.append((name, f"{peak}; the bench loads no year of daily history", None))
    name = f"recovery of {RECOVERY_RECORDS:,} changelog records <= {RECOVERY_TARGET_S:g} s"
    took = f"{recovery:.1f} s for {res.changelog_records:,} records"
    if res.changelog_records >= RECOVERY_RECORDS:
        checks.append((name, took, recovery <= RECOVERY_TARGET_S))
    else:
        per_tick = max(1, res.changelog_records // max(1, res.ticks))
        estimate = recovery * RECOVERY_RECORDS / max(1, res.changelog_records)
        checks.append(
            (
                name,
                f"{took}, fewer than the target's (about --ticks {-(-RECOVERY_RECORDS // per_tick)} makes "
                f"enough); {estimate:.0f} s in proportion (an estimate, not a measure)",
                None,
            )
        )
    rows_ok = one.rows_ok and (res.many is None or res.many.rows_ok)
    checks.append(("rows in ClickHouse: none lost, none doubled", "checked" if rows_ok else "WRONG", rows_ok))
    return checks


def main() -> int:
    # A SIGTERM (timeout, make) unwinds the ExitStack: the worker, Kafka and ClickHouse are stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=9.4, help="simulator scale (9.4: ~300,000 accounts)")
    parser.add_argument("--ticks", type=int, default=RATE_TICKS, help="snapshots per account in the pre-load")
    parser.add_argument("--workers", type=int, default=1, help="then this many workers in one group, if > 1")
    parser.add_argument("--rate", type=int, default=FRESH_RATE, help="events/s of the freshness phase")
    parser.add_argument("--fresh-seconds", type=float, default=40.0)
    parser.add_argument("--timeout", type=float, default=600.0, help="longest wait for the worker")
    parser.add_argument("--web-port", type=int, default=WEB_PORT)
    parser.add_argument("--worker-log", help="keep the worker's log there (default: deleted with the run)")
    parser.add_argument(
        "--worker-script", help="run this script instead of `-m services.scoring` (e.g. a profiler wrapper)"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    others: dict[str, int] = {}  # the processes we own, whose CPU use is reported
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, True)
        kafka = os.environ.get("BAROMETRE_BENCH_KAFKA")
        if not kafka:
            ensure_jars()
            cluster = KafkaCluster(tmp / "kafka", port=KAFKA_PORT, controller_port=KAFKA_CONTROLLER_PORT)
            cluster.start()
            others["Kafka broker"] = cluster._procs[0].pid  # no public accessor; a bench may peek
            stack.callback(cluster.stop)
            kafka = cluster.bootstrap_servers
        ch = os.environ.get("BAROMETRE_BENCH_CLICKHOUSE")
        if not ch:
            endpoint = ClickHouseEndpoint(tmp / "ch", port=CH_PORT)
            endpoint.start()
            assert endpoint._proc is not None
            others["ClickHouse endpoint"] = endpoint._proc.pid
            stack.callback(endpoint.stop)
            ch = endpoint.url
        settings = Settings(
            kafka_bootstrap=kafka,
            clickhouse_url=ch,
            clickhouse_database=f"bench_scoring_{uuid.uuid4().hex[:8]}",
            kafka_topic_prefix=f"benchscoring{uuid.uuid4().hex[:6]}.",
            data_dir=tmp / "data",
        )
        # On shared services, leave nothing behind (own ones go with the temporary directory).
        stack.callback(clean_up, settings)
        res = run(settings, args, tmp, stack, others)
    return 0 if report(res) else 1


if __name__ == "__main__":
    raise SystemExit(main())
