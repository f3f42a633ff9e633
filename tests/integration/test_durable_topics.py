"""Durable topics on a real 3-node cluster: replication factor min(3, brokers), min.insync.replicas=2, and
a scoring worker that refuses to start on a snapshots topic with a single replica.

One cluster for the module (about 15 s to start on two cores), on ports 41092.. (controllers 41192..),
apart from the fixtures' defaults so that it can run beside the fault suite's clusters."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from infra.kafka import KafkaCluster
from services.common.kafka import DurabilityError, check_durability, ensure_topics, replication_factor
from services.common.names import Topic
from services.common.settings import Settings

pytestmark = [pytest.mark.cluster, pytest.mark.kafka, pytest.mark.slow]

PORT = 41092


def _describe(bootstrap: str, names: list[str]) -> dict[str, tuple[int, str | None]]:
    """Topic -> (smallest replica count of its partitions, its min.insync.replicas if set on the topic)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        replicas = {
            t["name"]: min(len(p["replica_nodes"]) for p in t["partitions"])
            for t in admin.describe_topics(names)
        }
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        (by_topic,) = configs.values()
        min_isr = {
            n: (entries.get("min.insync.replicas") or {}).get("value") for n, entries in by_topic.items()
        }
        return {n: (replicas[n], min_isr.get(n)) for n in names}
    finally:
        admin.close()


def test_topics_are_replicated_three_times_and_the_worker_refuses_a_single_replica(
    kafka_cluster_factory: Callable[..., KafkaCluster], tmp_path: Any
) -> None:
    cluster = kafka_cluster_factory(nodes=3, port=PORT)
    bootstrap = cluster.bootstrap_servers
    auto = Settings(
        kafka_bootstrap=bootstrap, kafka_topic_prefix=f"d{uuid.uuid4().hex[:6]}.", kafka_partitions=2
    )
    assert auto.kafka_replication == 0  # the default: min(3, brokers)
    assert replication_factor(auto) == 3

    # Our topics: three replicas, two of them in sync before a write is acknowledged.
    created = ensure_topics(auto)
    assert sorted(created) == sorted(auto.topic(t) for t in Topic)
    described = _describe(bootstrap, created)
    assert set(described.values()) == {(3, "2")}, described
    check_durability(auto)  # passes

    # Faust's own topics: the app's replication factor, and the changelogs created before it starts.
    from services.scoring.app import create_app, ensure_changelog_topics

    asyncio.set_event_loop(asyncio.new_event_loop())  # the app takes the current loop
    app = create_app(auto.model_copy(update={"data_dir": tmp_path}))
    assert app.conf.topic_replication_factor == 3
    changelogs = ensure_changelog_topics(app, auto)
    assert len(changelogs) == 2
    assert set(_describe(bootstrap, changelogs).values()) == {(3, "2")}

    # A factor forced to 1 on this cluster: the topics get it, and the worker will not run on them.
    single = auto.model_copy(
        update={"kafka_topic_prefix": f"s{uuid.uuid4().hex[:6]}.", "kafka_replication": 1}
    )
    ensure_topics(single, [Topic.ACCOUNT_SNAPSHOTS])
    assert _describe(bootstrap, [single.topic(Topic.ACCOUNT_SNAPSHOTS)]) == {
        single.topic(Topic.ACCOUNT_SNAPSHOTS): (1, None)  # no min.insync.replicas below 3 replicas
    }
    with pytest.raises(DurabilityError, match="replication factor 1 on a cluster of 3 brokers"):
        check_durability(single)

    env = {
        **os.environ,
        "BAROMETRE_KAFKA_BOOTSTRAP": bootstrap,
        "BAROMETRE_KAFKA_TOPIC_PREFIX": single.kafka_topic_prefix,
        "BAROMETRE_KAFKA_PARTITIONS": "2",
        "BAROMETRE_KAFKA_REPLICATION": "1",
        "BAROMETRE_DATA_DIR": str(tmp_path / "worker"),
        "BAROMETRE_CLICKHOUSE_URL": "http://127.0.0.1:9",  # never reached: the worker stops before
        "BAROMETRE_SCORING_PORT": "41090",
    }
    started = time.monotonic()
    worker = subprocess.run(
        [sys.executable, "-m", "services.cli", "scoring"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert worker.returncode != 0, worker.stdout + worker.stderr
    assert "refusing to start" in worker.stderr, worker.stderr
    assert "replication factor 1 on a cluster of 3 brokers" in worker.stderr
    assert time.monotonic() - started < 60
