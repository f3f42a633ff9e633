"""The Faust wiring of the scoring worker: topics, tables, agents, timers and web pages, and no more.

:func:`create_app` declares them and hands each to a method of one
:class:`~services.scoring.runtime.ScoringRuntime`, which holds what they share and does the work: a batch
of snapshots goes through the pipeline of ``services.scoring.pipeline`` (its named steps own the commit
order), a batch of alert candidates through the alert stage (``services.scoring.alerts.stage``), the
timers' bodies are the runtime's methods, the pages' answers are ``services.scoring.pages``. What the
runtime asks of Faust goes through :class:`FaustPlace`; all of it is tested without Faust.

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

from typing import Any

import faust
from faust import web
from kafka.admin import NewTopic
from kafka.partitioner.default import murmur2

from services.common.kafka import create_topics, faust_credentials, replication_factor
from services.common.names import Topic
from services.common.settings import Settings
from services.scoring import (
    faust_patches,  # noqa: F401  # fixes faust's offset commits, on import
    pages,
)
from services.scoring.runtime import FLUSH_S, EventClock, ScoringRuntime, Topics, hold_back

__all__ = [  # EventClock and hold_back live in services.scoring.runtime; named here as before
    "BATCH",
    "FLUSH_S",
    "MAX_STATE_BYTES",
    "EventClock",
    "FaustPlace",
    "RawRecords",
    "create_app",
    "ensure_changelog_topics",
    "faust_app",
    "hold_back",
]

# Events a batch at most. Each batch has costs of its own (an insert per table, the entity rollup
# statement reading account_latest, the changelog's acks), which the worker waits for. Larger batches
# spread those costs; past this size the gain is small (bench/scoring.py; figures in
# docs/DEVELOPING.md, "Benchmarks").
BATCH = 20_000
# A batch of snapshots goes when it is full or this long after its first event: under load batches are
# full; at a trickle this is most of the time from ingest to rows (freshness).
TAKE_WITHIN_S = 0.25
MAX_STATE_BYTES = 16 * 1024 * 1024  # the largest record the worker produces (a noise-control state)
ROLLUP_REFRESH_S = 3600.0  # entity rollups gone stale without a new event are recomputed this often
RELEASE_S = 1.0  # held detections are released this often (NoiseControl.flush)
SILENCES_S = 5.0  # silences are re-read from ClickHouse this often
ACTIVE_ACCOUNTS_S = 60.0  # active accounts per platform (the incidents' denominator) this often
LAG_S = 10.0  # the consumer lag gauge is updated this often


def create_app(settings: Settings) -> faust.App:
    """The scoring Faust app for ``settings`` (``barometre scoring`` runs its worker)."""
    app = faust_app(settings)
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
    candidates, alerts, incidents = (
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
    place = FaustPlace(app, settings.kafka_partitions)
    topics = Topics(snapshots, dead_letters, candidates, alerts, incidents)
    group = settings.scoring_group()  # the app's id, named in dead letters
    run = ScoringRuntime(
        settings, group=group, states=states, noise_states=noise_states, topics=topics, place=place
    )

    @app.agent(snapshots)
    async def score(stream: Any) -> None:
        async for events in stream.take_events(BATCH, within=TAKE_WITHIN_S):
            await run.handle_snapshots(events)

    @app.agent(candidates)
    async def alert_stage(stream: Any) -> None:
        async for events in stream.take_events(BATCH, within=FLUSH_S):
            await run.handle_candidates(events)

    @app.task  # type: ignore[untyped-decorator]  # faust's task decorator is untyped
    async def stop_retrying_on_shutdown() -> None:
        await app.wait_until_stopped()
        run.stop()

    @app.task  # type: ignore[untyped-decorator]  # faust's task decorator is untyped
    async def refresh_stale_rollups() -> None:
        while not app.should_stop:
            await run.refresh_stale_rollups()
            await app.sleep(ROLLUP_REFRESH_S)

    # Mode's timer decorator is untyped; each timer keeps its name (Faust's logs name timers).
    @app.timer(interval=RELEASE_S)  # type: ignore[untyped-decorator]
    async def release_held() -> None:
        await run.release_held()

    @app.timer(interval=SILENCES_S)  # type: ignore[untyped-decorator]
    async def reload_silences() -> None:
        await run.reload_silences()

    @app.timer(interval=ACTIVE_ACCOUNTS_S)  # type: ignore[untyped-decorator]
    async def reload_active_accounts() -> None:
        await run.reload_active_accounts()

    @app.timer(interval=settings.alert_silence_check_s)  # type: ignore[untyped-decorator]
    async def check_silent_accounts() -> None:
        await run.check_silent_accounts()

    @app.timer(interval=LAG_S)  # type: ignore[untyped-decorator]
    async def report_lag() -> None:
        await run.report_lag()

    @app.page("/healthz")
    async def healthz(self: web.View, request: web.Request) -> web.Response:
        return self.json(pages.healthz())

    @app.page("/readyz")
    async def readyz(self: web.View, request: web.Request) -> web.Response:
        body, status = pages.readiness(run.health, recovering=place.recovering())
        return self.json(body, status=status)

    @app.page("/metrics")
    async def metrics(self: web.View, request: web.Request) -> web.Response:
        body, headers = pages.metrics()
        return self.bytes(body, headers=headers)

    return app


def faust_app(settings: Settings) -> faust.App:
    """The Faust app of the scoring worker, configured, with nothing declared yet."""
    group = settings.scoring_group()
    datadir = settings.data_dir / (
        "scoring-" + settings.scoring_instance if settings.scoring_instance else "scoring"
    )
    datadir.mkdir(parents=True, exist_ok=True)
    return faust.App(
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


class FaustPlace:
    """What the runtime asks of the Faust ``app`` (``services.scoring.runtime.Place``)."""

    def __init__(self, app: faust.App, partitions: int) -> None:
        self.app, self.partitions = app, partitions
        self.recovered = app.tables.recovery.completed  # type: ignore[attr-defined]  # set after the first recovery

    def ready(self) -> bool:
        return not self.app.rebalancing and not getattr(self.app, "in_recovery", False)

    def recovering(self) -> bool:
        """Until the tables are recovered from their changelogs, nothing is consumed."""
        return bool(self.app.in_recovery) or not self.recovered.is_set()

    def local_keys(self, table: Any, topic: Any) -> list[bytes]:
        """The keys of ``table`` on the partitions of ``topic`` this worker is active for (not the
        standby copies it may hold of others'), as the producer's murmur2 partitioner places them."""
        name = topic.get_topic_name()
        count = self.app.consumer.topic_partitions(name) or self.partitions
        mine = {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == name}
        return [key for key in list(table.keys()) if (murmur2(key) & 0x7FFFFFFF) % count in mine]

    async def flush(self) -> None:
        await self.app.producer.flush()

    async def lags(self, topic: Any) -> list[tuple[str, int, int]]:
        consumer, name, found = self.app.consumer, topic.get_topic_name(), []
        for tp in consumer.assignment():
            if tp.topic != name:
                continue
            position = await consumer.position(tp)
            highwater = consumer.highwater(tp)
            if position is not None and highwater is not None:
                found.append((tp.topic, tp.partition, max(0, highwater - position)))
        return found


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
