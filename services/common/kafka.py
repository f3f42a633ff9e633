"""Kafka plumbing shared by the services (thin: the maths never sees a broker)."""

from __future__ import annotations

import asyncio

from kafka import KafkaConsumer


def _topics(bootstrap: str, timeout_s: float) -> set[str]:
    ms = int(timeout_s * 1000)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        request_timeout_ms=max(ms, 1000) + 1000,
        api_version_auto_timeout_ms=ms,
        connections_max_idle_ms=max(ms, 1000) + 2000,
        metadata_max_age_ms=ms,
    )
    try:
        return set(consumer.topics())
    finally:
        consumer.close()


async def check_kafka(bootstrap: str, timeout_s: float = 2.0) -> None:
    """Raise unless the brokers at ``bootstrap`` answer a metadata request."""
    await asyncio.to_thread(_topics, bootstrap, timeout_s)
