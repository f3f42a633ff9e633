"""The Faust wiring of the scoring worker: topics, the per-account state table, the agent, the web pages.

The agent takes the snapshots topic in batches (up to ``BATCH`` events or ``FLUSH_S`` seconds), turns
them into rows with the pure processor, writes them with the sink and only then lets Faust acknowledge
(and so commit) the batch's offsets: a crash never commits past unwritten rows. Invalid events go to the
dead-letter topic with their reason and processing goes on.

The state table is keyed by the raw ``account_id`` bytes, exactly like the source topic, and uses the
producer's partitioner (murmur2, as Kafka's and kafka-python's): a batch mixes partitions, and this keeps
each key's changelog record on the partition of its source events, so recovery after a rebalance finds
it where it expects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import faust
from faust import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest
from pydantic import ValidationError

from services.common.clickhouse import make_client
from services.common.events import AccountSnapshot, DeadLetter, describe_validation_error
from services.common.names import DeadLetterCode, Topic
from services.common.settings import Settings
from services.scoring.processor import Processor
from services.scoring.sink import ClickHouseSink

log = logging.getLogger(__name__)

BATCH = 10_000
FLUSH_S = 1.0

EVENTS = Counter("barometre_scoring_events_total", "Snapshot events consumed, by outcome.", ["outcome"])
LAG = Gauge(
    "barometre_scoring_consumer_lag", "Records not yet consumed, by partition.", ["topic", "partition"]
)
LAST_BATCH = Gauge("barometre_scoring_last_batch_timestamp_seconds", "When the last batch was written.")


def create_app(settings: Settings) -> faust.App:
    """The scoring Faust app for ``settings`` (``barometre scoring`` runs its worker)."""
    group = settings.scoring_group()
    (settings.data_dir / "scoring").mkdir(parents=True, exist_ok=True)
    app = faust.App(
        group,
        broker=[f"kafka://{hostport.strip()}" for hostport in settings.kafka_bootstrap.split(",")],
        store=settings.scoring_store,
        autodiscover=False,
        datadir=str(settings.data_dir / "scoring"),
        topic_partitions=settings.kafka_partitions,
        topic_replication_factor=settings.kafka_replication,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_bind=settings.scoring_host,
        web_host=settings.scoring_host,
        web_port=settings.scoring_port,
        web_in_thread=False,
        stream_buffer_maxsize=4 * BATCH,
        broker_commit_every=4 * BATCH,
        broker_commit_interval=FLUSH_S,
        # The state table holds our own compact bytes (processor.AccountState), keyed by account_id.
        table_key_serializer="raw",
        table_value_serializer="raw",
    )
    snapshots = app.topic(
        settings.topic(Topic.ACCOUNT_SNAPSHOTS),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.kafka_partitions,
    )
    dead_letters = app.topic(
        settings.topic(Topic.ACCOUNT_SNAPSHOTS_DLQ),
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.kafka_partitions,
    )
    states = app.Table(
        "account-state",
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.kafka_partitions,
        use_partitioner=True,
    )
    sink = ClickHouseSink(lambda: make_client(settings), settings.clickhouse_database)
    processor = Processor(settings, fetch_history=sink.fetch_history)

    async def dead_letter(event: Any, code: DeadLetterCode, message: str) -> None:
        msg = event.message
        letter = DeadLetter.for_record(
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            key=msg.key,
            value=msg.value,
            code=code,
            message=message,
            service="scoring",
            failed_at=datetime.now(UTC),
            timestamp=datetime.fromtimestamp(msg.timestamp, UTC) if msg.timestamp else None,
            consumer_group=group,
        )
        await dead_letters.send(key=msg.key, value=letter.to_event_bytes())
        EVENTS.labels("dead_letter").inc()

    async def handle(events: Sequence[Any]) -> None:
        offsets: dict[int, tuple[int, int]] = {}
        good: list[AccountSnapshot] = []
        for event in events:
            msg = event.message
            first, last = offsets.get(msg.partition, (msg.offset, msg.offset))
            offsets[msg.partition] = (min(first, msg.offset), max(last, msg.offset))
            try:
                snapshot = AccountSnapshot.from_event_bytes(msg.value)
            except ValidationError as exc:
                await dead_letter(event, DeadLetterCode.INVALID_EVENT, describe_validation_error(exc))
                continue
            except Exception as exc:  # not even JSON, not UTF-8...
                await dead_letter(event, DeadLetterCode.INVALID_EVENT, f"{type(exc).__name__}: {exc}")
                continue
            if msg.key is not None and msg.key != snapshot.account_id.encode():
                await dead_letter(
                    event,
                    DeadLetterCode.INVALID_EVENT,
                    f"record key {msg.key!r} is not the event's account_id {snapshot.account_id!r}",
                )
                continue
            good.append(snapshot)
        if good:
            out = await asyncio.to_thread(processor.process, good, states)
            await asyncio.to_thread(sink.write, out.tables, offsets, out.after)
            for key, value in out.states.items():
                states[key] = value
        EVENTS.labels("processed").inc(len(good))
        LAST_BATCH.set(time.time())

    @app.agent(snapshots)
    async def score(stream: Any) -> None:
        async for events in stream.take_events(BATCH, within=FLUSH_S):
            await handle(events)

    @app.timer(interval=10.0)  # type: ignore[untyped-decorator]  # mode's timer decorator is untyped
    async def report_lag() -> None:
        consumer = app.consumer
        for tp in consumer.assignment():
            if tp.topic != snapshots.get_topic_name():
                continue
            position = await consumer.position(tp)
            highwater = consumer.highwater(tp)
            if position is not None and highwater is not None:
                LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))

    @app.page("/healthz")
    async def healthz(self: web.View, request: web.Request) -> web.Response:
        return self.json({"status": "ok", "service": "scoring"})

    @app.page("/readyz")
    async def readyz(self: web.View, request: web.Request) -> web.Response:
        checks = {"clickhouse": "ok" if sink.healthy else "writes failing, retrying"}
        ready = sink.healthy
        body = {"status": "ready" if ready else "not_ready", "service": "scoring", "checks": checks}
        return self.json(body, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics(self: web.View, request: web.Request) -> web.Response:
        # aiohttp refuses a charset inside content_type: the full Prometheus type goes in the header.
        return self.bytes(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return app
