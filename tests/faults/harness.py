"""What the fault scenarios share: services as real OS processes that can be SIGKILLed, instances of
their own (a fresh ClickHouse database and Kafka topic prefix each), the scoring tables as rows to
compare, and the figures each scenario records in ``test-artifacts/faults/<scenario>.json``.

Ports: the fault suite uses 42000-42999 for its services, endpoints and receivers (3-node clusters come
from ``kafka_cluster_factory``, 29092..)."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from starlette.applications import Starlette

from services.common.bootstrap import prepare_database
from services.common.clickhouse import make_client
from services.common.kafka import ensure_topics
from services.common.names import Topic
from services.common.settings import Settings
from tests.e2e.processes import Service, service_env

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "faults"


def record(scenario: str, figures: dict[str, Any]) -> None:
    """Print a scenario's figures and write them to ``test-artifacts/faults/<scenario>.json``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    document = {"scenario": scenario, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **figures}  # fmt: skip
    (ARTIFACTS / f"{scenario}.json").write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
    print(f"\n[faults] {scenario}: " + json.dumps(figures, sort_keys=False))


class Proc(Service):
    """A :class:`Service` that can also be SIGKILLed (a crash: no shutdown code runs)."""

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"{self.name} is not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=5)


def instance(base: Settings, **update: Any) -> Settings:
    """Settings of a barometre instance of its own: a fresh migrated database and a new topic prefix on
    ``base``'s ClickHouse and Kafka (``drop`` removes the database)."""
    settings = base.model_copy(
        update={
            "clickhouse_database": f"f_{uuid.uuid4().hex[:12]}",
            "kafka_topic_prefix": f"f{uuid.uuid4().hex[:8]}.",
            **update,
        }
    )
    prepare_database(settings)
    ensure_topics(settings)  # with the instance's partition count, before any producer auto-creates one
    return settings


def drop(settings: Settings) -> None:
    client = make_client(settings, database=None)
    try:
        client.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
    finally:
        client.close()


def service(name: str, settings: Settings, port: int, workdir: Path, **extra: str) -> Proc:
    """``barometre <name>`` on ``settings`` as its own process, listening on ``port``; its data and log
    in ``workdir`` (one directory per process)."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = service_env(settings, workdir, {name: port}, **extra)
    return Proc(name, port, env, workdir)


# Every table the scoring worker writes, version columns (write times) left out, in a stable order.
SCORING_TABLES = {
    "snapshots": "SELECT * FROM {db}.snapshots FINAL ORDER BY account_id, observed_at, event_id",
    "account_daily": "SELECT * EXCEPT version FROM {db}.account_daily FINAL ORDER BY account_id, day",
    "account_latest": "SELECT * EXCEPT version FROM {db}.account_latest FINAL ORDER BY platform, account_id",
    "presence": "SELECT * EXCEPT version FROM {db}.presence FINAL ORDER BY platform, account_id",
    "entity_latest": "SELECT * EXCEPT version FROM {db}.entity_latest FINAL "
    "ORDER BY platform, category, entity_id",
    "alerts": "SELECT * EXCEPT (version, detected_at) FROM {db}.alerts FINAL ORDER BY alert_id",
}


def scoring_tables(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    client = make_client(settings)
    try:
        db = settings.clickhouse_database
        return {name: [tuple(r) for r in client.query(sql.format(db=db)).result_rows]
                for name, sql in SCORING_TABLES.items()}  # fmt: skip
    finally:
        client.close()


def count(settings: Settings, sql: str) -> int:
    client = make_client(settings)
    try:
        return int(str(client.command(sql.format(db=settings.clickhouse_database))))
    finally:
        client.close()


def read_topic(
    settings: Settings, topic: Topic = Topic.ACCOUNT_SNAPSHOTS, timeout: float = 60.0
) -> list[Any]:
    """Every record of ``topic`` now, read to its current end (kafka-python ConsumerRecords)."""
    name = settings.topic(topic)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap.split(","), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, f"{name} could not be read to its end"
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def eventually(probe: Callable[[], bool], what: str, timeout: float = 60.0, every: float = 0.2) -> float:
    """Wait until ``probe()``; return the seconds it took."""
    started = time.monotonic()
    while not probe():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - started


def free_port(ports: Iterable[int]) -> int:
    """The first of ``ports`` a server can listen on now (bound as uvicorn binds: SO_REUSEADDR). The
    suite's ports lie in Linux's ephemeral range (32768-60999): any client socket of the run, a Kafka or
    ClickHouse connection of the test process, may hold one of them for a while."""
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port among {list(ports)}")


@contextmanager
def serve(app: Starlette, port: int) -> Iterator[str]:
    """``app`` served by uvicorn in a thread on 127.0.0.1:``port``; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        eventually(lambda: server.started or not thread.is_alive(), "the receiver", timeout=30, every=0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
