"""The Faust wiring of the scoring worker: topics, the per-account state table, the agent, the web pages.

The agent takes the snapshots topic in batches (up to ``BATCH`` events or ``FLUSH_S`` seconds), turns
them into rows with the pure processor, writes them with the sink and only then lets Faust acknowledge
(and so commit) the batch's offsets: a crash never commits past unwritten rows. Invalid events, and valid
ones the processor fails on, go to the dead-letter topic with their reason (the policy is in
``services.scoring.dead_letters``), acknowledged by Kafka before the batch is; processing goes on.

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
from typing import Any

import faust
from faust import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest

from services.common.clickhouse import make_client
from services.common.events import AccountSnapshot
from services.common.names import DeadLetterCode, Topic
from services.common.settings import Settings
from services.scoring.dead_letters import (
    Rejection,
    classify,
    dead_letter_bytes,
    describe_processing_error,
    isolate_failures,
)
from services.scoring.processor import BatchOutput, Processor
from services.scoring.sink import ClickHouseSink

log = logging.getLogger(__name__)

BATCH = 10_000
FLUSH_S = 1.0
MAX_BACKOFF_S = 30.0

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

    # What keeps the worker from being ready besides ClickHouse writes (which the sink reports): a check
    # name -> what is being retried. Empty when all is well.
    retrying: dict[str, str] = {}

    def letter(msg: Any, rejection: Rejection) -> tuple[bytes | None, bytes]:
        value = dead_letter_bytes(
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            key=msg.key,
            value=msg.value,
            timestamp_s=msg.timestamp,
            rejection=rejection,
            consumer_group=group,
        )
        return msg.key, value

    async def send_dead_letters(letters: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Send ``letters`` and return once Kafka acknowledged every one (acks=all), however long it takes:
        the batch's offsets must not be committed before its dead letters are safe."""
        pending = list(letters)
        delay = 0.5
        while pending:
            results: list[object] = []
            try:
                # send() only queues the record; awaiting its future waits for the acknowledgement.
                futures = [await dead_letters.send(key=key, value=value) for key, value in pending]
                results = list(await asyncio.gather(*futures, return_exceptions=True))
            except Exception as exc:  # the producer itself failed: resend them all
                results = [exc] * len(pending)
            failed = [
                pair for pair, result in zip(pending, results, strict=True) if isinstance(result, Exception)
            ]
            if failed:
                first = next(r for r in results if isinstance(r, Exception))
                if "kafka" not in retrying:
                    log.warning("Dead letters not acknowledged, retrying (the worker waits): %s", first)
                retrying["kafka"] = "dead-letter sends failing, retrying"
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
            pending = failed
        retrying.pop("kafka", None)

    async def process(good: Sequence[AccountSnapshot]) -> tuple[BatchOutput | None, dict[str, Exception]]:
        """Score ``good``, dead-lettering the accounts the processor fails on (isolate_failures);
        a ClickHouse or network error while scoring (reading old history) is waited out instead."""
        delay = 0.5
        while True:
            try:
                result = await asyncio.to_thread(
                    isolate_failures, good, lambda batch: processor.process(batch, states)
                )
                retrying.pop("clickhouse", None)
                return result
            except Exception as exc:  # a dependency's failure (isolate_failures raises only those): wait
                if "clickhouse" not in retrying:
                    log.warning(
                        "Scoring a batch failed on a dependency, retrying (the worker waits): %s", exc
                    )
                retrying["clickhouse"] = "reads failing, retrying"
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)

    async def handle_batch(events: Sequence[Any]) -> None:
        offsets: dict[int, tuple[int, int]] = {}
        good: list[AccountSnapshot] = []
        records_of: dict[str, list[Any]] = {}  # account_id -> its records in this batch
        letters: list[tuple[bytes | None, bytes]] = []
        for event in events:
            msg = event.message
            first, last = offsets.get(msg.partition, (msg.offset, msg.offset))
            offsets[msg.partition] = (min(first, msg.offset), max(last, msg.offset))
            try:
                verdict = classify(msg.key, msg.value)
            except Exception as exc:  # classify expects bad input, not to fail: our fault, not the record's
                verdict = Rejection(DeadLetterCode.PROCESSING_ERROR, describe_processing_error(None, exc))
            if isinstance(verdict, Rejection):
                letters.append(letter(msg, verdict))
                continue
            good.append(verdict)
            records_of.setdefault(verdict.account_id, []).append(msg)
        out, failed = await process(good) if good else (None, {})
        for account_id, error in failed.items():
            log.error(
                "Scoring account %s failed; its events go to the dead-letter topic",
                account_id,
                exc_info=error,
            )
            rejection = Rejection(
                DeadLetterCode.PROCESSING_ERROR, describe_processing_error(account_id, error)
            )
            letters.extend(letter(msg, rejection) for msg in records_of[account_id])
        if letters:
            await send_dead_letters(letters)
            EVENTS.labels("dead_letter").inc(len(letters))
        if out is not None:
            await asyncio.to_thread(sink.write, out.tables, offsets, out.after)
            for key, value in out.states.items():
                states[key] = value
        EVENTS.labels("processed").inc(len(good) - sum(len(records_of[a]) for a in failed))
        LAST_BATCH.set(time.time())

    async def handle(events: Sequence[Any]) -> None:
        try:
            delay = 0.5
            while True:
                try:
                    await handle_batch(events)
                    retrying.pop("batches", None)
                    return
                except Exception:
                    # Not the events (those are dead-lettered) nor a dependency (waited out above): a bug
                    # of ours. Retrying the batch is safe (every write is idempotent) and keeps its
                    # offsets uncommitted; the worker says it is not ready until it goes through.
                    log.exception("Handling a batch failed, retrying it")
                    retrying["batches"] = "a batch keeps failing, retrying"
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, MAX_BACKOFF_S)
        except BaseException:
            # Cancelled (rebalance, shutdown) or failed half-way: take_events acks the batch anyway, in a
            # finally, and Faust commits acked offsets. Keep these offsets out of every commit; the events
            # are consumed again after the rebalance or restart, and idempotence absorbs what was done.
            hold_back(events)
            raise

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
        checks = {
            "clickhouse": retrying.get("clickhouse", "ok") if sink.healthy else "writes failing, retrying",
            "kafka": retrying.get("kafka", "ok"),
            "batches": retrying.get("batches", "ok"),
        }
        ready = all(state == "ok" for state in checks.values())
        body = {"status": "ready" if ready else "not_ready", "service": "scoring", "checks": checks}
        return self.json(body, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics(self: web.View, request: web.Request) -> web.Response:
        # aiohttp refuses a charset inside content_type: the full Prometheus type goes in the header.
        return self.bytes(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return app


def hold_back(events: Sequence[Any]) -> None:
    """Make sure the offsets of ``events`` are never committed by this consumer.

    Faust commits, per partition, up to the first offset not acknowledged; a message already marked
    acknowledged is never acknowledged again, so marking these here (without telling the consumer) turns
    take_events' later acks into no-ops and leaves a gap that no commit passes.
    """
    for event in events:
        event.message.acked = True
