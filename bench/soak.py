"""Soak: the whole pipeline at a steady rate for an hour; lag flat, memory flat, nothing lost.

Runs the real services as their own processes, as ``barometre run`` does (``python -m services.ingest``
and ``python -m services.scoring``), on a fresh database and fresh topics, and feeds them through the
front door:

* the simulator's accounts at the scale of ``--accounts`` (300,000) are registered as simulated
  (``accounts.origin = 'simulator'``, as ``barometre simulate`` does: simulated data is always marked;
  every snapshot sent carries ``source: "simulator"``);
* preload: one snapshot of every account over HTTP as fast as ingest takes them, and the worker drained,
  so that it holds every account's state before the measure;
* steady phase: ``--rate`` snapshots/s (1,000) over HTTP for ``--duration`` seconds (3,600), in requests
  of ``--batch`` (500) from ``--clients`` threads on a fixed schedule: every account observed again on
  the simulator's wall clock, round after round (300 s a round at 1,000/s over 300,000 accounts). One
  line in ``--invalid-every`` (500) more is invalid (a negative count, an observation a day ahead, a
  platform that is not the account's, a count that is text): ingest must refuse each of them. One bad
  record for every ``--dead-letter-every`` (1,000) snapshots is written straight to the snapshots topic
  (not JSON, not UTF-8, breaking the contract, a valid event under the wrong key, a tombstone), as a
  broken producer would: the worker must dead-letter each of them with its reason;
* every ``--sample-every`` seconds (10) it prints and records: the scoring group's lag (end offsets of
  the snapshots topic against the group's committed offsets), rows in ClickHouse's ``snapshots``,
  records on the dead-letter topic, the resident set (VmRSS) and CPU of each process (the services, and
  Kafka and the ClickHouse endpoint when the soak started them), the machine's busy cores and load;
* then it stops sending, waits for the worker to drain, counts distinct stored event ids and reads the
  dead-letter topic, and checks: produced (acknowledged by ingest + bad records acknowledged by Kafka) =
  stored + dead letters, exactly; every acknowledged snapshot stored once; every bad record dead-lettered
  with the right code; ingest refused exactly the invalid lines; the rate held (>= 95 %); the lag flat
  (mean of the last window within ``--lag-bound-s`` seconds of traffic of the first window after the
  warm-up); the RSS of ingest and of the worker flat (<= ``--rss-growth``, 10 %, from the first window
  after the warm-up to the last). Exit status 1 when a check fails.

The figures go to ``test-artifacts/soak/soak-<time>.json`` (config, every sample, totals, checks) with
the services' logs beside. Starts its own Kafka broker and ClickHouse endpoint on ports from
``--port-base`` (Kafka at the base, its controller +1, ClickHouse +2, ingest +3, the worker +4), or uses
BAROMETRE_BENCH_KAFKA / BAROMETRE_BENCH_CLICKHOUSE when set (and then drops its database and topics).

Not part of ``make bench`` (it takes an hour): ``make soak``, or
``python bench/soak.py [--duration 3600] [--rate 1000] [--accounts 300000]``; ``--duration 120`` for a
smoke run (about four minutes with the preload and the drain).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import orjson
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError
from kafka.structs import TopicPartition
from pydantic import SecretStr

from bench._servers import bench_servers
from bench._soak import JUDGED, Limits, Sample, Totals, judge, rss_of, trend
from infra.process import die_with_parent
from services.common.bootstrap import prepare_database
from services.common.clickhouse import make_client
from services.common.kafka import ensure_topics
from services.common.names import DeadLetterCode, Table, Topic
from services.common.reference import load_entities
from services.common.settings import Settings
from services.ingest.simulate import register_accounts
from services.ingest.sources.simulator import Simulator, SimulatorParams

ROOT = Path(__file__).resolve().parents[1]
PORT_BASE = 19890
TOKEN = "soak-bench-token-0123456789abcdef0123456789"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


# --- Processes: the services, and what else this soak started (Kafka, the ClickHouse endpoint).


class ServiceProcess:
    """One barometre service as its own process, exactly as ``barometre run`` starts it."""

    def __init__(self, name: str, module: str, port: int, env: dict[str, str], log_path: Path) -> None:
        self.name, self.module, self.env, self.log_path = name, module, env, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(signal.SIGKILL),
            )

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(f"{self.url}/readyz", timeout=3).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"{self.name} not ready after {timeout:.0f}s; its log ends with:\n{self.tail()}")

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise SystemExit(f"{self.name} exited; its log ends with:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with suppress(OSError):
            out.extend(int(c) for c in task.read_text().split())
    return out


def _tree(pid: int) -> list[int]:
    pids, i = [pid], 0
    while i < len(pids):
        pids.extend(_children(pids[i]))
        i += 1
    return pids


def _stat(pid: int) -> tuple[float, float]:
    """(CPU seconds, RSS in MB) of one process; zeros once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK, int(fields[21]) * PAGE_MB


def own_processes(services: list[ServiceProcess]) -> dict[str, int]:
    """The processes to watch, by name: the services, and Kafka and the ClickHouse endpoint when they
    are this soak's own children."""
    named = {s.name: s.proc.pid for s in services if s.proc is not None}
    known = set(named.values())
    for pid in _children(os.getpid()):
        if pid in known:
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"kafka.Kafka" in cmdline:
            named[f"kafka{'' if 'kafka' not in named else pid}"] = pid
        elif b"infra.clickhouse" in cmdline:
            named["clickhouse"] = pid
    return named


def tree_stat(pid: int) -> tuple[float, float]:
    cpu = rss = 0.0
    for p in _tree(pid):
        c, r = _stat(p)
        cpu, rss = cpu + c, rss + r
    return cpu, rss


def machine_busy() -> float:
    """CPU-seconds spent busy by all cores since boot (user, nice, system, irq, softirq, steal)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:3]) + sum(values[5:8])) / CLK_TCK


# --- What is sent: the simulator's accounts, round after round, with a few invalid lines.


@dataclass
class Chunk:
    """One request: JSON Lines, the valid snapshots first and ``invalid`` invalid lines after them."""

    at: float  # monotonic time it is due
    body: bytes
    valid: int
    invalid: int


@dataclass
class Counts:
    """What the senders did (under the feed's lock)."""

    sent: int = 0  # valid snapshots sent
    invalid_sent: int = 0
    accepted: int = 0  # acknowledged by ingest
    rejected: int = 0
    unexpected_rejections: int = 0  # valid snapshots refused
    invalid_accepted: int = 0
    requests: int = 0
    retries: int = 0  # 429 / 503 / transport errors answered by sending again
    failed_requests: int = 0
    errors: list[str] = field(default_factory=list)  # the first few


def _invalid_line(valid: bytes, k: int, now: datetime) -> bytes:
    """Line ``k`` of the invalid ones, built from a valid event: each breaks one rule ingest enforces."""
    d = orjson.loads(valid)
    d.pop("event_id", None)
    kind = k % 4
    if kind == 0:
        d["followers"] = -5  # a count is never negative
    elif kind == 1:
        d["observed_at"] = (now + timedelta(days=1)).isoformat()  # more than 5 minutes ahead
    elif kind == 2:
        d["platform"] = "youtube" if d["platform"] != "youtube" else "x"  # not the account's platform
    else:
        d["followers"] = "many"  # a count must be an integer
    return orjson.dumps(d)


class Feed:
    """The snapshots to send, in requests, each due at its time on a fixed schedule of ``rate``/s."""

    def __init__(self, sim: Simulator, accounts: int, batch: int, invalid_every: int) -> None:
        self.sim, self.accounts, self.batch, self.invalid_every = sim, accounts, batch, invalid_every
        self.lock = threading.Lock()
        self.counts = Counts()
        self.rounds = 0
        self.behind_s = 0.0
        self._lines: Iterator[bytes] = iter(())
        self._scheduled = 0  # valid snapshots handed out in this phase
        self._invalid = 0
        self._start = 0.0
        self._rate: float | None = None
        self._end: float | None = None
        self._limit: int | None = None

    def phase(
        self, rate: float | None, seconds: float | None = None, snapshots: int | None = None, batch: int = 0
    ) -> None:
        """Start a phase now: ``rate``/s (None: as fast as taken), until ``seconds`` or ``snapshots``, in
        requests of ``batch`` (when given)."""
        with self.lock:
            self.batch = batch or self.batch
            self._start = time.monotonic()
            self._rate = rate
            self._end = None if seconds is None else self._start + seconds
            self._limit = snapshots
            self._scheduled = 0

    def stop(self) -> None:
        """End the phase now (the requests under way are finished)."""
        with self.lock:
            self._end = self._start

    def _round(self) -> Iterator[bytes]:
        """Every account observed now (the first ``accounts`` the simulator shows), as event bytes."""
        batch = self.sim.observe(datetime.now(UTC))
        self.rounds += 1
        left = min(self.accounts, len(batch))
        for records in batch.iter_records(chunk_size=10_000):
            for _, value in records[:left]:
                yield value
            left -= len(records)
            if left <= 0:
                return

    def next(self) -> Chunk | None:
        """The next request, or None when the phase is over."""
        with self.lock:
            at = self._start + (self._scheduled / self._rate if self._rate else 0.0)
            if self._end is not None and at >= self._end:
                return None
            n = self.batch
            if self._limit is not None:
                n = min(n, self._limit - self._scheduled)
                if n <= 0:
                    return None
            lines: list[bytes] = []
            while len(lines) < n:
                line = next(self._lines, None)
                if line is None:
                    self._lines = self._round()
                    continue
                lines.append(line)
            valid = len(lines)
            before = self.counts.sent  # valid snapshots before this request, over the whole run
            invalid = (before + valid) // self.invalid_every - before // self.invalid_every
            now = datetime.now(UTC)
            for _ in range(invalid):
                lines.append(_invalid_line(lines[0], self._invalid, now))
                self._invalid += 1
            self._scheduled += valid
            self.counts.sent += valid
            self.counts.invalid_sent += invalid
            return Chunk(at, b"\n".join(lines) + b"\n", valid, invalid)

    def record(self, chunk: Chunk, answer: dict[str, Any] | None, retries: int, error: str | None) -> None:
        with self.lock:
            c = self.counts
            c.requests += 1
            c.retries += retries
            if answer is None:
                c.failed_requests += 1
                if error and len(c.errors) < 5:
                    c.errors.append(error)
                return
            indexes = [int(r["index"]) for r in answer["rejected"]]
            c.accepted += int(answer["accepted"])
            c.rejected += len(indexes)
            c.unexpected_rejections += sum(1 for i in indexes if i < chunk.valid)
            c.invalid_accepted += chunk.invalid - sum(1 for i in indexes if i >= chunk.valid)
            if len(c.errors) < 5:
                c.errors.extend(
                    f"valid line refused: {r['error']}"
                    for r in answer["rejected"]
                    if int(r["index"]) < chunk.valid
                )


def post(client: httpx.Client, chunk: Chunk) -> tuple[dict[str, Any] | None, int, str | None]:
    """Send one request until it is answered 200 (429 and 503 are waited out and sent again, as ingest
    asks; sending again is safe: the event ids are the same); (answer, retries, error)."""
    error = None
    for attempt in range(8):
        try:
            r = client.post(
                "/v1/snapshots",
                content=chunk.body,
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"},
            )
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            time.sleep(1.0)
            continue
        if r.status_code == 200:
            return r.json(), attempt, None
        error = f"{r.status_code} {r.text[:300]}"
        if r.status_code not in (429, 503):
            break
        time.sleep(min(30.0, float(r.headers.get("Retry-After", "1"))))
    return None, 8, error


def send(feed: Feed, url: str, clients: int) -> None:
    """Send the phase's requests from ``clients`` threads, each request at its time; return at its end."""

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while (chunk := feed.next()) is not None:
                delay = chunk.at - time.monotonic()
                feed.behind_s = max(0.0, -delay)
                if delay > 0:
                    time.sleep(delay)
                answer, retries, error = post(client, chunk)
                feed.record(chunk, answer, retries, error)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


# --- Bad records written straight to the snapshots topic, as a broken producer would.


class BadRecords:
    """Writes one bad record for every ``every`` snapshots of ``rate``/s to the snapshots topic."""

    def __init__(self, settings: Settings, valid: tuple[bytes, bytes], rate: float, every: int) -> None:
        key, value = valid
        self.kinds: list[tuple[DeadLetterCode, bytes | None, bytes | None]] = [
            (DeadLetterCode.INVALID_JSON, key, b'{"schema": "account_snapshot/1", "account_id": '),
            (DeadLetterCode.INVALID_ENCODING, key, b"\xff\xfe soak \xc3\x28"),
            (DeadLetterCode.INVALID_EVENT, key, b'{"schema":"account_snapshot/1","account_id":"x:soak"}'),
            (DeadLetterCode.INVALID_EVENT, b"soak-wrong-key", value),  # valid event, wrong key
            (DeadLetterCode.INVALID_EVENT, key, None),  # a tombstone
        ]
        self.topic = settings.topic(Topic.ACCOUNT_SNAPSHOTS)
        self.per_s = rate / every if every > 0 else 0.0
        self.producer = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap.split(","), acks="all", enable_idempotence=True
        )
        self.acknowledged = 0
        self.codes: Counter[str] = Counter()
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        if self.per_s > 0:
            self._thread.start()

    def _run(self) -> None:
        start, sent = time.monotonic(), 0
        while not self._stop.wait(0.2):
            due = int((time.monotonic() - start) * self.per_s)
            while sent < due:
                code, key, value = self.kinds[sent % len(self.kinds)]
                try:
                    self.producer.send(self.topic, key=key, value=value).get(timeout=30)
                except KafkaError:
                    self.failed += 1
                else:
                    self.acknowledged += 1
                    self.codes[code.value] += 1
                sent += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.producer.close()


# --- Sampling.


class Probe:
    """Reads the pipeline's state: offsets, ClickHouse rows, processes."""

    def __init__(self, settings: Settings, services: list[ServiceProcess]) -> None:
        self.settings, self.services = settings, services
        bootstrap = settings.kafka_bootstrap.split(",")
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.topic = settings.topic(Topic.ACCOUNT_SNAPSHOTS)
        self.dlq = settings.topic(Topic.ACCOUNT_SNAPSHOTS_DLQ)
        self.group = settings.scoring_group()
        self.parts = {t: self._partitions(t) for t in (self.topic, self.dlq)}
        self.ch = make_client(settings)
        self.db = settings.clickhouse_database
        self._cpu: dict[str, float] = {}
        self._busy = machine_busy()
        self._self_cpu = time.process_time()
        self._at = time.monotonic()

    def _partitions(self, topic: str) -> list[TopicPartition]:
        for _ in range(50):
            parts = self.consumer.partitions_for_topic(topic)
            if parts:
                return [TopicPartition(topic, p) for p in sorted(parts)]
            time.sleep(0.2)
        raise SystemExit(f"topic {topic} has no partitions")

    def ends(self, topic: str) -> dict[int, int]:
        return {tp.partition: o for tp, o in self.consumer.end_offsets(self.parts[topic]).items()}

    def committed(self) -> dict[int, int]:
        try:
            offsets = self.admin.list_group_offsets({self.group: None}).get(self.group, {})
        except KafkaError:  # no coordinator yet: nothing committed
            return {}
        return {
            tp.partition: meta.offset
            for tp, meta in offsets.items()
            if tp.topic == self.topic and meta.offset >= 0
        }

    def lag(self) -> tuple[int, int, int]:
        """(records on the snapshots topic, records the group committed, lag)."""
        ends, committed = self.ends(self.topic), self.committed()
        done = sum(min(committed.get(p, 0), e) for p, e in ends.items())
        return sum(ends.values()), done, sum(ends.values()) - done

    def stored(self) -> int:
        return int(self.ch.command(f"SELECT count() FROM {self.db}.{Table.SNAPSHOTS}"))  # type: ignore[arg-type]

    def dead_letters(self) -> int:
        return sum(self.ends(self.dlq).values())

    def processes(self) -> tuple[dict[str, float], dict[str, float], float, float]:
        """(RSS MB by process, CPU cores by process since the last call, machine busy cores, load)."""
        now, busy, own = time.monotonic(), machine_busy(), time.process_time()
        wall = max(now - self._at, 1e-6)
        rss: dict[str, float] = {}
        cores: dict[str, float] = {}
        for name, pid in own_processes(self.services).items():
            cpu, rss[name] = tree_stat(pid)
            if name in self._cpu:
                cores[name] = (cpu - self._cpu[name]) / wall
            self._cpu[name] = cpu
        cores["soak"] = (own - self._self_cpu) / wall
        machine = (busy - self._busy) / wall
        self._busy, self._self_cpu, self._at = busy, own, now
        return rss, cores, machine, os.getloadavg()[0]

    def read_dead_letters(self) -> tuple[int, int, dict[str, int]]:
        """(distinct source records, records, codes) on the dead-letter topic."""
        ends = self.ends(self.dlq)
        consumer = KafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap.split(","), enable_auto_commit=False
        )
        try:
            parts = [tp for tp in self.parts[self.dlq] if ends.get(tp.partition, 0) > 0]
            consumer.assign(parts)
            consumer.seek_to_beginning(*parts)
            seen: set[tuple[int, int]] = set()
            codes: Counter[str] = Counter()
            records = 0
            while any(consumer.position(tp) < ends[tp.partition] for tp in parts):
                for msgs in consumer.poll(timeout_ms=1000, max_records=5000).values():
                    for m in msgs:
                        records += 1
                        d = orjson.loads(m.value)
                        source = (int(d["partition"]), int(d["offset"]))
                        if d["topic"] == self.topic and source not in seen:
                            seen.add(source)
                            codes[d["error"]["code"]] += 1
            return len(seen), records, dict(codes)
        finally:
            consumer.close()

    def close(self) -> None:
        self.ch.close()
        self.consumer.close()
        self.admin.close()


HEAD = (
    f"{'t s':>6} {'sent/s':>7} {'acked':>10} {'lag':>7} {'stored':>10} {'dead':>6} {'behind':>6} "
    "| RSS MB: ingest scoring kafka  click | cores: ingest scoring kafka click  soak machine load1"
)


def row(s: Sample, previous: Sample | None) -> str:
    rate = (s.sent - previous.sent) / (s.t - previous.t) if previous and s.t > previous.t else 0.0

    def mb(name: str) -> str:
        return f"{s.rss_mb[name]:>6.0f}" if name in s.rss_mb else f"{'-':>6}"

    def cores(name: str) -> str:
        return f"{s.cpu_cores[name]:>5.2f}" if name in s.cpu_cores else f"{'-':>5}"

    return (
        f"{s.t:>6.0f} {rate:>7.0f} {s.accepted:>10,} {s.lag:>7,} {s.stored:>10,} {s.dead_letters:>6,} "
        f"{s.behind_s:>6.1f} |        {mb('ingest')} {mb('scoring')} {mb('kafka')} {mb('clickhouse')} "
        f"|        {cores('ingest')} {cores('scoring')} {cores('kafka')} {cores('clickhouse')} "
        f"{cores('soak')} {s.machine_busy:>7.2f} {s.load1:>5.2f}"
    )


def take(probe: Probe, feed: Feed, bad: BadRecords, start: float) -> Sample:
    produced, committed, lag = probe.lag()
    rss, cores, busy, load = probe.processes()
    with feed.lock:
        c = feed.counts
        sent, accepted, rejected = c.sent, c.accepted, c.rejected
    return Sample(
        t=time.monotonic() - start,
        sent=sent,
        accepted=accepted,
        rejected=rejected,
        raw=bad.acknowledged,
        produced=produced,
        committed=committed,
        lag=lag,
        stored=probe.stored(),
        dead_letters=probe.dead_letters(),
        behind_s=feed.behind_s,
        rss_mb=rss,
        cpu_cores=cores,
        machine_busy=busy,
        load1=load,
    )


def wait_drained(
    probe: Probe, accepted: int, bad: int, services: list[ServiceProcess], timeout: float
) -> tuple[bool, float]:
    """Until the group committed every record, ClickHouse holds the ``accepted`` snapshots and the
    dead-letter topic the ``bad`` records; (drained, seconds)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        for s in services:
            s.check_alive()
        _, _, lag = probe.lag()
        if lag == 0 and probe.stored() >= accepted and probe.dead_letters() >= bad:
            return True, time.monotonic() - start
        time.sleep(1.0)
    return False, time.monotonic() - start


# --- The run.


def cleanup_external(settings: Settings) -> None:
    """Drop this run's database and topics from servers the soak did not start."""
    client = make_client(settings)
    try:
        client.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
    finally:
        client.close()
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap.split(","))
    try:
        mine = [t for t in admin.list_topics() if t.startswith(settings.kafka_topic_prefix)]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds of steady traffic")
    parser.add_argument("--rate", type=float, default=1000.0, help="snapshots/s over HTTP")
    parser.add_argument("--accounts", type=int, default=300_000)
    # 500 a request: 2 requests/s at 1,000/s, well within the services' default rate limit per client
    # address (600 requests a minute); 100 a request would be exactly at it and draw 429s.
    parser.add_argument("--batch", type=int, default=500, help="snapshots a request")
    parser.add_argument("--clients", type=int, default=4, help="sending threads")
    parser.add_argument("--invalid-every", type=int, default=500, help="one invalid line per N snapshots")
    parser.add_argument("--dead-letter-every", type=int, default=1000, help="one bad record per N snapshots")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument(
        "--warm-up", type=float, help="seconds left out of the trends (default: min(300, duration/5))"
    )
    parser.add_argument(
        "--window", type=float, help="seconds of the first and last windows (default: duration/10, 30-300)"
    )
    parser.add_argument("--rss-growth", type=float, default=0.10, help="RSS growth allowed after warm-up")
    parser.add_argument(
        "--lag-bound-s", type=float, default=5.0, help="lag growth allowed, in seconds of traffic"
    )
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--port-base", type=int, default=PORT_BASE)
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "soak")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warm_up = args.warm_up if args.warm_up is not None else min(300.0, args.duration / 5)
    window = args.window if args.window is not None else max(30.0, min(300.0, args.duration / 10))
    limits = Limits(args.rate, warm_up, window, args.rss_growth, args.lag_bound_s)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    base = args.port_base
    external = bool(os.environ.get("BAROMETRE_BENCH_KAFKA") or os.environ.get("BAROMETRE_BENCH_CLICKHOUSE"))
    print(
        f"soak: {args.rate:,.0f} snapshots/s for {args.duration:,.0f} s over {args.accounts:,} accounts; "
        f"warm-up {warm_up:.0f} s, windows {window:.0f} s; {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.2f} at the start",
        flush=True,
    )
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)  # last: Kafka's log, ClickHouse's data
        kafka, ch = bench_servers(stack, tmp, base, base + 2, controller_port=base + 1)
        settings = Settings(
            kafka_bootstrap=kafka,
            clickhouse_url=ch,
            clickhouse_database=f"soak_{uuid.uuid4().hex[:8]}",
            kafka_topic_prefix=f"soak{uuid.uuid4().hex[:6]}.",
            bootstrap_token=SecretStr(TOKEN),
        )
        prepare_database(settings)
        ensure_topics(settings)
        if external:
            stack.callback(cleanup_external, settings)

        # The simulator's accounts at this scale, registered as simulated (barometre simulate does the same).
        t0 = time.perf_counter()
        now = datetime.now(UTC)
        origin = now.replace(hour=0, minute=0, second=0, microsecond=0)
        entities = load_entities()
        visible = len(Simulator(entities, seed=args.seed, origin=origin).observe(now))
        sim = Simulator(
            entities, SimulatorParams(scale=args.accounts / visible * 1.01), seed=args.seed, origin=origin
        )
        registered = register_accounts(settings, sim)
        observed = min(args.accounts, len(sim.observe(now)))
        print(
            f"registered {registered:,} simulated accounts (origin 'simulator') in "
            f"{time.perf_counter() - t0:.0f} s; {observed:,} observed a round",
            flush=True,
        )

        env = {
            **os.environ,
            "BAROMETRE_KAFKA_BOOTSTRAP": kafka,
            "BAROMETRE_CLICKHOUSE_URL": ch,
            "BAROMETRE_CLICKHOUSE_DATABASE": settings.clickhouse_database,
            "BAROMETRE_KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
            "BAROMETRE_KAFKA_PARTITIONS": str(settings.kafka_partitions),
            "BAROMETRE_BOOTSTRAP_TOKEN": TOKEN,
            "BAROMETRE_DATA_DIR": str(tmp / "data"),
            "BAROMETRE_LOG_LEVEL": "WARNING",
            "BAROMETRE_INGEST_PORT": str(base + 3),
            "BAROMETRE_SCORING_PORT": str(base + 4),
        }
        services = [
            ServiceProcess("ingest", "services.ingest", base + 3, env, args.out / f"soak-{stamp}-ingest.log"),
            ServiceProcess(
                "scoring", "services.scoring", base + 4, env, args.out / f"soak-{stamp}-scoring.log"
            ),
        ]
        for s in services:
            s.start()
            stack.callback(s.stop)
        for s in services:
            s.wait_ready()
        probe = Probe(settings, services)
        stack.callback(probe.close)
        ingest_url = services[0].url

        # Preload: every account once, as fast as ingest takes them; then the worker drains.
        feed = Feed(sim, observed, args.batch, args.invalid_every)
        t0 = time.monotonic()
        feed.phase(None, snapshots=observed, batch=max(args.batch, 1000))
        send(feed, ingest_url, args.clients)
        preload_s = time.monotonic() - t0
        drained, preload_drain_s = wait_drained(probe, feed.counts.accepted, 0, services, args.drain_timeout)
        if not drained:
            raise SystemExit(f"the worker did not drain the preload in {args.drain_timeout:.0f}s")
        preload = {"snapshots": feed.counts.accepted, "seconds": preload_s, "drain_s": preload_drain_s}
        print(
            f"preload: {feed.counts.accepted:,} snapshots in {preload_s:.0f} s "
            f"({feed.counts.accepted / preload_s:,.0f}/s), the worker done {preload_drain_s:.0f} s later",
            flush=True,
        )
        accepted_before = feed.counts.accepted

        # Steady phase.
        template = next(iter(sim.observe(datetime.now(UTC)).iter_records(chunk_size=1)))[0]
        bad = BadRecords(settings, template, args.rate, args.dead_letter_every)
        samples: list[Sample] = []
        stop_sampling = threading.Event()
        start = time.monotonic()

        def sampler() -> None:
            probe.processes()  # CPU deltas start here
            next_at = start + args.sample_every
            while not stop_sampling.wait(max(0.0, next_at - time.monotonic())):
                next_at += args.sample_every
                sample = take(probe, feed, bad, start)
                print(row(sample, samples[-1] if samples else None), flush=True)
                samples.append(sample)
                for s in services:
                    if s.proc is None or s.proc.poll() is not None:
                        print(f"{s.name} died", flush=True)
                        feed.stop()
                        stop_sampling.set()

        print(HEAD, flush=True)
        sampling = threading.Thread(target=sampler, daemon=True)
        feed.phase(args.rate, seconds=args.duration, batch=args.batch)
        bad.start()
        sampling.start()
        send(feed, ingest_url, args.clients)
        bad.stop()
        # The schedule covers --duration; the last answers may come a little after it.
        steady_s = max(time.monotonic() - start, args.duration)
        stop_sampling.set()
        sampling.join()
        steady_accepted = feed.counts.accepted - accepted_before
        for s in services:
            s.check_alive()

        drained, drain_s = wait_drained(
            probe, feed.counts.accepted, bad.acknowledged, services, args.drain_timeout
        )
        stored_rows, stored_distinct = probe.ch.query(
            f"SELECT count(), uniqExact(event_id) FROM {settings.clickhouse_database}.{Table.SNAPSHOTS}"
        ).result_rows[0]
        dead, dead_records, dead_codes = probe.read_dead_letters()
        c = feed.counts
        totals = Totals(
            accepted=c.accepted,
            raw=bad.acknowledged,
            stored_distinct=int(stored_distinct),
            stored_rows=int(stored_rows),
            dead_letters=dead,
            dead_letter_records=dead_records,
            dead_letter_codes=dead_codes,
            raw_codes=dict(bad.codes),
            invalid_sent=c.invalid_sent,
            rejected=c.rejected,
            unexpected_rejections=c.unexpected_rejections,
            failed_requests=c.failed_requests,
            drained=drained,
            drain_s=drain_s,
        )
        checks = judge(samples, totals, limits, steady_s, steady_accepted)

        print(
            f"\nsteady phase: {steady_s:,.0f} s, {steady_accepted:,} snapshots acknowledged "
            f"({steady_accepted / steady_s:,.0f}/s), {feed.rounds} rounds of the accounts (preload "
            f"included); "
            f"{c.requests:,} requests, {c.retries:,} sent again, {c.failed_requests:,} given up"
        )
        if c.errors:
            print("first errors: " + "; ".join(c.errors))
        names = sorted({n for s in samples for n in s.rss_mb})
        for name in names:
            have = [s for s in samples if name in s.rss_mb]
            first, last, per_hour = trend(have, limits, rss_of(name))
            peak = max(s.rss_mb[name] for s in have)
            cpu = [s.cpu_cores[name] for s in have if name in s.cpu_cores]
            judged = "" if name in JUDGED else " (not judged)"
            print(
                f"  {name:<10} RSS {first:>7,.0f} MB after warm-up -> {last:>7,.0f} MB at the end, "
                f"peak {peak:,.0f}, slope {per_hour:+,.1f} MB/h; "
                f"CPU {sum(cpu) / max(1, len(cpu)):.2f} core on average{judged}"
            )
        busy = [s.machine_busy for s in samples]
        print(
            f"  machine: {sum(busy) / max(1, len(busy)):.2f} of {os.cpu_count()} cores busy on average "
            f"(max {max(busy, default=0):.2f}); load1 max {max((s.load1 for s in samples), default=0):.2f}"
        )
        print("\nchecks:")
        for check in checks:
            print(f"  {'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
        report = {
            "started": stamp,
            "config": {
                **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "warm_up": warm_up,
                "window": window,
                "observed_accounts": observed,
                "registered_accounts": registered,
                "cores": os.cpu_count(),
                "external_servers": external,
            },
            "preload": preload,
            "steady": {
                "seconds": steady_s,
                "accepted": steady_accepted,
                "requests": c.requests,
                "retries": c.retries,
                "errors": c.errors,
            },
            "samples": [asdict(s) for s in samples],
            "totals": asdict(totals),
            "checks": [asdict(ch) for ch in checks],
            "passed": all(ch.ok for ch in checks),
        }
        path = args.out / f"soak-{stamp}.json"
        path.write_text(json.dumps(report, indent=1))
        print(f"\nfigures: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0 if all(ch.ok for ch in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
