"""Readiness checks and topic creation against the real broker."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from kafka.admin import KafkaAdminClient

from services.common.kafka import check_kafka, ensure_topics
from services.common.names import Topic
from services.common.settings import Settings

pytestmark = pytest.mark.kafka


def test_check_kafka_passes_on_a_live_broker(kafka_bootstrap: str) -> None:
    asyncio.run(check_kafka(kafka_bootstrap))


def test_check_kafka_fails_fast_when_nothing_listens() -> None:
    start = time.monotonic()
    with pytest.raises(Exception):  # noqa: B017 - kafka-python raises several types for "no broker"
        asyncio.run(check_kafka("127.0.0.1:1", timeout_s=1.0))
    assert time.monotonic() - start < 10


def test_ensure_topics_creates_each_once_with_the_settings(kafka_bootstrap: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    settings = Settings(kafka_bootstrap=kafka_bootstrap, kafka_topic_prefix=prefix, kafka_partitions=3)
    created = ensure_topics(settings)
    assert sorted(created) == sorted(prefix + t.value for t in Topic)
    assert ensure_topics(settings) == []
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        [described] = admin.describe_topics([settings.topic(Topic.ACCOUNT_SNAPSHOTS)])
        assert len(described["partitions"]) == 3
    finally:
        admin.close()
