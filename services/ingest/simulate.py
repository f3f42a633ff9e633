"""``barometre simulate``: feed Kafka with the simulator, as `barometre run` does by default.

Registers the simulated accounts (so the api can name them), back-fills one observation a day for the
``days_back`` days before today, then observes every account each ``step`` on the wall clock, for ever (or
until ``until``). Events go straight to the snapshots topic through the ingest publisher: they are built by
the contract's own serialiser, so they need no second validation.

The back-fill comes in two parts (docs/simulator.md, "barometre simulate"), so that a fresh stack shows
complete figures within a couple of minutes rather than after the whole history is scored:

1. first the days every figure of the dashboard reads (:func:`back_fill_schedule`): yesterday, a week
   and 30 days back (the rankings' 1-day, 7-day and 30-day windows, the score's 30-day growth), the same
   day of each earlier month (the presence chart's monthly points) and the oldest day (the 90-day
   window); with them, of every other day, the accounts found deleted or suspended (a deleted account
   is reported for a week and then no more: its last point, which makes it absent, may fall between
   those days); then the current step, live;
2. then the other days, newest first, in the time between live steps, and only while the scoring worker
   has fewer than ``fill_max_behind`` snapshots left to score (its consumer group's lag,
   services/common/lag.py): the history fills in behind the figures without ever making them
   provisional (``GET /v1/status``). Those days are more than two days older than every account's
   latest point, so the alert detectors take them as history (docs/ALERTS.md, "Late data and history").
"""

from __future__ import annotations

import calendar
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from kafka.admin import KafkaAdminClient

from services.common import registry
from services.common.clickhouse import make_client
from services.common.kafka import admin_client, ensure_topics
from services.common.lag import read_lag
from services.common.names import AccountOrigin, Platform
from services.common.reference import AccountRecord, load_entities
from services.common.settings import Settings
from services.ingest.publisher import Publisher
from services.ingest.sources.simulator import Batch, Simulator, SimulatorParams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulateOptions:
    """What `barometre simulate` is asked to do."""

    seed: int = 0
    scale: float = 1.0
    days_back: int = 90
    step: timedelta = timedelta(minutes=15)
    until: datetime | None = None
    register: bool = True
    # The rest of the back-fill waits while the scoring worker has this many snapshots or more to score
    # (None: half of settings.scoring_provisional_events, so the figures never turn provisional; 0: no wait).
    fill_max_behind: int | None = None


def _midnight(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def _publish(publisher: Publisher, batch: Batch) -> int:
    count = 0
    for chunk in batch.iter_records():
        publisher.publish(chunk)
        count += len(chunk)
    return count


def register_accounts(settings: Settings, sim: Simulator) -> int:
    """Register the simulator's accounts with origin ``simulator`` (never polled, marked simulated
    everywhere); return how many."""
    records = [
        AccountRecord(a.entity_id, Platform(a.platform), a.account_id, a.handle, None) for a in sim.accounts()
    ]
    client = make_client(settings)
    try:
        registry.write_accounts(
            client,
            settings.clickhouse_database,
            records,
            registry.user_version(),
            origin=AccountOrigin.SIMULATOR,
        )
    finally:
        client.close()
    return len(records)


def _months_before(day: datetime, months: int) -> datetime:
    year, month = divmod(day.month - 1 - months, 12)
    return day.replace(
        year=day.year + year,
        month=month + 1,
        day=min(day.day, calendar.monthrange(day.year + year, month + 1)[1]),
    )


def back_fill_schedule(today: datetime, days_back: int) -> tuple[list[int], list[int]]:
    """(first, rest): the days back (1 = yesterday) published before the live feed, newest first, and
    the others, newest first.

    ``first`` holds what the dashboard's figures read as of today: 1, 7 and 30 days back (the live 1-day,
    7-day and 30-day growth compare each account's latest point with its point in force that long
    before), the same day of each earlier month (the presence chart's monthly points: an account's
    presence at an instant is its latest point before it) and ``days_back`` itself (the 90-day window
    at the default). Every day from 1 to ``days_back`` is in exactly one of the two lists."""
    wanted = {1, 7, 30, days_back}
    months = 1
    while (back := (today - _months_before(today, months)).days) <= days_back:
        wanted.add(back)
        months += 1
    first = sorted(d for d in wanted if 1 <= d <= days_back)
    return first, [d for d in range(1, days_back + 1) if d not in wanted]


class _HistoryFill:
    """Publishes the rest of the back-fill in the time between live steps, while the worker keeps up."""

    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
        sim: Simulator,
        today: datetime,
        days: list[int],
        max_behind: int,
        stop: Callable[[], bool],
    ) -> None:
        self.settings, self.publisher, self.sim, self.today = settings, publisher, sim, today
        self.days, self.max_behind, self.stop = list(days), max_behind, stop
        self.total = 0
        self._admin: KafkaAdminClient | None = None
        self.started = time.perf_counter()

    def _behind(self) -> int:
        """Snapshots the scoring worker has left to score; 0 when no worker has committed yet (nobody
        is waiting for the figures) or Kafka cannot say (the back-fill then goes on)."""
        try:
            if self._admin is None:
                self._admin = admin_client(self.settings, "barometre-simulator-lag", 5.0)
            lag = read_lag(self._admin, self.settings)
        except Exception as exc:  # a broker restarting: do not stall the simulator on it
            log.warning("cannot read the scoring lag (%s); back-filling on", exc)
            self.close()
            return 0
        return lag.behind if lag.group_known else 0

    def _wait_for_room(self) -> bool:
        if self.max_behind <= 0:
            return True
        while self._behind() >= self.max_behind:
            if self.stop():
                return False
            time.sleep(0.5)
        return True

    def fill(self, seconds: float | None = None) -> None:
        """Publish whole days until ``seconds`` have passed (None: until done), then sleep the rest."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while self.days and (deadline is None or time.monotonic() < deadline) and not self.stop():
            back = self.days.pop(0)
            for chunk in self.sim.observe(self.today - timedelta(days=back)).iter_records():
                if not self._wait_for_room():
                    return
                self.publisher.publish(chunk)
                self.total += len(chunk)
            if not self.days:
                log.info(
                    "back-fill complete: %d more events in %.0fs",
                    self.total,
                    time.perf_counter() - self.started,
                )
        if deadline is not None and (left := deadline - time.monotonic()) > 0:
            time.sleep(left)

    def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            admin.close()


def run_simulator(
    settings: Settings,
    options: SimulateOptions,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Back-fill then follow the wall clock; return the number of events published."""
    today = _midnight(now())
    origin = today - timedelta(days=options.days_back)
    params = replace(SimulatorParams(), scale=options.scale)
    sim = Simulator(load_entities(), params=params, seed=options.seed, origin=origin)
    ensure_topics(settings)
    if options.register:
        log.info("registered %d simulated accounts", register_accounts(settings, sim))
    publisher = Publisher(settings, client_id="barometre-simulator")
    first, rest = back_fill_schedule(today, options.days_back)
    max_behind = (
        settings.scoring_provisional_events // 2
        if options.fill_max_behind is None
        else options.fill_max_behind
    )
    history = _HistoryFill(settings, publisher, sim, today, rest, max_behind, stop)
    total = 0
    try:
        started = time.perf_counter()
        # Newest day first: figures are order-independent (docs/SCORING.md), and a point older than
        # the account's latest by more than two days is history for the alert detectors.
        for back in first:
            total += _publish(publisher, sim.observe(today - timedelta(days=back)))
            if stop():
                return total
        # And, of the other days, the accounts found deleted or suspended (a few dozen a day), oldest day
        # first: a deleted account is reported for a week and then no more, so its last point, which
        # makes it absent, may fall between the days above.
        for back in sorted(rest, reverse=True):
            total += _publish(publisher, sim.observe(today - timedelta(days=back)).gone())
            if stop():
                return total
        log.info(
            "back-filled the %d days the figures read (%s back) and the gone accounts of the others: "
            "%d events in %.0fs; %d more days follow",
            len(first),
            ",".join(map(str, first)),
            total,
            time.perf_counter() - started,
            len(rest),
        )
        # Then from the current step on, on the wall clock: not_after holds every batch until its time
        # comes (ingest refuses the future); the rest of the back-fill goes in the waits between steps.
        step_s = options.step.total_seconds()
        current = today + timedelta(seconds=((now() - today).total_seconds() // step_s) * step_s)
        live = sim.live(
            3600.0, options.step, start=current, end=options.until, not_after=now, sleep=history.fill
        )
        for batch in live:
            n = _publish(publisher, batch)
            total += n
            log.info("simulated %s: %d snapshots", batch.t.isoformat(), n)
            if stop():
                break
        else:
            history.fill()  # ``until`` came first: the history still goes in whole
    finally:
        total += history.total
        history.close()
        publisher.close()
    return total
