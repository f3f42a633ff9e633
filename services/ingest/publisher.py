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
from collections.abc import Sequence
from dataclasses import dataclass

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from murmurhash2 import murmurhash2

from services.common.kafka import client_security
from services.common.names import Topic
from services.common.settings import Settings

log = logging.getLogger(__name__)

# Kafka's murmur2 is MurmurHash2 (32-bit) with this seed; kafka-python's copy of it is pure Python.
_MURMUR2_SEED = 0x9747B28C


def partition_of(key: bytes, partitions: int) -> int:
    """The partition of ``key`` among ``partitions``, as Kafka's default partitioner (Java's and
    kafka-python's) picks it: one account's events go where the scoring worker keeps its state."""
    return (murmurhash2(key, _MURMUR2_SEED) & 0x7FFFFFFF) % partitions


class PublishError(RuntimeError):
    """Kafka did not acknowledge every record; ``acknowledged`` of them were."""

    def __init__(self, message: str, acknowledged: int) -> None:
        super().__init__(message)
        self.acknowledged = acknowledged


@dataclass(frozen=True)
class ProducerTuning:
    """How the producer trades latency for throughput; defaults suit HTTP batches of 1,000-10,000.

    For the producing process's CPU per record, batch sizes from 64 KiB to 1 MiB, lz4 or no compression,
    a linger of 5 or 20 ms make no difference beyond noise; ``linger_ms=0`` costs more (more, smaller
    batches). Figures in docs/DEVELOPING.md, "Benchmarks". lz4 stays for the disk: the snapshots topic
    is kept forever.
    """

    linger_ms: int = 5
    batch_size: int = 256 * 1024
    compression_type: str | None = "lz4"
    # How long send() may block waiting for metadata or buffer space, and how long a record may take
    # to be acknowledged, retries included: past these the caller gets a PublishError (HTTP 503).
    max_block_ms: int = 5_000
    delivery_timeout_ms: int = 30_000
    request_timeout_ms: int = 10_000


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
        self._security = client_security(settings)
        self._tuning = tuning
        self._client_id = client_id
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

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
                    **self._security,
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
            # Partitions picked here, in C, rather than by kafka-python's pure-Python murmur2 (a fifth of
            # the cost of a send). partitions_for waits for metadata up to max_block_ms.
            partitions = sorted(producer.partitions_for(self.topic))
            count, send, topic = len(partitions), producer.send, self.topic
            for key, value in records:
                futures.append(
                    send(topic, key=key, value=value, partition=partitions[partition_of(key, count)])
                )
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

    def warm_up(self) -> None:
        """Connect and learn the topic's partitions now, so that the first publish does not wait for
        them; best effort: a failure here is met again, and reported, by :meth:`publish`."""
        try:
            self._get().partitions_for(self.topic)
        except Exception as exc:  # any error: a pool initializer that raises is restarted forever
            log.debug("producer warm-up failed: %s", exc)

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=timeout)
                self._producer = None
