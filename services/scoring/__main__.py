"""`python -m services.scoring`: run the scoring worker (same as `barometre scoring`)."""

from __future__ import annotations

import asyncio
import gc
import logging

from services.common.settings import Settings, get_settings

log = logging.getLogger(__name__)


# Young objects allowed between two collections (CPython's default is 700). A batch of 10,000 snapshots
# holds hundreds of thousands of short-lived objects (rows, points, states) at once: at the default, the
# collector ran through them hundreds of times a batch and promoted them into the older generations.
# At this threshold the worker's CPU an event is close to what it is with no collection at all
# (bench/scoring.py; figures in docs/DEVELOPING.md, "Benchmarks").
GC_YOUNG_THRESHOLD = 500_000


def tune_gc() -> None:
    """Collect less often, and never look again at what start-up made (modules, the app): it lives as
    long as the process. Reference cycles are still collected, only in larger rounds."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def use_uvloop() -> asyncio.AbstractEventLoop:
    """Make uvloop's event loop the current one and return it. Faust hands every record to its stream
    through the loop (futures, callbacks, queue wake-ups); uvloop does that work in C, for less worker
    CPU an event (bench/scoring.py; figures in docs/DEVELOPING.md, "Benchmarks")."""
    import uvloop

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


def with_topic_partitions(settings: Settings, partitions: int | None) -> Settings:
    """``settings`` with the snapshot topic's real partition count. The worker's tables are
    co-partitioned with the topic (a state lives on its account's partition), so a topic created
    before with another count (an older default, another setting) keeps its count: changing it means
    moving the states (``docs/OPERATIONS.md``, "Sizing")."""
    if partitions is None or partitions == settings.kafka_partitions:
        return settings
    log.warning(
        "The snapshot topic has %d partitions, not BAROMETRE_KAFKA_PARTITIONS=%d: the worker uses %d "
        "(the count of a topic is set when it is created)",
        partitions,
        settings.kafka_partitions,
        partitions,
    )
    return settings.model_copy(update={"kafka_partitions": partitions})


def run_worker(settings: Settings) -> None:
    """Run the Faust worker in the foreground until SIGTERM/SIGINT (then it stops cleanly)."""
    from services.scoring.faust_patches import require_tested_versions

    # First: the patches reach into faust's private parts, tested on exact releases only.
    require_tested_versions(settings.scoring_allow_untested_faust)

    from faust import App, Worker

    from services.common.kafka import (
        DurabilityError,
        check_durability,
        ensure_topics,
        replication_factor,
        topic_partitions,
    )
    from services.common.names import Topic
    from services.common.retry import Retry
    from services.scoring.app import create_app, ensure_changelog_topics

    loop = use_uvloop()  # before the app: it takes the current loop
    # Faust subscribes to the topics that exist when it starts and ignores missing ones for good, and its
    # producer knows only the topics that exist then: create them all first, the tables' changelogs
    # included (waiting for Kafka if it is not up yet). The replication factor (min(3, brokers) unless
    # set) is resolved once, for our topics and Faust's own; a snapshots topic with one replica on a
    # cluster of several brokers stops the worker here (services.common.kafka.check_durability).
    app: App | None = None

    def prepare() -> App:
        nonlocal app, settings
        if app is None:
            settings = settings.model_copy(update={"kafka_replication": replication_factor(settings)})
            ensure_topics(settings)
            settings = with_topic_partitions(settings, topic_partitions(settings, Topic.ACCOUNT_SNAPSHOTS))
            check_durability(settings)
            app = create_app(settings)
        ensure_changelog_topics(app, settings)
        return app

    try:
        app = Retry(
            "Preparing the Kafka topics",
            first_s=1.0,
            transient=lambda exc: isinstance(exc, Exception) and not isinstance(exc, DurabilityError),
        ).call(prepare)
    except DurabilityError as exc:
        raise SystemExit(f"barometre scoring: refusing to start: {exc}") from None
    tune_gc()
    worker = Worker(
        app,
        loop=loop,
        loglevel=settings.log_level.lower(),
        quiet=True,
        redirect_stdouts=False,
        # In JSON, keep the root handler `barometre scoring` installed (Faust would put colorlog's).
        override_logging=settings.log_format != "json",
    )
    if settings.log_format == "json":
        worker.spinner = None  # Faust's start-up spinner writes terminal control codes between the lines
    # Faust configures logging itself; keep aiokafka's and Faust's chatter to warnings.
    for noisy in ("aiokafka", "faust", "mode", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    log.info(
        "Scoring worker starting: group %s, %d partitions for new topics, store %s, web on %s:%d",
        settings.scoring_group(),
        settings.kafka_partitions,
        settings.scoring_store,
        settings.scoring_host,
        settings.scoring_port,
    )
    worker.execute_from_commandline()


if __name__ == "__main__":
    run_worker(get_settings())
