"""The Kafka side of ingest: publish validated snapshots and know exactly which the broker took.

One kafka-python producer per process, configured so that "accepted" means durable: ``acks=all``,
idempotence (no duplicates from retries), bounded retries within ``delivery_timeout_ms``, batching with a
short linger and lz4 compression. Records are keyed by ``account_id`` so one account's snapshots stay in
order on one partition. :meth:`Publisher.publish` returns only when every record was acknowledged, or
raises :class:`PublishError` naming how many were — nothing is ever reported accepted that the broker did
not take.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.partitioner.default import murmur2

from services.common.names import Topic
from services.common.settings import Settings

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    """Kafka did not acknowledge every record; ``acknowledged`` of them were."""

    def __init__(self, message: str, acknowledged: int) -> None:
        super().__init__(message)
        self.acknowledged = acknowledged


@dataclass(frozen=True)
class ProducerTuning:
    """How the producer trades latency for throughput; defaults suit HTTP batches of 1,000-10,000."""

    linger_ms: int = 5
    batch_size: int = 256 * 1024
    compression_type: str | None = "lz4"
    # How long send() may block waiting for metadata or buffer space, and how long a record may take
    # to be acknowledged, retries included: past these the caller gets a PublishError (HTTP 503).
    max_block_ms: int = 5_000
    delivery_timeout_ms: int = 30_000
    request_timeout_ms: int = 10_000
    buffer_memory: int = 64 * 1024 * 1024


class Publisher:
    """Publishes (key, value) records to one topic, acknowledged or reported as failed."""

    def __init__(
        self,
        settings: Settings,
        topic: Topic = Topic.ACCOUNT_SNAPSHOTS,
        tuning: ProducerTuning = ProducerTuning(),
        client_id: str = "barometre-ingest",
    ) -> None:
        self.topic = settings.topic(topic)
        self._bootstrap = [b.strip() for b in settings.kafka_bootstrap.split(",") if b.strip()]
        self._tuning = tuning
        self._client_id = client_id
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()
        self._partition_cache: dict[bytes, int] = {}
        self._partition_count = 0

    def _get(self) -> KafkaProducer:
        # Created lazily so that a service starts (and says "not ready") while Kafka is down.
        with self._lock:
            if self._producer is None:
                t = self._tuning
                self._producer = KafkaProducer(
                    bootstrap_servers=self._bootstrap,
                    client_id=self._client_id,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=t.linger_ms,
                    batch_size=t.batch_size,
                    compression_type=t.compression_type,
                    max_block_ms=t.max_block_ms,
                    delivery_timeout_ms=t.delivery_timeout_ms,
                    request_timeout_ms=t.request_timeout_ms,
                    max_in_flight_requests_per_connection=5,
                    bootstrap_timeout_ms=t.max_block_ms,
                )
            return self._producer

    def publish(self, records: Sequence[tuple[bytes, bytes]]) -> dict[int, int]:
        """Send ``records`` and wait for all acknowledgements.

        Returns, for each partition written, the offset just after the last record written there (what a
        consumer must have committed to have seen them all: ``barometre import --wait`` uses it).
        """
        if not records:
            return {}
        try:
            producer = self._get()
        except KafkaError as exc:
            raise PublishError(f"Kafka is unreachable: {exc}", 0) from exc
        futures = []
        try:
            partition_of = self._partitioner(producer)
            for key, value in records:
                futures.append(producer.send(self.topic, key=key, value=value, partition=partition_of(key)))
            producer.flush(timeout=self._tuning.delivery_timeout_ms / 1000)
        except KafkaTimeoutError as exc:
            acked = sum(1 for f in futures if f.succeeded())
            raise PublishError(f"Kafka did not take the records in time: {exc}", acked) from exc
        except KafkaError as exc:
            acked = sum(1 for f in futures if f.succeeded())
            raise PublishError(f"Kafka refused the records: {exc}", acked) from exc
        failed = [f for f in futures if not f.succeeded()]
        if failed:
            first = failed[0].exception
            raise PublishError(
                f"Kafka acknowledged {len(futures) - len(failed)} of {len(futures)} records: {first}",
                len(futures) - len(failed),
            )
        ends: dict[int, int] = {}
        for future in futures:
            meta = future.value
            ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
        return ends

    def _partitioner(self, producer: KafkaProducer) -> Callable[[bytes], int]:
        """The partition of a key, as the default partitioner picks it (murmur2, like Kafka's own
        clients, so a key's events and the scoring worker's state agree), memoised: the same accounts
        come back every round, and hashing in Python is a fifth of the cost of a send."""
        partitions = producer.partitions_for(self.topic)  # waits for metadata up to max_block_ms
        ordered = sorted(partitions)
        if len(ordered) != self._partition_count:
            self._partition_cache.clear()
            self._partition_count = len(ordered)
        cache = self._partition_cache
        if len(cache) > 1_000_000:  # bounded: the registry has ~300,000 accounts
            cache.clear()

        def partition_of(key: bytes) -> int:
            found = cache.get(key)
            if found is None:
                found = cache[key] = ordered[(murmur2(key) & 0x7FFFFFFF) % len(ordered)]
            return found

        return partition_of

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """True once the producer has reached a broker (for readiness)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self._get().bootstrap_connected():
                    return True
            except KafkaError:
                pass
            time.sleep(0.1)
        return False

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=timeout)
                self._producer = None
