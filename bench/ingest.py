"""Benchmark of ingest: HTTP push and file import against a raw kafka-python producer.

Prints, in one run:
* HTTP push: snapshots/s acknowledged by Kafka through one ingest process (`python -m services.ingest`,
  as deployed), batches of 1,000, a few concurrent clients;
* file import: lines/s of `barometre import snapshots` on a JSON Lines file (validation + publish);
* the baseline: a raw kafka-python producer sending the same serialized events with the same producer
  settings (acks=all, idempotence, lz4, linger), in this process;
* the ratios, and whether the targets hold: push >= 20,000/s, import >= 50,000 lines/s, push/raw >= 0.5;
* where the time goes: CPU per event of each process (µs, and share of a core) and how busy the
  machine's cores were, so that a missed target can be told from a machine busy with other work.

Starts its own Kafka broker and ClickHouse endpoint on bench ports (or uses BAROMETRE_BENCH_KAFKA /
BAROMETRE_BENCH_CLICKHOUSE when set). Usage: `python bench/ingest.py [--events N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from pydantic import SecretStr

from bench._servers import NO_RATE_LIMITS, bench_servers
from services.common.bootstrap import prepare_database
from services.common.kafka import ensure_topics, replication_factor
from services.common.reference import load_entities
from services.common.settings import Settings
from services.ingest.publisher import ProducerTuning

KAFKA_PORT, CH_PORT, INGEST_PORT = 19592, 18192, 18601
PUSH_TARGET, IMPORT_TARGET, RATIO_TARGET = 20_000, 50_000, 0.5
TOKEN = "bench-bootstrap-token-0123456789abcdef"  # 32+ characters


def make_events(n: int, seed: int = 7) -> list[dict[str, object]]:
    """Realistic snapshots: real entities, a few platforms, all counts filled in."""
    rng = random.Random(seed)
    entities = [e for e in load_entities()]
    platforms = ["facebook", "x", "instagram", "youtube", "bluesky"]
    out = []
    for i in range(n):
        e = entities[rng.randrange(len(entities))]
        platform = platforms[i % len(platforms)]
        posts = rng.randrange(0, 90)
        out.append(
            {
                "account_id": f"{platform}:{e.entity_id.lower().replace(':', '-')}",
                "platform": platform,
                "entity_id": e.entity_id,
                "handle": e.name[:40],
                "observed_at": f"2026-{1 + i % 10:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00+01:00",
                "followers": rng.randrange(0, 500_000),
                "following": rng.randrange(0, 2000),
                "posts_total": rng.randrange(0, 20_000),
                "posts_30d": posts,
                "interactions_30d": rng.randrange(0, 50_000),
                "replies_30d": rng.randrange(0, posts + 1),
                "automated_posts_30d": rng.randrange(0, posts + 1),
            }
        )
    return out


class Usage:
    """CPU used during a phase (Linux /proc): this process, one other process, waited-for children,
    and the whole machine (busy cores), so each figure comes with what it cost and in what company."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float, float, float]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (
            time.perf_counter(),
            time.process_time(),
            _pid_cpu(self.pid) if self.pid else 0.0,
            children.ru_utime + children.ru_stime,
            _machine_busy(),
        )

    def stop(self) -> dict[str, float]:
        end = self._sample()
        wall, own, other, children, busy = (b - a for a, b in zip(self.start, end, strict=True))
        return {"wall": wall, "self": own, "pid": other, "children": children, "busy_cores": busy / wall}


def _pid_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    """CPU-seconds spent busy by all cores since boot (user, nice, system, irq, softirq, steal)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(values[:3]) + sum(values[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


def cpu_line(what: str, seconds: float, events: int, wall: float) -> str:
    return f"{what} {seconds / events * 1e6:.1f} µs/event ({seconds / wall:.2f} core)"


def raw_producer(
    settings: Settings, records: list[tuple[bytes, bytes]], topic: str
) -> tuple[float, dict[str, float]]:
    t = ProducerTuning()
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=t.linger_ms,
        batch_size=t.batch_size,
        compression_type=t.compression_type,
    )
    producer.send(topic, key=b"warm-up", value=b"{}").get(timeout=30)
    usage = Usage()
    futures = [producer.send(topic, key=k, value=v) for k, v in records]
    producer.flush()
    used = usage.stop()
    assert all(f.succeeded() for f in futures)
    producer.close()
    return len(records) / used["wall"], used


def push(events: list[dict[str, object]], clients: int, port: int, batch: int = 1000) -> float:
    bodies = [json.dumps(events[i : i + batch]).encode() for i in range(0, len(events), batch)]
    errors: list[str] = []
    accepted = [0] * clients

    def worker(k: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
            for body in bodies[k::clients]:
                r = c.post(
                    "/v1/snapshots",
                    content=body,
                    headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
                )
                if r.status_code != 200 or r.json()["rejected"]:
                    errors.append(r.text[:300])
                    return
                accepted[k] += r.json()["accepted"]

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise SystemExit(f"push failed: {errors[0]}")
    return sum(accepted) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--ingest-port", type=int, default=INGEST_PORT, help="port of the ingest service")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    with ExitStack() as stack:
        kafka, ch = bench_servers(stack, tmp, KAFKA_PORT, CH_PORT)
        settings = Settings(
            kafka_bootstrap=kafka,
            clickhouse_url=ch,
            clickhouse_database=f"bench_{uuid.uuid4().hex[:8]}",
            kafka_topic_prefix=f"bench{uuid.uuid4().hex[:6]}.",
            bootstrap_token=SecretStr(TOKEN),
        )
        prepare_database(settings)
        ensure_topics(settings)
        events = make_events(args.events)
        print(f"{len(events):,} snapshots, {args.clients} push clients, batches of 1,000")

        # Baseline: the same serialized events (what ingest publishes) through a bare producer.
        from services.common.events import AccountSnapshot

        records = [
            (s.account_id.encode(), s.to_event_bytes())
            for s in (AccountSnapshot.model_validate({**e, "source": "push"}) for e in events)
        ]
        raw_topic = f"{settings.kafka_topic_prefix}raw"
        admin = KafkaAdminClient(bootstrap_servers=kafka)
        admin.create_topics(
            [NewTopic(raw_topic, settings.kafka_partitions, replication_factor(settings, admin))]
        )
        admin.close()
        raw, raw_used = raw_producer(settings, records, raw_topic)

        env = dict(os.environ)
        env.update(
            BAROMETRE_KAFKA_BOOTSTRAP=kafka,
            BAROMETRE_CLICKHOUSE_URL=ch,
            BAROMETRE_CLICKHOUSE_DATABASE=settings.clickhouse_database,
            BAROMETRE_KAFKA_TOPIC_PREFIX=settings.kafka_topic_prefix,
            BAROMETRE_BOOTSTRAP_TOKEN=TOKEN,
            BAROMETRE_INGEST_PORT=str(args.ingest_port),
            BAROMETRE_LOG_LEVEL="WARNING",
        )
        env.update(NO_RATE_LIMITS)
        server = subprocess.Popen([sys.executable, "-m", "services.ingest"], env=env)

        def stop_server() -> None:
            server.terminate()
            server.wait(10)

        stack.callback(stop_server)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{args.ingest_port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        push(events[:5000], args.clients, args.ingest_port)  # warm-up: connections, producer metadata
        usage = Usage(server.pid)
        pushed = push(events, args.clients, args.ingest_port)
        push_used = usage.stop()

        path = tmp / "snapshots.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in events))
        usage = Usage()
        out = subprocess.run(
            [sys.executable, "-m", "services.cli", "import", "snapshots", str(path), "--no-progress"],
            env=env,
            capture_output=True,
            text=True,
        )
        import_used = usage.stop()
        imported = len(events) / import_used["wall"]
        if out.returncode != 0:
            raise SystemExit(f"import failed: {out.stderr[-2000:]}")
        # The command's own report: "... in 1.6s (62,000 lines/s)", i.e. without the start-up.
        own_rate = out.stdout.rsplit("(", 1)[-1].split(" ")[0]

    n = len(events)
    print(f"raw kafka-python producer (baseline): {raw:>10,.0f} events/s")
    print(
        "  CPU: "
        + cpu_line("producer process", raw_used["self"], n, raw_used["wall"])
        + f"; machine {raw_used['busy_cores']:.2f} of {os.cpu_count()} cores busy"
    )
    print(f"HTTP push, one ingest process:        {pushed:>10,.0f} snapshots/s  ratio {pushed / raw:.2f}")
    print(
        "  CPU: "
        + cpu_line("ingest process", push_used["pid"], n, push_used["wall"])
        + ", "
        + cpu_line("push clients", push_used["self"], n, push_used["wall"])
        + f"; machine {push_used['busy_cores']:.2f} of {os.cpu_count()} cores busy"
    )
    print(f"file import (whole command):          {imported:>10,.0f} lines/s      ratio {imported / raw:.2f}")
    print(
        "  CPU: "
        + cpu_line("command and its workers", import_used["children"], n, import_used["wall"])
        + f"; machine {import_used['busy_cores']:.2f} of {os.cpu_count()} cores busy;"
        + f" the command's own rate after start-up: {own_rate} lines/s"
    )
    ok = pushed >= PUSH_TARGET and imported >= IMPORT_TARGET and pushed / raw >= RATIO_TARGET
    print(
        f"targets: push >= {PUSH_TARGET:,}/s {'met' if pushed >= PUSH_TARGET else 'MISSED'}, "
        f"import >= {IMPORT_TARGET:,}/s {'met' if imported >= IMPORT_TARGET else 'MISSED'}, "
        f"push/raw >= {RATIO_TARGET} {'met' if pushed / raw >= RATIO_TARGET else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
