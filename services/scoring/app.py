"""The Faust wiring of the scoring worker: topics, the per-account state table, the agent, the web pages.

The agent takes the snapshots topic in batches (up to ``BATCH`` events or ``TAKE_WITHIN_S`` seconds),
turns them into rows with the pure processor, writes them with the sink and only then lets Faust
acknowledge (and so commit) the batch's offsets: a crash never commits past unwritten rows. Invalid
events, and valid ones the processor fails on, go to the dead-letter topic with their reason (the policy
is in ``services.scoring.dead_letters``), acknowledged by Kafka before the batch is; processing goes on.

The state table is keyed by the raw ``account_id`` bytes, exactly like the source topic. A batch's new
states go to its local store at once and to its changelog in one record batch per partition, each on
the partition of the snapshots it comes from, so recovery after a rebalance finds it where it expects
(``services.scoring.changelog``: Faust's ``table[key] = value`` sends one record at a time, which cost
much of the worker's CPU). Anything else writing to the table goes through
Faust, with the producer's partitioner (murmur2, as Kafka's and kafka-python's), which agrees.

Alerts (docs/ALERTS.md, "What the worker does") take two stages, because snapshots are partitioned by
account while grouping needs a whole platform in one place:

1. the snapshots agent runs the detectors on each new point (inside the processor) and sends what they
   find to the internal topic ``alert-candidates.v1``, keyed by platform, acknowledged by Kafka before
   the batch's states are stored and its offsets committed (a crash re-detects, never loses);
2. the alert agent consumes that topic: one :class:`NoiseControl` per platform, kept in the
   ``alert-noise`` table (pickled, keyed by platform), decides what is published. Each step's rows go
   to ClickHouse (``alerts``, ``incidents``), then its alerts to ``alerts.v1`` and its incidents to
   ``incidents.v1``, acknowledged, then the new state is stored, then offsets may be committed. Timers
   release held detections (``flush``) every second, reload silences every 5 s and active accounts
   every minute from ClickHouse, and look for silent accounts (``BAROMETRE_ALERT_SILENCE_CHECK_S``).

Delivery is at least once: after a crash, an alert may be published again, with the same ``alert_id``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import faust
from faust import web
from kafka.admin import NewTopic
from kafka.partitioner.default import murmur2
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest

from services.common.clickhouse import make_client
from services.common.events import AccountSnapshot
from services.common.kafka import create_topics, faust_credentials, replication_factor
from services.common.names import Topic
from services.common.retry import Health, Retry, Retrying
from services.common.settings import Settings
from services.scoring import faust_patches  # noqa: F401  # fixes faust's offset commits, on import
from services.scoring.alerts.codec import (
    candidate_key,
    encode_candidate,
)
from services.scoring.alerts.noise import Candidate, NoiseParams
from services.scoring.alerts.stage import AlertStage
from services.scoring.alerts.store import AlertStore, StoreStopped
from services.scoring.changelog import store_states
from services.scoring.dead_letters import (
    Rejection,
    dead_letter_bytes,
    isolate_failures,
)
from services.scoring.pipeline import Batch, snapshot_steps
from services.scoring.processor import BatchOutput, Processor, detector_params, silent_accounts, wall_ms
from services.scoring.sink import ClickHouseSink, SinkStopped, WriteRejected

log = logging.getLogger(__name__)

# Events a batch at most. Each batch has costs of its own (an insert per table, the entity rollup
# statement reading account_latest, the changelog's acks), which the worker waits for. Larger batches
# spread those costs; past this size the gain is small (bench/scoring.py; figures in
# docs/DEVELOPING.md, "Benchmarks").
BATCH = 20_000
FLUSH_S = 1.0
# A batch of snapshots goes when it is full or this long after its first event: under load batches are
# full; at a trickle this is most of the time from ingest to rows (freshness).
TAKE_WITHIN_S = 0.25
MAX_STATE_BYTES = 16 * 1024 * 1024  # the largest record the worker produces (a noise-control state)
# Besides the timer, silent accounts are looked for each time the clock (the receipt time of the
# snapshots processed) has moved this much: a day of backlog is a day of checks, whatever the lag.
SILENCE_CHECK_EVENT_MS = 24 * 3600 * 1000
ROLLUP_REFRESH_S = 3600.0  # entity rollups gone stale without a new event are recomputed this often

EVENTS = Counter("barometre_scoring_events_total", "Snapshot events consumed, by outcome.", ["outcome"])
LAG = Gauge(
    "barometre_scoring_consumer_lag", "Records not yet consumed, by partition.", ["topic", "partition"]
)
LAST_BATCH = Gauge("barometre_scoring_last_batch_timestamp_seconds", "When the last batch was written.")
DETECTIONS = Counter(
    "barometre_alert_detections_total", "Detections sent to noise control, by alert type.", ["type"]
)

RELEASE_S = 1.0  # held detections are released this often (NoiseControl.flush)
SILENCES_S = 5.0  # silences are re-read from ClickHouse this often
ACTIVE_ACCOUNTS_S = 60.0  # active accounts per platform (the incidents' denominator) this often


def create_app(settings: Settings) -> faust.App:
    """The scoring Faust app for ``settings`` (``barometre scoring`` runs its worker)."""
    group = settings.scoring_group()
    datadir = settings.data_dir / (
        "scoring-" + settings.scoring_instance if settings.scoring_instance else "scoring"
    )
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        group,
        broker=[f"kafka://{hostport.strip()}" for hostport in settings.kafka_bootstrap.split(",")],
        broker_credentials=faust_credentials(settings),
        store=settings.scoring_store,
        autodiscover=False,
        datadir=str(datadir),
        topic_partitions=settings.kafka_partitions,
        # Faust's own topics (changelogs, repartitions, its leader topic): min(3, brokers) unless set;
        # run_worker resolves it before, so only a direct caller with the default asks Kafka here.
        topic_replication_factor=replication_factor(settings),
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.scoring_session_timeout_s,
        producer_acks=-1,
        producer_max_request_size=MAX_STATE_BYTES,
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
        schema=RawRecords(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"),
        partitions=settings.kafka_partitions,
    )
    dead_letters = app.topic(
        settings.topic(Topic.ACCOUNT_SNAPSHOTS_DLQ),
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.kafka_partitions,
    )

    def bytes_table(name: str, **topic_configs: str) -> Any:
        # Our own bytes, keyed by raw bytes; placed by the producer's partitioner (module docstring).
        return app.Table(
            name,
            default=None,
            key_type=bytes,
            value_type=bytes,
            partitions=settings.kafka_partitions,
            use_partitioner=True,
            extra_topic_configs=topic_configs,
        )

    states = bytes_table("account-state")
    candidates_topic, alerts_topic, incidents_topic = (
        app.topic(
            settings.topic(topic),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.kafka_partitions,
        )
        for topic in (Topic.ALERT_CANDIDATES, Topic.ALERTS, Topic.INCIDENTS)
    )
    # The alert stage's state: platform -> its pickled NoiseControl (codec.dump_control). Written from
    # the agent and from timers, hence the producer's partitioner (the candidates' key is the platform).
    # A platform's noise-control state holds its incidents' members: 300,000 accounts in one incident
    # are 2.1 MB compressed, over Kafka's default 1 MB record limit (hence the changelog's own limit).
    noise_states = bytes_table("alert-noise", **{"max.message.bytes": str(MAX_STATE_BYTES)})
    # What keeps the worker from being ready (/readyz): what is being retried. Empty when all is well.
    health = Health()
    sink = ClickHouseSink(lambda: make_client(settings), settings.clickhouse_database, health=health)
    detector = detector_params(settings)
    processor = Processor(settings, fetch_history=sink.fetch_history, alerts=detector)
    # Two clients without sessions: the stage writes while timers read, possibly at the same time.
    writer = AlertStore(
        lambda: make_client(settings, autogenerate_session_id=False),
        settings.clickhouse_database,
        health=health,
    )
    reader = AlertStore(
        lambda: make_client(settings, autogenerate_session_id=False), settings.clickhouse_database
    )

    clock = EventClock()
    silence_checked = 0  # the clock (receipt time) at the last check triggered by the batches
    background: set[asyncio.Future[None]] = set()  # the checks batches started, kept until they end
    fed: set[bytes] = set()  # accounts with a new state since the last silence check
    silence_lock = asyncio.Lock()  # one check at a time; a check asked for meanwhile is skipped

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

    async def send_acked(topic: Any, records: Sequence[tuple[bytes | None, bytes]], what: str) -> None:
        """Send ``records`` to ``topic`` and return once Kafka acknowledged every one (acks=all), however
        long it takes: the batch's offsets must not be committed before they are safe."""
        pending = list(records)

        async def send_pending() -> None:
            nonlocal pending
            results: list[object] = []
            try:
                # send() only queues the record; awaiting its future waits for the acknowledgement.
                futures = [await topic.send(key=key, value=value) for key, value in pending]
                results = list(await asyncio.gather(*futures, return_exceptions=True))
            except Exception as exc:  # the producer itself failed: resend them all
                results = [exc] * len(pending)
            pending = [
                pair for pair, result in zip(pending, results, strict=True) if isinstance(result, Exception)
            ]
            if pending:  # only those again
                raise next(r for r in results if isinstance(r, Exception))

        detail = f"{what} sends failing, retrying"
        await Retry(f"{what} sends (the worker waits)", health, Retrying.KAFKA_SENDS, detail).acall(
            send_pending
        )

    async def send_candidates(candidates: Sequence[Candidate]) -> None:
        """Send detections to the alert stage, acknowledged (the caller commits nothing before)."""
        await send_acked(
            candidates_topic,
            [(candidate_key(c), encode_candidate(c)) for c in candidates],
            "Alert candidates",
        )
        for c in candidates:
            DETECTIONS.labels(c.type.value).inc()

    reads = sink.retry(
        "Scoring a batch on a dependency (the worker waits)",
        Retrying.CLICKHOUSE_READS,
        "reads failing, retrying",
    )

    async def process(
        good: Sequence[AccountSnapshot], received: Mapping[str, int]
    ) -> tuple[BatchOutput | None, dict[str, Exception]]:
        """Score ``good``, isolating the accounts the processor fails on (isolate_failures);
        a ClickHouse or network error while scoring (reading old history) is waited out instead."""
        # A dependency's failure (isolate_failures raises only those) is waited out; SinkStopped when
        # shutting down meanwhile.
        return await reads.acall(
            lambda: asyncio.to_thread(
                isolate_failures, good, lambda batch: processor.process(batch, states.data, received)
            )
        )

    def watch_clock(batch: Batch) -> None:
        nonlocal silence_checked
        if not batch.received:
            return
        clock.advance(max(batch.received.values()))
        if clock.received - silence_checked >= SILENCE_CHECK_EVENT_MS and not silence_lock.locked():
            # Catching up on a backlog, the clock runs faster than the timer: check as it goes.
            silence_checked = clock.received
            task = asyncio.ensure_future(look_for_silent_accounts())
            background.add(task)
            task.add_done_callback(background.discard)

    def watch_fed(batch: Batch) -> None:
        if batch.out is not None:
            fed.update(batch.out.states)

    async def send_letters(records: list[tuple[bytes | None, bytes]]) -> None:
        await send_acked(dead_letters, records, "Dead letters")
        EVENTS.labels("dead_letter").inc(len(records))

    async def write(out: BatchOutput, offsets: Mapping[int, tuple[int, int]]) -> dict[str, WriteRejected]:
        # Written before the next batch is scored. Writing batch N while N+1 was scored (states of
        # unwritten batches in an overlay) was tried: no measurable gain on this machine, and a full test
        # run once lost a row across a shutdown during a ClickHouse outage.
        return await asyncio.to_thread(sink.write, out.tables, offsets, out.after)

    async def store(changes: dict[int, list[tuple[bytes, bytes]]]) -> None:
        await store_states(states, changes, health=health)

    pipeline = snapshot_steps(
        score=process,
        write=write,
        send_letters=send_letters,
        envelope=letter,
        send_candidates=send_candidates,
        store_states=store,
        classified=watch_clock,
        processed=watch_fed,
    )

    async def handle_batch(events: Sequence[Any]) -> None:
        batch = await pipeline.run([event.message for event in events])
        LAST_BATCH.set(time.time())
        EVENTS.labels("processed").inc(batch.processed)

    batches = Retry(
        "Handling a batch",
        health,
        Retrying.BATCHES,
        "a batch keeps failing, retrying",
        transient=lambda exc: isinstance(exc, Exception) and not isinstance(exc, SinkStopped | StoreStopped),
        traceback=True,
    )

    async def handle(events: Sequence[Any], batch: Callable[[Sequence[Any]], Awaitable[None]]) -> None:
        try:
            try:
                # Not the events (those are dead-lettered) nor a dependency (waited out inside): a bug
                # of ours. Retrying the batch is safe (every write is idempotent) and keeps its offsets
                # uncommitted; the worker says it is not ready until it goes through.
                await batches.acall(lambda: batch(events))
            except (SinkStopped, StoreStopped) as exc:
                # Shutting down while ClickHouse fails: give the batch up (unwritten, unpublished),
                # uncommitted; the next start consumes it again.
                log.warning("Stopping with a batch of %d events unwritten: %s", len(events), exc)
                hold_back(events)
        except BaseException:
            # Cancelled (rebalance, shutdown) or failed half-way: take_events acks the batch anyway, in a
            # finally, and Faust commits acked offsets. Keep these offsets out of every commit; the events
            # are consumed again after the rebalance or restart, and idempotence absorbs what was done.
            hold_back(events)
            raise

    @app.agent(snapshots)
    async def score(stream: Any) -> None:
        async for events in stream.take_events(BATCH, within=TAKE_WITHIN_S):
            await handle(events, handle_batch)

    @app.task  # type: ignore[untyped-decorator]  # faust's task decorator is untyped
    async def stop_retrying_on_shutdown() -> None:
        # Faust's shutdown first waits until every event taken is acknowledged; a batch whose write
        # retries while ClickHouse is down would keep it waiting forever (the alert stage's too).
        await app.wait_until_stopped()
        sink.stop()
        writer.stop()

    @app.task  # type: ignore[untyped-decorator]  # faust's task decorator is untyped
    async def refresh_stale_rollups() -> None:
        # Batches recompute the rollups of the entities they touch; an account going stale (its latest
        # point leaving the staleness window) touches nothing, so its entity's sums are redone here.
        while not app.should_stop:
            try:
                pairs = await asyncio.to_thread(sink.refresh, processor.stale_rollups(), processor.rollups)
                if pairs:
                    log.info("Recomputed %d entity rollups that had gone stale", pairs)
            except Exception as exc:  # ClickHouse away: the next round tries again
                log.warning("Recomputing stale entity rollups failed (retried later): %s", exc)
            await app.sleep(ROLLUP_REFRESH_S)

    # --- The alert stage (module docstring): one NoiseControl per platform.

    stage = AlertStage(
        table=noise_states,
        params=NoiseParams(group_wait_ms=round(settings.alert_group_wait_s * 1000)),
        writer=writer,
        reader=reader,
        send_alerts=lambda records: send_acked(alerts_topic, records, "Alerts"),
        send_incidents=lambda records: send_acked(incidents_topic, records, "Incidents"),
        watched_since=processor.watched_since,
        staleness_days=settings.staleness_days,
        health=health,
    )

    def stage_ready() -> bool:
        return not app.rebalancing and not getattr(app, "in_recovery", False)

    async def handle_candidates(events: Sequence[Any]) -> None:
        await stage.handle(
            (f"{e.message.topic}[{e.message.partition}]@{e.message.offset}", e.message.value) for e in events
        )

    @app.agent(candidates_topic)
    async def alert_stage(stream: Any) -> None:
        async for events in stream.take_events(BATCH, within=FLUSH_S):
            await handle(events, handle_candidates)

    def local_keys(table: Any, topic: Any) -> list[bytes]:
        """The keys of ``table`` on the partitions of ``topic`` this worker is active for (not the
        standby copies it may hold of others'), as the producer's murmur2 partitioner places them."""
        name = topic.get_topic_name()
        count = app.consumer.topic_partitions(name) or settings.kafka_partitions
        mine = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == name}
        return [key for key in list(table.keys()) if (murmur2(key) & 0x7FFFFFFF) % count in mine]

    @app.timer(interval=RELEASE_S)  # type: ignore[untyped-decorator]  # mode's timer decorator is untyped
    async def release_held() -> None:
        if not stage_ready():
            return
        try:
            platforms = [key.decode() for key in local_keys(noise_states, candidates_topic)]
            if await stage.release(platforms):
                await app.producer.flush()  # the new states on their changelog before going on
        except StoreStopped as exc:  # shutting down while ClickHouse fails: they stay held, stored
            log.warning("Stopping with held alert detections undelivered: %s", exc)
        except Exception:
            # A bug of ours, not a dependency (those are waited out): the held detections stay in the
            # stored state, and the next tick tries again; a crashed timer would stop the worker.
            log.exception("Releasing held alert detections failed; retrying at the next tick")

    @app.timer(interval=SILENCES_S)  # type: ignore[untyped-decorator]  # mode's timer decorator is untyped
    async def reload_silences() -> None:
        await stage.reload(stage.read_silences, "silences")

    @app.timer(interval=ACTIVE_ACCOUNTS_S)  # type: ignore[untyped-decorator]  # mode's timer decorator is untyped
    async def reload_active_accounts() -> None:
        await stage.reload(stage.read_active_accounts, "active accounts")

    async def look_for_silent_accounts() -> None:
        if not stage_ready() or silence_lock.locked():
            return
        async with silence_lock:
            await silent_accounts_to_stage()

    async def silent_accounts_to_stage() -> None:
        try:
            keys = local_keys(states, snapshots)
            # An account fed since the last check is not silent, whatever its points say: during an
            # import its history arrives in several batches, and a part of it can end 45 days ago.
            recent = set(fed)
            fed.clear()
            held = [(key, value) for key in keys if key not in recent and (value := states.get(key))]
            found = await asyncio.to_thread(silent_accounts, held, clock.now(), detector)
            if found:
                await send_candidates(found)
        except Exception:  # a bug of ours (an unreadable state?): the next check tries again
            log.exception("Looking for silent accounts failed; retrying at the next check")

    @app.timer(interval=settings.alert_silence_check_s)  # type: ignore[untyped-decorator]  # untyped decorator
    async def check_silent_accounts() -> None:
        await look_for_silent_accounts()

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

    recovered = app.tables.recovery.completed  # type: ignore[attr-defined]  # set after the first recovery

    @app.page("/readyz")
    async def readyz(self: web.View, request: web.Request) -> web.Response:
        def first(*what: Retrying) -> str:
            return next((detail for w in what if (detail := health.get(w))), "ok")

        checks = {
            "clickhouse": first(Retrying.CLICKHOUSE_WRITES, Retrying.CLICKHOUSE_READS),
            "kafka": first(Retrying.KAFKA_SENDS, Retrying.CHANGELOG),
            # Until the tables are recovered from their changelogs, nothing is consumed.
            "state": "recovering" if app.in_recovery or not recovered.is_set() else "ok",
            "batches": first(Retrying.BATCHES),
            "alerts": first(Retrying.ALERT_WRITES, Retrying.ALERT_READS),
        }
        ready = all(state == "ok" for state in checks.values())
        body = {"status": "ready" if ready else "not_ready", "service": "scoring", "checks": checks}
        return self.json(body, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics(self: web.View, request: web.Request) -> web.Response:
        # aiohttp refuses a charset inside content_type: the full Prometheus type goes in the header.
        return self.bytes(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return app


def ensure_changelog_topics(app: faust.App, settings: Settings) -> list[str]:
    """Create the tables' changelog topics that do not exist yet, as Faust would (compacted, with the
    table's partitions and extra configs); return the names created.

    Faust creates them itself once it runs, but its producer may have read the cluster's metadata
    before: a table write then finds no partitions for its changelog (aiokafka's cached metadata,
    refreshed every 5 minutes) and fails until the next refresh. Seen on a loaded machine: the alert
    stage retried its first batch for minutes. Created before the worker starts, they are known to
    the producer from its first metadata."""
    return create_topics(
        settings,
        [
            NewTopic(
                name=table.changelog_topic.get_topic_name(),
                num_partitions=table.changelog_topic.partitions or settings.kafka_partitions,
                replication_factor=settings.kafka_replication,
                topic_configs={
                    "cleanup.policy": "compact",
                    **{k: str(v) for k, v in (table.changelog_topic.config or {}).items()},
                },
            )
            for table in app.tables.values()
        ],
    )


class RawRecords(faust.Schema[bytes, bytes]):
    """Records as they are: the key and value bytes. Faust's "raw" codec gives the same bytes, but
    through its serializer registry and a codec chain, for the key and the value of every record (3 %
    of the scoring worker's time); the worker validates the value itself (``classify``)."""

    def loads_key(self, app: Any, message: Any, *, loads: Any = None, serializer: Any = None) -> Any:
        return message.key

    def loads_value(self, app: Any, message: Any, *, loads: Any = None, serializer: Any = None) -> Any:
        return message.value


def hold_back(events: Sequence[Any]) -> None:
    """Make sure the offsets of ``events`` are never committed by this consumer.

    Faust commits, per partition, up to the first offset not acknowledged; a message already marked
    acknowledged is never acknowledged again, so marking these here (without telling the consumer) turns
    take_events' later acks into no-ops and leaves a gap that no commit passes.
    """
    for event in events:
        event.message.acked = True


class EventClock:
    """The worker's "now" for the periodic silence check: while the worker works through a backlog, the
    receipt time (record timestamp) of what it is processing, never later than the wall clock; once it is
    idle (no batch for ``idle_s``), the wall clock. A silence is then judged as it would have been live,
    whatever the consumer lag (points are judged as of their own receipt: ``Processor.process``)."""

    def __init__(self, idle_s: float = 2 * FLUSH_S) -> None:
        self.idle_s = idle_s
        self.received = 0
        self.at = -float("inf")

    def advance(self, received_ms: int) -> None:
        self.received = received_ms
        self.at = time.monotonic()

    def now(self) -> int:
        wall = wall_ms()
        if time.monotonic() - self.at > self.idle_s:
            return wall
        return min(wall, self.received)
