"""Scenario c: a 3-node Kafka cluster under ingest's load, the partition leader SIGKILLed.

An ingest process takes about 1,000 snapshots/s over HTTP (batches of 100, ten a second) on a 3-node
KRaft cluster, topics with 3 replicas and ``min.insync.replicas=2``. The leader of a snapshots
partition is SIGKILLed mid-stream; the load goes on through the election. Then, as Kafka's own
replication tests check, the set ingest acknowledged (HTTP 200, ``accepted``) is compared with the set
stored on the topic: every acknowledged snapshot is there, none twice. Finally a second broker is
killed (two of three down): ingest answers 503 with ``Retry-After`` and acknowledges nothing.

Slow (``make faults``): needs the cluster (``kafka_cluster_factory``, ports 29092-29094 and
29192-29194). Ports: 42030-42031."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka.admin import KafkaAdminClient

from infra.kafka import KafkaCluster
from services.common.names import Topic
from services.common.settings import Settings
from tests.faults.harness import drop, instance, read_topic, record, service

pytestmark = [
    pytest.mark.faults,
    pytest.mark.slow,
    pytest.mark.slow_fault,
    pytest.mark.cluster,
    pytest.mark.clickhouse,
]

PER_REQUEST = 100
REQUESTS_PER_S = 10  # 1,000 snapshots/s
THREADS = 4  # clients in parallel, so that a slow answer does not hold the rate down
AFTER_KILL_S = 15.0
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)


def batch(n: int) -> list[dict[str, Any]]:
    """Request ``n``: one snapshot of each of PER_REQUEST accounts, ``n`` seconds after T0."""
    observed = (T0 + timedelta(seconds=n)).isoformat().replace("+00:00", "Z")
    return [
        {
            "account_id": f"facebook:flt{i}",
            "platform": "facebook",
            "entity_id": "COM:38185",
            "observed_at": observed,
            "followers": 5000 + i + n,
        }
        for i in range(PER_REQUEST)
    ]


def identity(snapshot: dict[str, Any]) -> tuple[str, datetime]:
    return snapshot["account_id"], datetime.fromisoformat(snapshot["observed_at"].replace("Z", "+00:00"))


@dataclass
class Load:
    """POSTs REQUESTS_PER_S batches a second from THREADS threads; keeps what was acknowledged."""

    url: str
    auth: dict[str, str]
    acknowledged: list[tuple[str, datetime]] = field(default_factory=list)
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (start, latency) of each request
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: dict[str, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    sent_requests: int = 0

    def run(self, first: int, every: int) -> None:
        """Requests ``first``, ``first + every``, ... at their times on a fixed schedule (REQUESTS_PER_S in
        all over ``every`` threads), late ones at once."""
        started = time.monotonic()
        with httpx.Client(timeout=60) as client:
            n = first
            while not self.stop.is_set():
                time.sleep(max(0.0, started + n / REQUESTS_PER_S - time.monotonic()))
                began = time.monotonic()
                body = batch(n)
                n += every
                self.sent_requests += 1
                try:
                    r = client.post(self.url, json=body, headers=self.auth)
                    ok = r.status_code == 200 and r.json() == {"accepted": PER_REQUEST, "rejected": []}
                    status = str(r.status_code) if ok or r.status_code != 200 else "200 partial"
                except httpx.HTTPError as exc:
                    status, ok = type(exc).__name__, False
                latency = time.monotonic() - began
                with self.lock:
                    self.statuses[status] = self.statuses.get(status, 0) + 1
                    self.latencies.append((began, latency))
                    if ok:
                        self.acknowledged.extend(identity(s) for s in body)


def leader_of(settings: Settings, partition: int) -> int:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap.split(","))
    try:
        [described] = admin.describe_topics([settings.topic(Topic.ACCOUNT_SNAPSHOTS)])
        return int(next(p["leader_id"] for p in described["partitions"] if p["partition_index"] == partition))
    finally:
        admin.close()


def replica_counts(settings: Settings) -> list[int]:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap.split(","))
    try:
        [described] = admin.describe_topics([settings.topic(Topic.ACCOUNT_SNAPSHOTS)])
        return [len(p["replica_nodes"]) for p in described["partitions"]]
    finally:
        admin.close()


def test_the_leader_killed_under_load_loses_no_acknowledged_snapshot(
    kafka_cluster_factory: Any, app_settings: Settings, tmp_path: Path
) -> None:
    cluster: KafkaCluster = kafka_cluster_factory(nodes=3)
    settings = instance(
        app_settings, kafka_bootstrap=cluster.bootstrap_servers, kafka_partitions=3, kafka_replication=3
    )
    token = settings.bootstrap_token
    assert token is not None
    ingest = service("ingest", settings, 42030, tmp_path / "ingest")
    load = Load(f"{ingest.url}/v1/snapshots", {"Authorization": f"Bearer {token.get_secret_value()}"})
    try:
        ingest.start().wait_ready()
        feeders = [threading.Thread(target=load.run, args=(k, THREADS), daemon=True) for k in range(THREADS)]
        for feeder in feeders:
            feeder.start()
        began = time.monotonic()
        time.sleep(10)
        leader = leader_of(settings, 0)
        cluster.stop_node(leader, graceful=False)  # SIGKILL
        killed = time.monotonic()
        time.sleep(AFTER_KILL_S)
        load.stop.set()
        for feeder in feeders:
            feeder.join(90)
        elapsed = time.monotonic() - began
        replicas = replica_counts(settings)

        stored = [json.loads(r.value) for r in read_topic(settings)]
        stored_ids = [identity(s) for s in stored]

        # Two of three brokers down: nothing can be written with two in-sync copies.
        survivors = cluster.running_nodes()
        cluster.stop_node(survivors[0], graceful=False)
        refused_batch = batch(9_999)  # past, like the others; the load never gets this far
        began = time.monotonic()
        r = httpx.post(load.url, json=refused_batch, headers=load.auth, timeout=120)
        refused_s = time.monotonic() - began
        two_down = (r.status_code, r.headers.get("retry-after"), r.json())
    finally:
        load.stop.set()
        ingest.stop()
        drop(settings)

    around_kill = [lat for t, lat in load.latencies if t + lat >= killed]  # answered after the kill
    acked = set(load.acknowledged)
    figures = {
        "brokers": 3,
        "replicas_per_partition": replicas,
        "min_insync_replicas": 2,
        "killed_leader_node": leader,
        "requests": load.sent_requests,
        "answers": load.statuses,
        "snapshots_per_s": round(len(load.acknowledged) / elapsed),
        "load_s": round(elapsed, 1),
        "acknowledged": len(load.acknowledged),
        "stored": len(stored_ids),
        "acknowledged_and_stored": len(acked & set(stored_ids)),
        "lost": len(acked - set(stored_ids)),
        "duplicated": len(stored_ids) - len(set(stored_ids)),
        "stored_not_acknowledged": len(set(stored_ids) - acked),
        "longest_request_across_the_kill_s": round(max(around_kill, default=0.0), 2),
        "median_request_s": round(sorted(lat for _, lat in load.latencies)[len(load.latencies) // 2], 3),
        "two_of_three_down": {
            "status": two_down[0],
            "retry_after": two_down[1],
            "answered_after_s": round(refused_s, 1),
        },
    }
    record("c_leader_sigkill_3_nodes", figures)
    assert not acked - set(stored_ids), "acknowledged snapshots missing from the topic"
    assert len(stored_ids) == len(set(stored_ids)), "a snapshot stored twice"
    assert len(load.acknowledged) == len(acked)
    assert replicas == [3, 3, 3]
    assert two_down[0] == 503 and two_down[1] is not None, two_down
    assert two_down[2]["error"]["code"] == "kafka_unavailable", two_down
    assert "accepted" not in two_down[2]
