"""Kafka plumbing shared by the services (thin: the maths never sees a broker).

Topics are declared in :class:`services.common.names.Topic`; :func:`ensure_topics` creates them with the
configured partitions and replication, so nobody relies on broker-side auto-creation defaults.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from services.common.names import Topic
from services.common.settings import Settings

# The dead-letter topic keeps its records for 30 days: long enough to look at and replay them.
_TOPIC_CONFIGS: dict[Topic, dict[str, str]] = {
    Topic.ACCOUNT_SNAPSHOTS: {"retention.ms": "-1"},  # the log is the truth: `barometre rebuild` replays it
    Topic.ACCOUNT_SNAPSHOTS_DLQ: {"retention.ms": str(30 * 24 * 3600 * 1000)},
    Topic.ALERTS: {"retention.ms": str(365 * 24 * 3600 * 1000)},
    Topic.INCIDENTS: {"retention.ms": str(365 * 24 * 3600 * 1000)},
    # Candidates are consumed within seconds; a week covers any outage of the alert stage.
    Topic.ALERT_CANDIDATES: {"retention.ms": str(7 * 24 * 3600 * 1000)},
}


def _split(bootstrap: str) -> list[str]:
    return [b.strip() for b in bootstrap.split(",") if b.strip()]


def _topics(bootstrap: str, timeout_s: float) -> set[str]:
    ms = int(timeout_s * 1000)
    consumer = KafkaConsumer(
        bootstrap_servers=_split(bootstrap),
        request_timeout_ms=max(ms, 1000),
        bootstrap_timeout_ms=max(ms, 1000),
        enable_auto_commit=False,  # no group: nothing to commit (and no warning saying so)
    )
    try:
        return set(consumer.topics())
    finally:
        consumer.close()


async def check_kafka(bootstrap: str, timeout_s: float = 2.0) -> None:
    """Raise unless the brokers at ``bootstrap`` answer a metadata request."""
    await asyncio.to_thread(_topics, bootstrap, timeout_s)


def ensure_topics(
    settings: Settings, topics: Iterable[Topic] = tuple(Topic), timeout_s: float = 10.0
) -> list[str]:
    """Create the missing ``topics``; return the names created now. Raises when Kafka does not answer
    within about ``timeout_s``."""
    return create_topics(
        settings,
        [
            NewTopic(
                name=settings.topic(topic),
                num_partitions=settings.kafka_partitions,
                replication_factor=settings.kafka_replication,
                topic_configs=_TOPIC_CONFIGS.get(topic, {}),
            )
            for topic in topics
        ],
        timeout_s,
    )


def create_topics(settings: Settings, topics: Iterable[NewTopic], timeout_s: float = 10.0) -> list[str]:
    """Create those of ``topics`` that do not exist; return the names created now (a topic another
    process creates in between is left to it). Raises when Kafka does not answer within about
    ``timeout_s``."""
    ms = int(timeout_s * 1000)
    admin = KafkaAdminClient(
        bootstrap_servers=_split(settings.kafka_bootstrap),
        client_id="barometre-admin",
        request_timeout_ms=ms,
        bootstrap_timeout_ms=ms,
    )
    try:
        existing = set(admin.list_topics())
        created = []
        for new in topics:
            if new.name in existing:
                continue
            try:
                admin.create_topics([new])
                created.append(new.name)
            except TopicAlreadyExistsError:  # another process created it in between
                pass
        return created
    finally:
        admin.close()
