"""The alert stage of the scoring worker: one :class:`NoiseControl` per platform (docs/ALERTS.md).

Detections arrive on the internal candidates topic, keyed by platform. For each platform, the stage takes
its control (the stored state, or the cached object when it is still that state), lets it decide
(:meth:`NoiseControl.process`, or :meth:`NoiseControl.flush` for held detections), and then, in this order:
writes the step's rows to ClickHouse (``alerts``, ``incidents``), publishes its alerts and incidents,
acknowledged by Kafka, and only then stores the control's new state. The caller commits the candidates'
offsets after :meth:`AlertStage.handle` returned: a crash decides again, never loses; an alert published
twice carries the same ``alert_id``.

A step that fails half-way starts again from the stored state, never from a half-changed object: a control
is out of the cache while it is being changed. The stage never decides without the silences and the
platforms' sizes: it reads them before its first step, and waits (retrying) while ClickHouse does not
answer. The worker's timers call it from ``services.scoring.runtime``; Faust's part (agent, timers, the table)
is in ``services.scoring.app``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any

from prometheus_client import Counter

from services.common.alert_tables import ALERT_COLUMNS, INCIDENT_COLUMNS
from services.common.names import Table
from services.common.retry import Health, Retrying
from services.scoring.alerts.codec import CandidateFormatError, decode_candidate, dump_control, load_control
from services.scoring.alerts.noise import Candidate, NoiseControl, NoiseParams, Silence, Step, Verdict
from services.scoring.alerts.records import alert_records, alert_rows, incident_records, incident_rows, opened
from services.scoring.alerts.store import AlertStore
from services.scoring.maths.points import from_ms
from services.scoring.processor import wall_ms

log = logging.getLogger(__name__)

OUTCOMES = Counter(
    "barometre_alert_outcomes_total",
    "Noise control's final verdicts on detections (emit, duplicate, ongoing, cooldown, silenced, "
    "inhibited), by verdict.",
    ["verdict"],
)
PUBLISHED = Counter(
    "barometre_alerts_published_total",
    "Alerts published on alerts.v1, by type and severity.",
    ["type", "severity"],
)
INCIDENTS_OPENED = Counter(
    "barometre_alert_incidents_opened_total", "Platform-wide incidents opened, by alert type.", ["type"]
)
UNREADABLE = Counter(
    "barometre_alert_candidates_unreadable_total", "Records of the candidates topic skipped as unreadable."
)

Records = Sequence[tuple[bytes | None, bytes]]


class AlertStage:
    """The platforms' noise controls, stored in ``table`` (platform bytes -> pickled control).

    ``writer`` writes the steps' rows and ``reader`` reads silences and active accounts (two clients:
    the stage writes while timers read); ``send_alerts`` and ``send_incidents`` publish records and
    return once Kafka acknowledged them; ``watched_since`` hears, per platform, since when it is watched
    (the processor's ``account_new`` detector needs it after a restart).
    """

    def __init__(
        self,
        *,
        table: MutableMapping[bytes, bytes],
        params: NoiseParams,
        writer: AlertStore,
        reader: AlertStore,
        send_alerts: Callable[[Records], Awaitable[None]],
        send_incidents: Callable[[Records], Awaitable[None]],
        watched_since: Callable[[dict[str, int]], None],
        staleness_days: int,
        health: Health,
    ) -> None:
        self.table, self.params = table, params
        self.writer, self.reader = writer, reader
        self.send_alerts, self.send_incidents = send_alerts, send_incidents
        self.watched_since, self.staleness_days = watched_since, staleness_days
        self.health = health
        self.lock = asyncio.Lock()  # the agent and the timers take turns on the controls
        self.cache: dict[str, tuple[bytes, NoiseControl]] = {}  # platform -> (its stored bytes, control)
        self.silences: list[Silence] | None = None  # None until read once
        self.active: dict[str, int] = {}

    # --- Steps

    async def handle(self, values: Iterable[tuple[str, bytes]]) -> None:
        """Decide on the candidates of ``values`` (where each came from, for the log; its bytes), then
        deliver and store each platform's step. Unreadable records are skipped and counted: only this
        worker writes the topic, so one is a bug (or a foreign writer), and cannot become an alert."""
        found: dict[str, list[Candidate]] = {}
        for where, value in values:
            try:
                candidate = decode_candidate(value)
            except CandidateFormatError as exc:
                log.error("Skipping %s: %s", where, exc)
                UNREADABLE.inc()
                continue
            found.setdefault(candidate.platform, []).append(candidate)
        async with self.lock:
            if self.silences is None:  # never decide without the silences and the platforms' sizes
                await self._read_until_done(self.read_silences, "silences")
                await self._read_until_done(self.read_active_accounts, "active accounts")
            now = wall_ms()
            for platform, candidates in found.items():
                control, _ = self._take(platform)
                step = control.process(now, candidates)
                await self._deliver(step, now)
                self._save(platform, control)

    async def release(self, platforms: Iterable[str]) -> bool:
        """Release the held detections of ``platforms`` that are due (``flush``); return whether any
        control changed (the caller then flushes the producer, so that the new states are on their
        changelog before it goes on). Needs the silences read once: before that, nothing is released."""
        if self.silences is None:
            return False
        changed = False
        async with self.lock:
            now = wall_ms()
            for platform in platforms:
                control, stored = self._take(platform)
                held = control.pending
                step = control.flush(now)
                if step.outcomes or step.incidents or control.pending != held:
                    await self._deliver(step, now)
                    self._save(platform, control)
                    changed = True
                else:
                    self._keep(platform, stored, control)
        return changed

    # --- Reading what the controls need

    async def read_silences(self) -> None:
        self.silences = await asyncio.to_thread(self.reader.silences, wall_ms())

    async def read_active_accounts(self) -> None:
        self.active.update(await asyncio.to_thread(self.reader.active_accounts, self.staleness_days))
        # Since when each platform is watched, for account_new (the processor learns it from the states
        # it reads too; this covers a restart, when the first new account may come before any other).
        self.watched_since(await asyncio.to_thread(self.reader.watched_since))

    async def _read_until_done(self, read: Callable[[], Awaitable[None]], what: str) -> None:
        # ClickHouse away: the stage waits rather than decide blind (StoreStopped on a shutdown).
        await self.writer.retry(
            f"Reading {what} (the alert stage waits)",
            Retrying.ALERT_READS,
            f"reading {what} failing, retrying",
            on_failure=lambda exc: self.reader.drop_client(),
        ).acall(read)

    async def reload(self, read: Callable[[], Awaitable[None]], what: str) -> None:
        """``read`` again (a timer's tick): on failure the last known values are kept, and the next tick
        tries again."""
        try:
            await read()
            self.health.recovered(Retrying.ALERT_READS)
        except Exception as exc:
            if Retrying.ALERT_READS not in self.health:
                log.warning("Reading %s failed (the last known are kept): %s", what, exc)
            self.health.failing(Retrying.ALERT_READS, f"reading {what} failing, retrying")
            self.reader.drop_client()

    # --- The controls

    def _take(self, platform: str) -> tuple[NoiseControl, bytes | None]:
        """The control of ``platform``, out of the cache until :meth:`_keep` or :meth:`_save`."""
        stored = self.table.get(platform.encode())
        cached = self.cache.pop(platform, None)
        if cached is not None and stored is not None and (cached[0] is stored or cached[0] == stored):
            control = cached[1]
        elif stored:
            try:
                control = load_control(stored, self.params)
            except ValueError:
                log.exception("The noise-control state of %s is unreadable; starting afresh", platform)
                control = NoiseControl(self.params)
        else:
            control = NoiseControl(self.params)
        control.set_silences(self.silences or ())
        control.set_active_accounts(self.active)
        return control, stored

    def _keep(self, platform: str, stored: bytes | None, control: NoiseControl) -> None:
        if stored is not None:
            self.cache[platform] = (stored, control)

    def _save(self, platform: str, control: NoiseControl) -> None:
        data = dump_control(control)
        self.table[platform.encode()] = data
        self.cache[platform] = (data, control)

    async def _deliver(self, step: Step, now: int) -> None:
        """Rows to ClickHouse, then records to Kafka, acknowledged: only then may the state move on."""
        rows = alert_rows(step, now, time.time_ns())
        incidents = incident_rows(step)
        if rows or incidents:
            tables: dict[Table, Any] = {
                Table.ALERTS: (ALERT_COLUMNS, rows),
                Table.INCIDENTS: (INCIDENT_COLUMNS, incidents),
            }
            await asyncio.to_thread(self.writer.write, tables)
        published = alert_records(step, from_ms(now))
        if published:
            await self.send_alerts(published)
        if step.incidents:
            await self.send_incidents(incident_records(step))
        for outcome in step.outcomes:
            if outcome.verdict is not Verdict.PENDING:
                OUTCOMES.labels(outcome.verdict.value).inc()
        for candidate in step.alerts:
            PUBLISHED.labels(candidate.type.value, candidate.detection.severity.value).inc()
        for incident in opened(step):
            INCIDENTS_OPENED.labels(incident.type.value).inc()
