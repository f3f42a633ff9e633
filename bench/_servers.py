"""The Kafka broker and ClickHouse endpoint a bench runs against.

Each bench starts its own on its own ports (so that benches and test runs do not meet), or uses the
servers named by BAROMETRE_BENCH_KAFKA / BAROMETRE_BENCH_CLICKHOUSE when set.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path

from infra.clickhouse import ClickHouseEndpoint
from infra.kafka import KafkaCluster, ensure_jars

# A benchmark is one client at thousands of requests a second: the services it starts get no per-client
# rate limit (docs/CONTRACT.md, "Limits").
NO_RATE_LIMITS = {"BAROMETRE_RATE_LIMIT_PER_ADDRESS": "0", "BAROMETRE_RATE_LIMIT_PER_TOKEN": "0"}


def bench_servers(
    stack: ExitStack, tmp: Path, kafka_port: int, ch_port: int, controller_port: int | None = None
) -> tuple[str, str]:
    """(Kafka bootstrap servers, ClickHouse URL); what was started here stops with ``stack``."""
    kafka = os.environ.get("BAROMETRE_BENCH_KAFKA")
    if not kafka:
        ensure_jars()
        cluster = KafkaCluster(tmp / "kafka", port=kafka_port, controller_port=controller_port)
        cluster.start()
        stack.callback(cluster.stop)
        kafka = cluster.bootstrap_servers
    ch = os.environ.get("BAROMETRE_BENCH_CLICKHOUSE")
    if not ch:
        endpoint = ClickHouseEndpoint(tmp / "ch", port=ch_port)
        endpoint.start()
        stack.callback(endpoint.stop)
        ch = endpoint.url
    return kafka, ch
