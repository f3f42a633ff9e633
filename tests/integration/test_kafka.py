"""The local Kafka of infra/kafka really works with every client barometre uses.

kafka-python (ingest, admin), aiokafka (under faust, the scoring worker) and kcat (operators' and the
Makefile's tool) each produce and consume against the pinned broker version; data and committed offsets
survive a restart; a 3-node cluster keeps accepting acks=all writes with one node down. The first tests
need no broker: they pin the launcher's own contract (messages, marker refusal, configuration).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

import infra.kafka.launcher as launcher
from infra.kafka import (
    KafkaCluster,
    KafkaError,
    KafkaStartError,
    PrerequisiteError,
    check_prerequisites,
    ensure_jars,
    jars_dir,
)
from tests.fixtures.kafka import _require_marker, skip_if_external_broker

Record = tuple[bytes, bytes]


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def make_records(n: int, prefix: str = "") -> list[Record]:
    # Few keys, many values each: per-key order is what Kafka guarantees and what scoring relies on.
    return [(f"account-{i % 7}".encode(), f"{prefix}event-{i:04d}".encode()) for i in range(n)]


def create_topic(bootstrap: str, topic: str, partitions: int = 4, rf: int = 1, **configs: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [NewTopic(topic, partitions, rf, topic_configs=configs)], timeout_ms=30000, wait_for_metadata=True
        )
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, records: list[Record]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=10, linger_ms=5)
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in records]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=30)  # raises if the broker refused the record
    finally:
        producer.close(timeout=10)


def end_offsets_total(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def consume(
    bootstrap: str, topic: str, expected: int, group_id: str | None = None, timeout: float = 60
) -> list[Record]:
    """Read ``expected`` records (from the start, or from the group's committed offsets) and commit."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        if group_id is None:
            partitions = consumer.partitions_for_topic(topic) or set()
            consumer.assign([TopicPartition(topic, p) for p in partitions])
            consumer.seek_to_beginning()
        else:
            consumer.subscribe([topic])
        got: list[Record] = []
        deadline = time.monotonic() + timeout
        while len(got) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                got += [(m.key, m.value) for m in batch]
        # One more look: "exactly" means nothing beyond what was expected either.
        for batch in consumer.poll(timeout_ms=500).values():
            got += [(m.key, m.value) for m in batch]
        if group_id is not None:
            consumer.commit()
        return got
    finally:
        consumer.close()


def assert_same_records(got: list[Record], sent: list[Record]) -> None:
    assert sorted(got) == sorted(sent), f"{len(got)} records read for {len(sent)} sent"

    def by_key(records: list[Record]) -> dict[bytes, list[bytes]]:
        grouped: dict[bytes, list[bytes]] = defaultdict(list)
        for key, value in records:
            grouped[key].append(value)
        return grouped

    assert by_key(got) == by_key(sent), "per-key order differs"


def kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        message = "kcat is not installed: `apt-get install kcat`"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def broker_ids(bootstrap: str) -> list[int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return sorted(b["broker_id"] for b in admin.describe_cluster()["brokers"])
    finally:
        admin.close()


# --------------------------------------------------------------------------------------------------
# no broker needed
# --------------------------------------------------------------------------------------------------


def test_fixture_refuses_an_unmarked_test() -> None:
    request: Any = SimpleNamespace(
        node=SimpleNamespace(nodeid="tests/x.py::test_x", get_closest_marker=lambda name: None)
    )
    with pytest.raises(pytest.fail.Exception, match=r"not marked @pytest\.mark\.kafka"):
        _require_marker(request, "kafka", "kafka_bootstrap")


def test_missing_java_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(PrerequisiteError) as info:
        check_prerequisites()
    assert str(info.value) == (
        "Java 17 is missing: install it with `apt-get install openjdk-17-jre-headless` "
        "(or use `docker compose up`)"
    )


def test_missing_maven_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    java = launcher._java_executable()
    if java is None:
        pytest.skip("no java here")
    # A PATH with java alone.
    (tmp_path / "java").symlink_to(java)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(
        PrerequisiteError, match=r"^Maven is missing: install it with `apt-get install maven`"
    ):
        check_prerequisites()
    check_prerequisites(require_maven=False)


def test_old_java_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(PrerequisiteError, match=r"is Java 11; Kafka 4 needs 17\+"):
        check_prerequisites(require_maven=False)


def test_three_node_configuration(tmp_path: Path) -> None:
    cluster = KafkaCluster(tmp_path, nodes=3, port=29092)
    assert cluster.bootstrap_servers == "127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094"
    props = cluster.server_properties(2)
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == "0@127.0.0.1:29192,1@127.0.0.1:29193,2@127.0.0.1:29194"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29094,CONTROLLER://127.0.0.1:29194"
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["transaction.state.log.min.isr"] == "2"
    assert props["min.insync.replicas"] == "2"
    assert KafkaCluster(tmp_path, nodes=1).server_properties(0)["offsets.topic.replication.factor"] == "1"


def test_jars_live_in_a_versioned_directory_under_the_cache_root(tmp_path: Path) -> None:
    version = launcher.kafka_version()
    assert version.startswith("4.")
    assert jars_dir(tmp_path) == tmp_path.resolve() / f"kafka-{version}" / "libs"
    assert jars_dir() == launcher.default_cache_dir() / f"kafka-{version}" / "libs"


def test_a_directory_that_is_not_a_jar_cache_is_never_deleted(tmp_path: Path) -> None:
    (tmp_path / "a.jar").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("precious")
    with pytest.raises(KafkaError, match="is not a jar cache"):
        launcher._remove_old_jars(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "precious"


@pytest.mark.kafka
def test_warm_jar_cache_is_a_fast_no_op() -> None:
    skip_if_external_broker("the Kafka launcher")
    classpath = ensure_jars()  # fills the cache if this is the first use on this machine
    started = time.monotonic()
    assert ensure_jars() == classpath
    assert time.monotonic() - started < 0.5
    jars = [Path(p).name for p in classpath.split(os.pathsep)]
    assert any(j.startswith("kafka_2.13-") for j in jars)
    assert any(j.startswith("log4j-slf4j2-impl-") for j in jars)
    # slf4j 1.x would not bind to the log4j2 backend: the broker would log nothing.
    slf4j = [j for j in jars if j.startswith("slf4j-api-")]
    assert len(slf4j) == 1
    assert slf4j[0].startswith("slf4j-api-2.")


# --------------------------------------------------------------------------------------------------
# the session broker
# --------------------------------------------------------------------------------------------------


@pytest.mark.kafka
def test_kafka_python_round_trip(kafka_bootstrap: str, kafka_topic: str) -> None:
    create_topic(kafka_bootstrap, kafka_topic)
    sent = make_records(500)
    produce(kafka_bootstrap, kafka_topic, sent)
    assert end_offsets_total(kafka_bootstrap, kafka_topic) == len(sent)
    assert_same_records(consume(kafka_bootstrap, kafka_topic, len(sent)), sent)


@pytest.mark.kafka
def test_kcat_produces_and_kafka_python_consumes(kafka_bootstrap: str, kafka_topic: str) -> None:
    create_topic(kafka_bootstrap, kafka_topic)
    sent = make_records(200, prefix="kcat-")
    lines = "".join(f"{k.decode()}\t{v.decode()}\n" for k, v in sent)
    subprocess.run(
        [kcat(), "-P", "-b", kafka_bootstrap, "-t", kafka_topic, "-K", "\t", "-X", "acks=all"],
        input=lines.encode(),
        check=True,
        timeout=60,
    )
    assert_same_records(consume(kafka_bootstrap, kafka_topic, len(sent)), sent)


@pytest.mark.kafka
def test_kafka_python_produces_and_kcat_consumes(kafka_bootstrap: str, kafka_topic: str) -> None:
    create_topic(kafka_bootstrap, kafka_topic)
    sent = make_records(200, prefix="py-")
    produce(kafka_bootstrap, kafka_topic, sent)
    out = subprocess.run(
        [kcat(), "-C", "-q", "-b", kafka_bootstrap, "-t", kafka_topic, "-o", "beginning", "-e",
         "-f", "%k\t%s\n"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout  # fmt: skip
    got = [tuple(line.split(b"\t", 1)) for line in out.splitlines()]
    assert_same_records([(k, v) for k, v in got], sent)


@pytest.mark.kafka
def test_aiokafka_round_trip(kafka_bootstrap: str, kafka_topic: str) -> None:
    """faust runs on aiokafka: its producer (idempotent, acks=all) and group consumer must work."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    sent = make_records(300, prefix="aio-")

    async def round_trip() -> list[Record]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            batch = [await producer.send(kafka_topic, key=k, value=v) for k, v in sent]
            await asyncio.gather(*batch)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            kafka_topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=f"{kafka_topic}-group",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        got: list[Record] = []
        try:
            deadline = time.monotonic() + 60
            while len(got) < len(sent) and time.monotonic() < deadline:
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    got += [(m.key, m.value) for m in messages]
            await consumer.commit()
        finally:
            await consumer.stop()
        return got

    # The topic is auto-created by the producer (auto.create.topics.enable), as faust's would be.
    got = asyncio.run(asyncio.wait_for(round_trip(), timeout=120))
    assert_same_records(got, sent)
    assert end_offsets_total(kafka_bootstrap, kafka_topic) == len(sent)


# --------------------------------------------------------------------------------------------------
# brokers of the test's own
# --------------------------------------------------------------------------------------------------


@pytest.mark.kafka
@pytest.mark.slow
def test_data_and_offsets_survive_a_restart(kafka_own_broker: KafkaCluster) -> None:
    broker = kafka_own_broker
    bootstrap = broker.bootstrap_servers
    create_topic(bootstrap, "restart")
    before = make_records(100, prefix="before-")
    produce(bootstrap, "restart", before)
    assert_same_records(consume(bootstrap, "restart", len(before), group_id="restart-group"), before)

    broker.stop()
    assert not broker.is_running()
    broker.start()
    assert broker.is_running()

    after = make_records(20, prefix="after-")
    produce(bootstrap, "restart", after)
    # The group resumes from its committed offsets: only the new records...
    assert_same_records(consume(bootstrap, "restart", len(after), group_id="restart-group"), after)
    # ...and everything from before the restart is still in the log.
    assert_same_records(consume(bootstrap, "restart", len(before) + len(after)), before + after)


@pytest.mark.cluster
@pytest.mark.slow
def test_three_node_cluster_tolerates_one_node_down(
    kafka_cluster_factory: Any,
) -> None:
    cluster: KafkaCluster = kafka_cluster_factory(nodes=3)
    bootstrap = cluster.bootstrap_servers
    assert broker_ids(bootstrap) == [0, 1, 2]

    create_topic(bootstrap, "replicated", partitions=3, rf=3, **{"min.insync.replicas": "2"})
    first = make_records(60, prefix="three-")
    produce(bootstrap, "replicated", first)
    assert_same_records(consume(bootstrap, "replicated", len(first)), first)

    cluster.stop_node(2)
    assert cluster.running_nodes() == [0, 1]
    assert not cluster.is_running()
    # acks=all with min.insync.replicas=2: two live replicas are enough.
    second = make_records(60, prefix="two-")
    produce(bootstrap, "replicated", second)
    got = consume(bootstrap, "replicated", len(first) + len(second), group_id="replicated-group")
    assert_same_records(got, first + second)

    cluster.start_node(2)
    assert cluster.is_running()
    assert broker_ids(bootstrap) == [0, 1, 2]

    cluster.stop()
    assert cluster.running_nodes() == []


@pytest.mark.kafka
def test_a_node_that_dies_is_reported_with_its_log(tmp_path: Path) -> None:
    skip_if_external_broker("a broker")
    # A heap the JVM refuses: storage formatting (own small heap) succeeds, the broker dies at once.
    cluster = KafkaCluster(tmp_path / "dies", port=19310, heap="1k")
    try:
        with pytest.raises(KafkaStartError, match=r"(?s)exited with code 1 while starting.*heap"):
            cluster.start(timeout=60)
    finally:
        cluster.stop()
    assert cluster.running_nodes() == []


@pytest.mark.kafka
@pytest.mark.slow
def test_command_line_runs_in_the_foreground_until_sigterm(tmp_path: Path) -> None:
    skip_if_external_broker("a broker")
    port = 19320
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "infra.kafka",
            "start",
            "--data-dir",
            str(tmp_path / "cli"),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout is not None
        first_line = proc.stdout.readline().decode()
        assert f"ready on 127.0.0.1:{port}" in first_line, first_line
        assert broker_ids(f"127.0.0.1:{port}") == [0]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out.decode()
        assert b"stopping Kafka" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The JVM went with it: nothing listens on the port any more.
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
