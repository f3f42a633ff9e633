"""The scoring worker's state and behaviour, without Faust: what its agents, timers and pages call.

``services.scoring.app`` declares the Faust app (topics, tables, two agents, timers, pages) and hands
each of them to a method of one :class:`ScoringRuntime`, which holds everything they share: the
ClickHouse sink and the alert stores, the processor, the batch pipeline (``services.scoring.pipeline``),
the alert stage (``services.scoring.alerts.stage``), the worker's :class:`Health`, and the
:class:`SilenceWatch` (the event clock, the accounts fed since the last silence check). What the runtime
needs of Faust is a :class:`Place` (is the worker ready, which keys are its own, flush the producer, the
consumer's lag) and topics that ``send`` (``services.scoring.sending``): tests give it plain objects
(``tests/unit/scoring/test_runtime.py``).

Around every batch, of either agent, a :class:`BatchGuard` keeps the commit order: a batch that fails on
a bug of ours is retried in place (its offsets stay uncommitted; ``/readyz`` says so), and a batch given
up (cancelled by a rebalance or a shutdown, or stopped while ClickHouse fails) is held back
(:func:`hold_back`): its offsets never reach a commit, and it is consumed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import Counter, Gauge

from services.common.clickhouse import make_client
from services.common.events import AccountSnapshot
from services.common.retry import Health, Retry, Retrying
from services.common.settings import Settings
from services.scoring.alerts.codec import candidate_key, encode_candidate
from services.scoring.alerts.noise import Candidate, NoiseParams
from services.scoring.alerts.stage import AlertStage
from services.scoring.alerts.store import AlertStore, StoreStopped
from services.scoring.changelog import store_states
from services.scoring.dead_letters import Rejection, dead_letter_bytes, isolate_failures
from services.scoring.pipeline import Batch, Record, snapshot_steps
from services.scoring.processor import BatchOutput, Processor, detector_params, silent_accounts, wall_ms
from services.scoring.sending import Sendable, send_acked
from services.scoring.sink import ClickHouseSink, SinkStopped, WriteRejected

log = logging.getLogger(__name__)

FLUSH_S = 1.0  # offsets are committed, and candidates taken, this often at most
# Besides the timer, silent accounts are looked for each time the clock (the receipt time of the
# snapshots processed) has moved this much: a day of backlog is a day of checks, whatever the lag.
SILENCE_CHECK_EVENT_MS = 24 * 3600 * 1000

EVENTS = Counter("barometre_scoring_events_total", "Snapshot events consumed, by outcome.", ["outcome"])
LAG = Gauge(
    "barometre_scoring_consumer_lag", "Records not yet consumed, by partition.", ["topic", "partition"]
)
LAST_BATCH = Gauge("barometre_scoring_last_batch_timestamp_seconds", "When the last batch was written.")
DETECTIONS = Counter(
    "barometre_alert_detections_total", "Detections sent to noise control, by alert type.", ["type"]
)


class Place(Protocol):
    """What the runtime asks of the Faust app it runs in (``services.scoring.app.FaustPlace``)."""

    def ready(self) -> bool:
        """Neither rebalancing nor recovering its tables: the tables' keys are settled."""
        ...

    def local_keys(self, table: Any, topic: Any) -> list[bytes]:
        """The keys of ``table`` on the partitions of ``topic`` this worker is active for."""
        ...

    async def flush(self) -> None:
        """Wait until the producer sent everything queued (table writes included)."""
        ...

    async def lags(self, topic: Any) -> list[tuple[str, int, int]]:
        """(topic, partition, records not yet consumed) for each assigned partition of ``topic``."""
        ...


@dataclass(frozen=True)
class Topics:
    """The worker's topics: it consumes ``snapshots`` (and ``candidates``) and sends to the others."""

    snapshots: Any
    dead_letters: Sendable
    candidates: Sendable
    alerts: Sendable
    incidents: Sendable


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


def hold_back(events: Sequence[Any]) -> None:
    """Make sure the offsets of ``events`` are never committed by this consumer.

    Faust commits, per partition, up to the first offset not acknowledged; a message already marked
    acknowledged is never acknowledged again, so marking these here (without telling the consumer) turns
    take_events' later acks into no-ops and leaves a gap that no commit passes.
    """
    for event in events:
        event.message.acked = True


class BatchGuard:
    """Runs each batch an agent took, so that its offsets are committed only once it went through."""

    def __init__(self, health: Health) -> None:
        self.retry = Retry(
            "Handling a batch",
            health,
            Retrying.BATCHES,
            "a batch keeps failing, retrying",
            transient=lambda exc: (
                isinstance(exc, Exception) and not isinstance(exc, SinkStopped | StoreStopped)
            ),
            traceback=True,
        )

    async def handle(self, events: Sequence[Any], batch: Callable[[Sequence[Any]], Awaitable[None]]) -> None:
        try:
            try:
                # Not the events (those are dead-lettered) nor a dependency (waited out inside): a bug
                # of ours. Retrying the batch is safe (every write is idempotent) and keeps its offsets
                # uncommitted; the worker says it is not ready until it goes through.
                await self.retry.acall(lambda: batch(events))
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


Held = list[tuple[bytes, bytes]]


class SilenceWatch:
    """Looking for silent accounts among this worker's states: at each tick of the timer, and, while the
    worker catches up on a backlog, each time its :class:`EventClock` moved ``every_ms``.

    ``keys`` gives the worker's own account keys, ``get`` an account's state; ``find(held, now)`` finds
    the silent ones among (key, state) pairs (in a thread) and ``send`` sends them to the alert stage.
    Nothing is looked for while the worker is not ``ready``; one check at a time.
    """

    def __init__(
        self,
        *,
        keys: Callable[[], list[bytes]],
        get: Callable[[bytes], bytes | None],
        find: Callable[[Held, int], list[Candidate]],
        send: Callable[[Sequence[Candidate]], Awaitable[None]],
        ready: Callable[[], bool],
        clock: EventClock | None = None,
        every_ms: int = SILENCE_CHECK_EVENT_MS,
    ) -> None:
        self.keys, self.get, self.find, self.send, self.ready = keys, get, find, send, ready
        self.clock = clock or EventClock()
        self.every_ms = every_ms
        self.checked = 0  # the clock (receipt time) at the last check triggered by the batches
        self.background: set[asyncio.Future[None]] = set()  # the checks batches started, until they end
        self.fed: set[bytes] = set()  # accounts with a new state since the last check
        self.lock = asyncio.Lock()  # one check at a time; a check asked for meanwhile is skipped

    def classified(self, batch: Batch) -> None:
        """A pipeline tap: the batch's receipt times move the clock."""
        if not batch.received:
            return
        self.clock.advance(max(batch.received.values()))
        if self.clock.received - self.checked >= self.every_ms and not self.lock.locked():
            # Catching up on a backlog, the clock runs faster than the timer: check as it goes.
            self.checked = self.clock.received
            task = asyncio.ensure_future(self.check())
            self.background.add(task)
            task.add_done_callback(self.background.discard)

    def processed(self, batch: Batch) -> None:
        """A pipeline tap: the accounts with a new state are not silent."""
        if batch.out is not None:
            self.fed.update(batch.out.states)

    async def check(self) -> None:
        """Look for silent accounts now (unless not ready, or a check is under way)."""
        if not self.ready() or self.lock.locked():
            return
        async with self.lock:
            try:
                keys = self.keys()
                # An account fed since the last check is not silent, whatever its points say: during an
                # import its history arrives in several batches, and a part of it can end 45 days ago.
                recent = set(self.fed)
                self.fed.clear()
                held = [(key, value) for key in keys if key not in recent and (value := self.get(key))]
                found = await asyncio.to_thread(self.find, held, self.clock.now())
                if found:
                    await self.send(found)
            except Exception:  # a bug of ours (an unreadable state?): the next check tries again
                log.exception("Looking for silent accounts failed; retrying at the next check")


class ScoringRuntime:
    """The scoring worker without Faust (module docstring): ``states`` is the account-state table
    (``.data``, ``.get``, ``.keys``, and a changelog: ``services.scoring.changelog``), ``noise_states``
    the alert stage's table, ``group`` the consumer group (named in dead letters)."""

    def __init__(
        self,
        settings: Settings,
        *,
        group: str,
        states: Any,
        noise_states: Any,
        topics: Topics,
        place: Place,
    ) -> None:
        self.group, self.states, self.noise_states = group, states, noise_states
        self.topics, self.place = topics, place
        # What keeps the worker from being ready (/readyz): what is being retried. Empty when all is well.
        self.health = health = Health()
        self.sink = ClickHouseSink(lambda: make_client(settings), settings.clickhouse_database, health=health)
        self.detector = detector = detector_params(settings)
        self.processor = Processor(settings, fetch_history=self.sink.fetch_history, alerts=detector)
        # Two clients without sessions: the stage writes while timers read, possibly at the same time.
        self.writer = AlertStore(
            lambda: make_client(settings, autogenerate_session_id=False),
            settings.clickhouse_database,
            health=health,
        )
        self.reader = AlertStore(
            lambda: make_client(settings, autogenerate_session_id=False), settings.clickhouse_database
        )
        self.reads = self.sink.retry(
            "Scoring a batch on a dependency (the worker waits)",
            Retrying.CLICKHOUSE_READS,
            "reads failing, retrying",
        )
        self.silence = SilenceWatch(
            keys=lambda: place.local_keys(states, topics.snapshots),
            get=states.get,
            find=lambda held, now: silent_accounts(held, now, detector),
            send=self.send_candidates,
            ready=place.ready,
        )
        self.pipeline = snapshot_steps(
            score=self._score,
            write=self._write,
            send_letters=self._send_letters,
            envelope=self._letter,
            send_candidates=self.send_candidates,
            store_states=self._store,
            classified=self.silence.classified,
            processed=self.silence.processed,
        )
        # The alert stage (services.scoring.alerts.stage): one NoiseControl per platform.
        self.stage = AlertStage(
            table=noise_states,
            params=NoiseParams(group_wait_ms=round(settings.alert_group_wait_s * 1000)),
            writer=self.writer,
            reader=self.reader,
            send_alerts=lambda records: send_acked(topics.alerts, records, "Alerts", health),
            send_incidents=lambda records: send_acked(topics.incidents, records, "Incidents", health),
            watched_since=self.processor.watched_since,
            staleness_days=settings.staleness_days,
            health=health,
        )
        self.guard = BatchGuard(health)

    # --- The agents' batches

    async def handle_snapshots(self, events: Sequence[Any]) -> None:
        """A batch of the snapshots agent (Faust events), through the pipeline."""
        await self.guard.handle(events, self._snapshot_batch)

    async def handle_candidates(self, events: Sequence[Any]) -> None:
        """A batch of the alert agent (Faust events of the candidates topic), through the alert stage."""
        await self.guard.handle(events, self._candidate_batch)

    async def _snapshot_batch(self, events: Sequence[Any]) -> None:
        batch = await self.pipeline.run([event.message for event in events])
        LAST_BATCH.set(time.time())
        EVENTS.labels("processed").inc(batch.processed)

    async def _candidate_batch(self, events: Sequence[Any]) -> None:
        await self.stage.handle(
            (f"{e.message.topic}[{e.message.partition}]@{e.message.offset}", e.message.value) for e in events
        )

    # --- The pipeline's functions (services.scoring.pipeline.snapshot_steps)

    def _letter(self, msg: Record, rejection: Rejection) -> tuple[bytes | None, bytes]:
        value = dead_letter_bytes(
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            key=msg.key,
            value=msg.value,
            timestamp_s=msg.timestamp,
            rejection=rejection,
            consumer_group=self.group,
        )
        return msg.key, value

    async def send_candidates(self, candidates: Sequence[Candidate]) -> None:
        """Send detections to the alert stage, acknowledged (the caller commits nothing before)."""
        await send_acked(
            self.topics.candidates,
            [(candidate_key(c), encode_candidate(c)) for c in candidates],
            "Alert candidates",
            self.health,
        )
        for c in candidates:
            DETECTIONS.labels(c.type.value).inc()

    async def _score(
        self, good: Sequence[AccountSnapshot], received: Mapping[str, int]
    ) -> tuple[BatchOutput | None, dict[str, Exception]]:
        """Score ``good``, isolating the accounts the processor fails on (isolate_failures);
        a ClickHouse or network error while scoring (reading old history) is waited out instead."""
        # A dependency's failure (isolate_failures raises only those) is waited out; SinkStopped when
        # shutting down meanwhile.
        return await self.reads.acall(
            lambda: asyncio.to_thread(
                isolate_failures,
                good,
                lambda batch: self.processor.process(batch, self.states.data, received),
            )
        )

    async def _send_letters(self, records: list[tuple[bytes | None, bytes]]) -> None:
        await send_acked(self.topics.dead_letters, records, "Dead letters", self.health)
        EVENTS.labels("dead_letter").inc(len(records))

    async def _write(
        self, out: BatchOutput, offsets: Mapping[int, tuple[int, int]]
    ) -> dict[str, WriteRejected]:
        # Written before the next batch is scored. Writing batch N while N+1 was scored (states of
        # unwritten batches in an overlay) was tried: no measurable gain on this machine, and a full test
        # run once lost a row across a shutdown during a ClickHouse outage.
        return await asyncio.to_thread(self.sink.write, out.tables, offsets, out.after)

    async def _store(self, changes: dict[int, list[tuple[bytes, bytes]]]) -> None:
        await store_states(self.states, changes, health=self.health)

    # --- The timers' and tasks' bodies

    def stop(self) -> None:
        """Give up retrying ClickHouse (the worker stops): Faust's shutdown first waits until every event
        taken is acknowledged, and a batch whose write retries while ClickHouse is down would keep it
        waiting forever (the alert stage's too)."""
        self.sink.stop()
        self.writer.stop()

    async def refresh_stale_rollups(self) -> None:
        """Recompute the rollups of entities whose accounts went stale (one round)."""
        # Batches recompute the rollups of the entities they touch; an account going stale (its latest
        # point leaving the staleness window) touches nothing, so its entity's sums are redone here.
        try:
            pairs = await asyncio.to_thread(
                self.sink.refresh, self.processor.stale_rollups(), self.processor.rollups
            )
            if pairs:
                log.info("Recomputed %d entity rollups that had gone stale", pairs)
        except Exception as exc:  # ClickHouse away: the next round tries again
            log.warning("Recomputing stale entity rollups failed (retried later): %s", exc)

    async def release_held(self) -> None:
        """Release the held alert detections of this worker's platforms that are due."""
        if not self.place.ready():
            return
        try:
            platforms = [
                key.decode() for key in self.place.local_keys(self.noise_states, self.topics.candidates)
            ]
            if await self.stage.release(platforms):
                await self.place.flush()  # the new states on their changelog before going on
        except StoreStopped as exc:  # shutting down while ClickHouse fails: they stay held, stored
            log.warning("Stopping with held alert detections undelivered: %s", exc)
        except Exception:
            # A bug of ours, not a dependency (those are waited out): the held detections stay in the
            # stored state, and the next tick tries again; a crashed timer would stop the worker.
            log.exception("Releasing held alert detections failed; retrying at the next tick")

    async def reload_silences(self) -> None:
        await self.stage.reload(self.stage.read_silences, "silences")

    async def reload_active_accounts(self) -> None:
        await self.stage.reload(self.stage.read_active_accounts, "active accounts")

    async def check_silent_accounts(self) -> None:
        await self.silence.check()

    async def report_lag(self) -> None:
        """Set the lag gauge of each assigned partition of the snapshots topic."""
        held = set()
        for topic, partition, lag in await self.place.lags(self.topics.snapshots):
            LAG.labels(topic, str(partition)).set(lag)
            held.add((topic, str(partition)))
        forget_lost_partitions(LAG, held)


def forget_lost_partitions(gauge: Gauge, mine: set[tuple[str, str]]) -> None:
    """Drop ``gauge``'s (topic, partition) series this worker no longer holds: after a rebalance the
    lag of a revoked partition is reported by its new owner, and a stale copy here would count twice."""
    for metric in gauge.collect():
        for sample in metric.samples:
            key = (sample.labels.get("topic", ""), sample.labels.get("partition", ""))
            if key not in mine:
                with contextlib.suppress(KeyError):  # gone since collect() listed it
                    gauge.remove(*key)
