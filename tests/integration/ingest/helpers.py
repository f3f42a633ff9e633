"""Reading a topic back, to compare what was published with what was sent."""

from __future__ import annotations

import json
from typing import Any

from kafka import KafkaConsumer

from services.common.names import Topic
from services.common.settings import Settings


def consume_all(
    settings: Settings, expected: int, topic: Topic = Topic.ACCOUNT_SNAPSHOTS, timeout_ms: int = 15000
) -> list[tuple[str, dict[str, Any]]]:
    """(key, value) of every record on ``topic``, stopping after ``expected`` or a quiet ``timeout_ms``."""
    consumer = KafkaConsumer(
        settings.topic(topic),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=timeout_ms,
    )
    out: list[tuple[str, dict[str, Any]]] = []
    try:
        for record in consumer:
            out.append((record.key.decode(), json.loads(record.value)))
            if len(out) >= expected:
                break
    finally:
        consumer.close()
    return out
