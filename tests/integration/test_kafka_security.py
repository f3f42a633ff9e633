"""Kafka with SASL/SCRAM-SHA-512 and ACLs, as the production compose runs it, on a real broker.

One broker for the module (``KafkaCluster(sasl_users=...)``: SCRAM users added when the storage is
formatted, ``StandardAuthorizer``, super user ``admin``, nothing allowed without an ACL), on port 41100
(controller 41200). ``barometre access kafka``'s function creates the topics and ACLs as the
administrator; then each service's user is tried at what it may and may not do, through the clients
the services build (:func:`services.common.kafka.client_security`), and a real scoring worker (Faust)
runs as its own user."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, TopicAuthorizationFailedError
from pydantic import SecretStr

from infra.kafka import KafkaCluster
from services.common.kafka import SERVICE_USERS, WEBHOOK_GROUP, apply_access, ensure_topics
from services.common.names import Topic
from services.common.settings import Settings
from services.ingest.publisher import ProducerTuning, Publisher, PublishError
from tests.fixtures.kafka import skip_if_external_broker

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PORT = 41100
ADMIN_PASSWORD = "admin-secret-0123456789"
# Passwords given at format time; the poller's user is created later, by apply_access.
FORMAT_USERS = {
    "admin": ADMIN_PASSWORD,
    SERVICE_USERS["ingest"]: "ingest-secret-0123456789",
    SERVICE_USERS["scoring"]: "scoring-secret-0123456789",
    SERVICE_USERS["api"]: "api-secret-0123456789",
}
PASSWORDS = {
    "ingest": FORMAT_USERS[SERVICE_USERS["ingest"]],
    "scoring": FORMAT_USERS[SERVICE_USERS["scoring"]],
    "api": FORMAT_USERS[SERVICE_USERS["api"]],
    "poller": "poller-secret-0123456789",
}
FAST = ProducerTuning(max_block_ms=5_000, delivery_timeout_ms=10_000, request_timeout_ms=5_000)


@pytest.fixture(scope="module")
def secure_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    skip_if_external_broker("a SASL broker")
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka-sasl"), nodes=1, port=PORT, sasl_users=FORMAT_USERS)
    cluster.start(timeout=180)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def admin_settings(secure_cluster: KafkaCluster) -> Settings:
    """The administrator's settings for an instance of its own (topic prefix); its topics and ACLs in place."""
    settings = Settings(
        kafka_bootstrap=secure_cluster.bootstrap_servers,
        kafka_topic_prefix=f"s{uuid.uuid4().hex[:8]}.",
        kafka_partitions=2,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="admin",
        kafka_sasl_password=SecretStr(ADMIN_PASSWORD),
    )
    done = apply_access(settings, PASSWORDS)
    assert sorted(done["topics_created"]) == sorted(settings.topic(t) for t in Topic)
    assert done["users"] == sorted(SERVICE_USERS.values())
    return settings


def as_role(admin: Settings, role: str, password: str | None = None) -> Settings:
    secret = SecretStr(password or PASSWORDS[role])
    return admin.model_copy(
        update={"kafka_sasl_username": SERVICE_USERS[role], "kafka_sasl_password": secret}
    )


def _records(settings: Settings, topic: str, expected: int, timeout_s: float = 20.0) -> list[Any]:
    from services.common.kafka import client_security

    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, **client_security(settings)
    )
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.kafka_partitions)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        got: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                got.extend(batch)
        return got
    finally:
        consumer.close()


def _denied_write(settings: Settings, topic: Topic) -> str:
    """Try to publish to ``topic`` as ``settings``' user; the error, which must be an authorisation one."""
    publisher = Publisher(settings, topic=topic, tuning=FAST, client_id="barometre-test")
    try:
        with pytest.raises((PublishError, TopicAuthorizationFailedError)) as refused:
            publisher.publish([(b"k", b"v")])
    finally:
        publisher.close()
    return str(refused.value)


def test_each_service_user_may_do_its_job_and_no_more(admin_settings: Settings) -> None:
    ingest, api, poller = (as_role(admin_settings, r) for r in ("ingest", "api", "poller"))

    # ingest and the poller (whose user apply_access created) write snapshots with the real Publisher.
    for settings in (ingest, poller):
        publisher = Publisher(settings, tuning=FAST)
        try:
            assert sum(publisher.publish([(b"acct", b"snapshot")]).values()) >= 1
        finally:
            publisher.close()
        # Their ensure_topics sees their topic, leaves the others to the administrator, and fails on nothing.
        assert ensure_topics(settings) == []

    # ingest may not write alerts; the api may not write snapshots (nor alerts).
    assert "Authorization" in _denied_write(ingest, Topic.ALERTS)
    assert "Authorization" in _denied_write(api, Topic.ACCOUNT_SNAPSHOTS)

    # The api reads alerts (written here by the scoring worker's user).
    scoring = as_role(admin_settings, "scoring")
    publisher = Publisher(scoring, topic=Topic.ALERTS, tuning=FAST)
    try:
        publisher.publish([(b"platform", b"an alert")])
    finally:
        publisher.close()
    assert [r.value for r in _records(api, api.topic(Topic.ALERTS), 1)] == [b"an alert"]

    # aiokafka, as the api's webhook dispatcher reads them: its user, its group, offsets committed.
    async def read_as_dispatcher() -> bytes:
        from aiokafka import AIOKafkaConsumer

        from services.common.kafka import client_security

        consumer = AIOKafkaConsumer(
            api.topic(Topic.ALERTS),
            bootstrap_servers=api.kafka_bootstrap,
            group_id=api.kafka_topic_prefix + WEBHOOK_GROUP,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **client_security(api),
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), 30)
            await consumer.commit()
            return bytes(record.value or b"")
        finally:
            await consumer.stop()

    assert asyncio.run(read_as_dispatcher()) == b"an alert"
    # ... but not the snapshots, which hold the two records written above: it may describe them (for
    # GET /v1/status), so the broker answers its fetch "not authorized".
    with pytest.raises(TopicAuthorizationFailedError):
        _records(api, api.topic(Topic.ACCOUNT_SNAPSHOTS), 1, timeout_s=3)
    assert len(_records(admin_settings, api.topic(Topic.ACCOUNT_SNAPSHOTS), 2)) == 2
    # It may see how far behind the scoring worker is (GET /v1/status): offsets, not records.
    from services.common.lag import scoring_lag

    lag = scoring_lag(api)
    assert (lag.end, lag.behind) == (2, 2)

    # A wrong password: no connection at all (the broker closes it after the failed SCRAM exchange).
    from services.common.kafka import client_security

    wrong = as_role(admin_settings, "ingest", password="not-the-password")
    with pytest.raises(KafkaError):
        KafkaAdminClient(
            bootstrap_servers=wrong.kafka_bootstrap, bootstrap_timeout_ms=5_000, **client_security(wrong)
        )
    # ... and nobody may connect without SASL.
    with pytest.raises(KafkaError):
        KafkaAdminClient(bootstrap_servers=wrong.kafka_bootstrap, bootstrap_timeout_ms=5_000)

    # The webhook dispatcher's group is the api's; the constant agrees with the api's own.
    from services.api.webhooks import WEBHOOK_CONSUMER_GROUP

    assert WEBHOOK_GROUP == WEBHOOK_CONSUMER_GROUP


@pytest.mark.clickhouse
def test_scoring_worker_runs_as_its_own_user(
    admin_settings: Settings, clickhouse_url: str, tmp_path: Path
) -> None:
    """The real worker (Faust, broker_credentials) as barometre-scoring: it connects, creates its
    changelogs (its prefixed topics), joins its group, reads snapshots and writes dead letters."""
    from services.common.bootstrap import prepare_database
    from services.common.kafka import client_security
    from services.ingest.wait import wait_until_consumed

    database = f"t_{uuid.uuid4().hex[:12]}"
    prepare_database(
        admin_settings.model_copy(update={"clickhouse_url": clickhouse_url, "clickhouse_database": database})
    )
    scoring = as_role(admin_settings, "scoring")
    env = {
        **os.environ,
        "BAROMETRE_KAFKA_BOOTSTRAP": scoring.kafka_bootstrap,
        "BAROMETRE_KAFKA_TOPIC_PREFIX": scoring.kafka_topic_prefix,
        "BAROMETRE_KAFKA_PARTITIONS": str(scoring.kafka_partitions),
        "BAROMETRE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "BAROMETRE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "BAROMETRE_KAFKA_SASL_USERNAME": scoring.kafka_sasl_username,
        "BAROMETRE_KAFKA_SASL_PASSWORD": PASSWORDS["scoring"],
        "BAROMETRE_CLICKHOUSE_URL": clickhouse_url,
        "BAROMETRE_CLICKHOUSE_DATABASE": database,
        "BAROMETRE_DATA_DIR": str(tmp_path),
        "BAROMETRE_SCORING_PORT": "41101",
        "BAROMETRE_LOG_LEVEL": "WARNING",
    }
    log_path = tmp_path / "scoring.log"
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "scoring"], env=env, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert worker.poll() is None, log_path.read_text()[-4000:]
            try:
                if httpx.get("http://127.0.0.1:41101/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()[-4000:]
            time.sleep(0.5)
        # An unreadable snapshot from ingest: consumed, committed, sent to the dead letters.
        publisher = Publisher(as_role(admin_settings, "ingest"), tuning=FAST)
        try:
            ends = publisher.publish([(b"acct", b"not json")])
        finally:
            publisher.close()
        wait_until_consumed(admin_settings, ends, timeout=60)
        letters = _records(admin_settings, admin_settings.topic(Topic.ACCOUNT_SNAPSHOTS_DLQ), 1)
        assert len(letters) == 1
        admin = KafkaAdminClient(
            bootstrap_servers=admin_settings.kafka_bootstrap, **client_security(admin_settings)
        )
        try:
            group = admin_settings.scoring_group()
            changelogs = [
                t for t in admin.list_topics() if t.startswith(f"{group}-") and t.endswith("-changelog")
            ]
            assert len(changelogs) == 2, changelogs
        finally:
            admin.close()
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        import clickhouse_connect

        client = clickhouse_connect.get_client(dsn=clickhouse_url)
        client.command(f"DROP DATABASE IF EXISTS {database}")
        client.close()


# --------------------------------------------------------------------------------------------------
# The production compose's brokers, for real: infra/kafka/docker-entrypoint.sh run on kafka-1's
# environment from docker-compose.yml, made a one-node cluster on this host (addresses, replication).

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
ENTRYPOINT = Path(__file__).resolve().parents[2] / "infra" / "kafka" / "docker-entrypoint.sh"
# INTERNAL, CONTROLLER and EXTERNAL listeners at base, base + 1, base + 2, for the first base whose ports
# are free (they are inside Linux's ephemeral range: a client connection may hold one for a while).
COMPOSE_BASE_PORTS = (41202, 41212, 41222, 41232)


def _compose_environment(service: str, variables: dict[str, str]) -> dict[str, str]:
    """``service``'s environment in docker-compose.yml, ``${VAR:-default}`` / ``${VAR:?error}`` filled."""
    import re

    import yaml

    def fill(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            name, kind, rest = match.group(1), match.group(2), match.group(3)
            if name in variables:
                return variables[name]
            assert kind == ":-", f"{name} is required ({rest})"
            return rest or ""

        return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, text)

    compose = yaml.safe_load(COMPOSE.read_text())
    return {k: fill(str(v)) for k, v in compose["services"][service]["environment"].items()}


def test_compose_broker_configuration_runs(tmp_path: Path) -> None:
    """kafka-1's settings from docker-compose.yml through its real entrypoint: SCRAM users at format
    time, SASL on every listener (EXTERNAL included), ACLs; then the access one-shot and a service."""
    import shutil

    from infra.kafka.launcher import LOG4J_CONFIG, _port_free, ensure_jars
    from services.common.kafka import client_security

    skip_if_external_broker("a SASL broker")
    secrets = {
        "BAROMETRE_KAFKA_ADMIN_PASSWORD": ADMIN_PASSWORD,
        **{f"BAROMETRE_KAFKA_{r.upper()}_PASSWORD": pw for r, pw in PASSWORDS.items()},
    }
    env = _compose_environment("kafka-1", secrets)
    host = "127.0.0.1"
    env.update(
        KAFKA_LOG_DIRS=str(tmp_path / "data"),
        KAFKA_NUM_NETWORK_THREADS="2",
        KAFKA_NUM_IO_THREADS="2",
        KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS="4",
    )
    for key in list(env):  # one node: one replica of everything
        if key.endswith(("REPLICATION_FACTOR", "MIN_ISR", "MIN_INSYNC_REPLICAS")):
            env[key] = "1"
    # The image's two scripts, on the launcher's jars.
    java = shutil.which("java") or "java"
    classpath = ensure_jars()
    bin_dir = tmp_path / "kafka" / "bin"
    bin_dir.mkdir(parents=True)
    jvm = f'{java} -Dlog4j2.configurationFile={LOG4J_CONFIG} -Dkafka.logs.dir={tmp_path / "logs"} -cp "{classpath}"'
    (bin_dir / "kafka-storage.sh").write_text(
        f'#!/bin/bash\nexec {jvm} -Xmx128m kafka.tools.StorageTool "$@"\n'
    )
    (bin_dir / "kafka-server-start.sh").write_text(f'#!/bin/bash\nexec {jvm} -Xmx384m kafka.Kafka "$@"\n')
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    env.update(
        PATH=os.environ.get("PATH", "/usr/bin:/bin"),
        KAFKA_HOME=str(tmp_path / "kafka"),
        BAROMETRE_KAFKA_CONFIG_DIR=str(tmp_path / "config"),
    )
    log_path = tmp_path / "broker.log"
    broker: subprocess.Popen[bytes] | None = None
    try:
        for base in COMPOSE_BASE_PORTS:
            if not all(_port_free(host, base + i) for i in range(3)):
                continue
            ports = {"INTERNAL": base, "CONTROLLER": base + 1, "EXTERNAL": base + 2}
            env.update(
                KAFKA_CONTROLLER_QUORUM_VOTERS=f"1@{host}:{ports['CONTROLLER']}",
                KAFKA_LISTENERS=",".join(f"{name}://{host}:{port}" for name, port in ports.items()),
                KAFKA_ADVERTISED_LISTENERS=f"INTERNAL://{host}:{ports['INTERNAL']},EXTERNAL://{host}:{ports['EXTERNAL']}",
            )
            with log_path.open("ab") as log:
                broker = subprocess.Popen(
                    ["bash", str(ENTRYPOINT)],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            admin_settings = Settings(
                kafka_bootstrap=f"{host}:{ports['INTERNAL']}",
                kafka_topic_prefix="compose.",
                kafka_partitions=2,
                kafka_security_protocol="SASL_PLAINTEXT",
                kafka_sasl_username="admin",
                kafka_sasl_password=SecretStr(ADMIN_PASSWORD),
            )
            if _wait_for_broker(broker, admin_settings, log_path, tmp_path / "logs" / "server.log"):
                break
        else:
            pytest.fail(f"no free ports for the broker among {COMPOSE_BASE_PORTS}")
        # The administrator's client file the healthcheck uses, readable by its owner only.
        client_file = tmp_path / "config" / "admin-client.properties"
        assert oct(client_file.stat().st_mode & 0o777) == "0o600"
        assert f'password="{ADMIN_PASSWORD}"' in client_file.read_text()
        # The access one-shot as the administrator, then ingest through the EXTERNAL listener.
        apply_access(admin_settings, PASSWORDS)
        external = as_role(admin_settings, "ingest").model_copy(
            update={"kafka_bootstrap": f"{host}:{ports['EXTERNAL']}"}
        )
        publisher = Publisher(external, tuning=FAST)
        try:
            assert sum(publisher.publish([(b"acct", b"snapshot")]).values()) >= 1
        finally:
            publisher.close()
        assert "Authorization" in _denied_write(external, Topic.ALERTS)
        wrong = as_role(external, "ingest", password="not-the-password")
        with pytest.raises(KafkaError):
            KafkaAdminClient(
                bootstrap_servers=wrong.kafka_bootstrap, bootstrap_timeout_ms=5_000, **client_security(wrong)
            )
    finally:
        if broker is not None:
            _stop(broker)


def _stop(broker: subprocess.Popen[bytes]) -> None:
    import contextlib

    with contextlib.suppress(ProcessLookupError):
        os.killpg(broker.pid, 15)  # the broker's own process group (start_new_session)
    try:
        broker.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(broker.pid, 9)
        broker.wait()


def _wait_for_broker(
    broker: subprocess.Popen[bytes], settings: Settings, console: Path, server_log: Path
) -> bool:
    """True once the broker answers ``settings``' administrator; False when it could not bind its ports
    (then it has exited); fails the test on any other exit or after two minutes."""
    from services.common.kafka import client_security

    deadline = time.monotonic() + 120
    while True:
        if broker.poll() is not None:
            if "Address already in use" in (server_log.read_text() if server_log.exists() else ""):
                server_log.rename(server_log.with_suffix(f".{broker.pid}.log"))
                return False
            pytest.fail(console.read_text()[-4000:])
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=settings.kafka_bootstrap,
                bootstrap_timeout_ms=3_000,
                **client_security(settings),
            )
            admin.close()
            return True
        except KafkaError:
            assert time.monotonic() < deadline, console.read_text()[-4000:]
            time.sleep(0.5)
