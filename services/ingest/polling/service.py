"""``barometre poller``: the long-running poller. It reads each registered account when it is due,
within each platform's documented rate budget, and publishes the snapshots to Kafka.

One task per platform takes the most overdue accounts, a chunk at a time (what about a minute of the
budget can read, in whole batches), and polls them with the platform's poller (``Poller.poll``). Every
request a poller sends first waits for its key's :class:`~services.ingest.polling.schedule.WindowPacer`
(a hook on the poller's HTTP client), so however many requests a poller needs for an account (a batch,
a retry, a feed) the platform's budget is never exceeded, and requests are spread over the window.

After each poll: snapshots are published (key = account_id), the accounts rescheduled (their cadence
from their audience, a bounded back-off after a failure), their ``poll_state`` written and failures
appended to ``poll_failures``; renamed and gone accounts update the registry. The registry is read
again every ``poller_registry_refresh_s``, so newly registered accounts are picked up (due at once),
and rejected or gone ones dropped. Simulated accounts are never loaded (``registry.account_rows``).

HTTP: ``/healthz``, ``/readyz`` (503 until Kafka and ClickHouse answer) and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from prometheus_client import Counter, Gauge

from services.common import accounts, web
from services.common.clickhouse import make_client
from services.common.kafka import check_kafka, ensure_topics
from services.common.names import AccountStatus, Platform
from services.common.retry import Retry
from services.common.settings import Settings, get_settings
from services.ingest.poll import load_refs
from services.ingest.polling import state
from services.ingest.polling.schedule import (
    CadencePolicy,
    Entry,
    RateBudget,
    Schedule,
    Stored,
    WindowPacer,
    chunk_size,
)
from services.ingest.publisher import Publisher, PublishError
from services.ingest.sources.pollers.base import AccountRef, Poller, PollResult
from services.ingest.sources.pollers.errors import PollerConfigError
from services.ingest.sources.pollers.runner import POLLER_CLASSES, open_pollers

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

POLLS = Counter(
    "barometre_poller_polls_total", "Polls (one chunk of due accounts) by platform.", ["platform"]
)
ACCOUNTS_POLLED = Counter(
    "barometre_poller_accounts_polled_total",
    "Accounts polled, by platform and outcome (snapshot or failure).",
    ["platform", "outcome"],
)
SNAPSHOTS_PUBLISHED = Counter(
    "barometre_poller_snapshots_published_total", "Snapshots Kafka acknowledged, by platform.", ["platform"]
)
FAILURES = Counter(
    "barometre_poller_failures_total",
    "Accounts that could not be polled, by platform and reason.",
    ["platform", "reason"],
)
REQUESTS = Counter("barometre_poller_requests_total", "HTTP requests sent to the platforms.", ["platform"])
RATE_LIMITED = Counter(
    "barometre_poller_rate_limited_total", "429 answers received from the platforms.", ["platform"]
)
ERRORS = Counter(
    "barometre_poller_errors_total",
    "Troubles of the poller itself, by stage (publish, state, registry).",
    ["stage"],
)
ACCOUNTS = Gauge("barometre_poller_accounts", "Accounts scheduled, by platform.", ["platform"])
ACCOUNTS_DUE = Gauge(
    "barometre_poller_accounts_due", "Accounts due and not being polled, by platform.", ["platform"]
)
LAG = Gauge(
    "barometre_poller_lag_seconds",
    "How far behind schedule a platform is: age of its most overdue waiting account.",
    ["platform"],
)

# A chunk that Kafka did not take is tried again this much later (its accounts did nothing wrong).
PUBLISH_RETRY_S = 30.0
# The account-count gauges pass over every account (300,000): refreshed at most this often, not per poll.
GAUGE_COUNTS_S = 5.0
# Requests per account are measured; a new measurement weighs this much against the past ones.
_RPA_WEIGHT = 0.2


@dataclass(frozen=True)
class PlatformLimits:
    """A platform's batch size and the budget the poller keeps to (per rate-limit key)."""

    platform: Platform
    batch_size: int
    documented: RateBudget
    budget: RateBudget  # the documented one, or the configured override, times poller_budget_share


def limits_for(platform: Platform, settings: Settings) -> PlatformLimits:
    """The limits of ``platform``'s poller: its class attributes, the settings' overrides applied."""
    cls = POLLER_CLASSES[platform]
    batch = cls.batch_size
    if platform is Platform.FACEBOOK:
        batch = min(batch, settings.facebook_batch_size)
    documented = RateBudget(*cls.rate_budget)
    override = settings.poller_rate_budgets.get(platform.value)
    chosen = RateBudget(int(override[0]), float(override[1])) if override else documented
    return PlatformLimits(platform, batch, documented, chosen.share(settings.poller_budget_share))


# Pollers that read the account's posts when poll_activity is on (at least one more request each);
# Facebook asks them inside its pages request.
_ACTIVITY = frozenset({Platform.BLUESKY, Platform.MASTODON, Platform.YOUTUBE})


def requests_per_account(platform: Platform, batch_size: int, settings: Settings) -> float:
    """The estimated requests one account costs per reading on ``platform``: one request per batch, plus
    one where the poller also reads the account's posts (the service then measures the real figure).
    Facebook asks the posts inside its pages request (field expansion): only a page posting over 100
    times in 30 days costs more, so its estimate stays one request per batch."""
    reads_posts = (
        (platform in _ACTIVITY and settings.poll_activity)
        or (platform is Platform.X and settings.x_read_posts)
        or (platform is Platform.THREADS and settings.threads_read_posts)
    )
    extra = 1.0 if reads_posts else 0.0
    return 1 / batch_size + extra


def cadence_policy(settings: Settings) -> CadencePolicy:
    """The cadences and back-off the settings ask for."""
    return CadencePolicy(
        fast_s=settings.poller_cadence_fast_s,
        normal_s=settings.poller_cadence_normal_s,
        slow_s=settings.poller_cadence_slow_s,
        large_followers=settings.poller_large_followers,
        small_followers=settings.poller_small_followers,
        moving_share_per_day=settings.poller_moving_share_per_day,
        backoff_s=settings.poller_failure_backoff_s,
        backoff_max_s=settings.poller_failure_backoff_max_s,
    )


def _epoch(when: datetime) -> float:
    return when.timestamp()


def _instant(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class PollerService:
    """The scheduler, the pollers and the publisher of one poller process."""

    def __init__(
        self,
        settings: Settings,
        *,
        publisher: Publisher | None = None,
        clock: Clock | None = None,
        poller_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self._db = settings.clickhouse_database
        self._publisher = publisher or Publisher(settings, client_id="barometre-poller")
        self._clock = clock or (lambda: datetime.now(UTC))
        self._poller_options = dict(poller_options or {})
        self.schedule = Schedule(cadence_policy(settings))
        self.limits: dict[Platform, PlatformLimits] = {}
        self.pollers: dict[Platform, Poller] = {}
        self._refs: dict[str, AccountRef] = {}
        self._pacers: dict[tuple[Platform, str], tuple[WindowPacer, asyncio.Lock]] = {}
        self._requests: dict[Platform, int] = {}
        self._rpa: dict[Platform, float] = {}
        self._wake: dict[Platform, asyncio.Event] = {}
        self._stack = AsyncExitStack()
        self._counted_at = float("-inf")  # when the account-count gauges were last set
        self._ch: Client | None = None  # ClickHouse, for the state writes (see _write)
        self._ch_lock = threading.Lock()
        self.started = False

    # --- Life cycle.

    async def start(self) -> None:
        """Open the pollers, load the stored schedule and the registry. Raises when ClickHouse fails."""
        if not self.started:
            pollers = await self._stack.enter_async_context(
                open_pollers(self.settings, **self._poller_options)
            )
            for platform, poller in pollers.items():
                self.limits[platform] = limits_for(platform, self.settings)
                self._hook(platform, poller)
                self.pollers[platform] = poller
                # The estimate, not one request per batch: reading posts costs a request per account,
                # and a first chunk sized for batches alone would hold the budget 50 times too long.
                self._rpa[platform] = requests_per_account(
                    platform, self.limits[platform].batch_size, self.settings
                )
                self._wake[platform] = asyncio.Event()
            self.started = True
        stored = await asyncio.to_thread(self._load_stored)
        await self.refresh(stored)

    async def close(self) -> None:
        await self._stack.aclose()
        await asyncio.to_thread(self._publisher.close)
        if self._ch is not None:
            self._ch.close()
            self._ch = None

    async def __aenter__(self) -> PollerService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _load_stored(self) -> dict[str, Stored]:
        client = make_client(self.settings)
        try:
            rows = state.load_states(client, self._db, [p.value for p in self.pollers])
        finally:
            client.close()
        return {
            account_id: Stored(
                next_due=_epoch(row.next_due),
                cadence_s=float(row.cadence_s),
                failures=row.failures,
                last_success=_epoch(row.last_success_at) if row.last_success_at else None,
            )
            for account_id, row in rows.items()
        }

    async def refresh(self, stored: Mapping[str, Stored] | None = None) -> tuple[int, int]:
        """Read the registry again: new accounts are scheduled, dropped ones forgotten. (added, removed)"""
        loaded = await asyncio.to_thread(load_refs, self.settings, list(self.pollers))
        refs = {ref.account_id: ref for ref in loaded}
        self._refs = refs
        added, removed = self.schedule.sync(
            ((ref.account_id, ref.platform.value) for ref in refs.values()), _epoch(self._clock()), stored
        )
        if added or removed:
            log.info("registry: %d accounts scheduled (%d new, %d dropped)", len(refs), added, removed)
        for event in self._wake.values():
            event.set()
        self.update_gauges()
        return added, removed

    # --- Pacing every request within its platform's budget.

    def _hook(self, platform: Platform, poller: Poller) -> None:
        """Every request the poller sends, retries included, waits for its key's pacer first."""
        requests = REQUESTS.labels(platform.value)
        rate_limited = RATE_LIMITED.labels(platform.value)

        async def before(key: str) -> None:
            await self._pace(platform, key)
            requests.inc()
            self._requests[platform] = self._requests.get(platform, 0) + 1

        def after(status: int) -> None:
            if status == httpx.codes.TOO_MANY_REQUESTS:
                rate_limited.inc()

        poller.add_send_hooks(before=before, after=after)

    async def _pace(self, platform: Platform, key: str) -> None:
        pacer, lock = self._pacers.get((platform, key)) or self._pacers.setdefault(
            (platform, key), (WindowPacer(self.limits[platform].budget), asyncio.Lock())
        )
        async with lock:  # one request at a time decides its slot, so concurrent ones never share one
            while True:
                now = _epoch(self._clock())
                at = pacer.next_at(now)
                if at <= now:
                    pacer.record(now)
                    return
                await asyncio.sleep(at - now)

    # --- Polling.

    def chunk(self, platform: Platform) -> int:
        """How many due accounts of ``platform`` the next poll takes."""
        limits = self.limits[platform]
        size = chunk_size(
            limits.budget, limits.batch_size, self._rpa[platform], self.settings.poller_chunk_seconds
        )
        if platform is Platform.MASTODON:  # each server has its own budget; several are polled at once
            size *= self.settings.poller_concurrency
        return size

    async def poll_due(self, platform: Platform) -> int:
        """Poll one chunk of ``platform``'s due accounts; return how many were polled (0: none due)."""
        now = self._clock()
        entries = self.schedule.take_due(platform.value, _epoch(now), self.chunk(platform))
        refs = [self._refs[e.account_id] for e in entries if e.account_id in self._refs]
        if not entries:
            return 0
        before = self._requests.get(platform, 0)
        try:
            result = await self.pollers[platform].poll(refs, now)
        except BaseException:
            for entry in entries:  # cancelled (shutting down) or a bug: nothing was decided for them
                self.schedule.release(entry, entry.next_due)
            raise
        POLLS.labels(platform.value).inc()
        sent = self._requests.get(platform, 0) - before
        if refs:
            self._rpa[platform] = (1 - _RPA_WEIGHT) * self._rpa[platform] + _RPA_WEIGHT * max(
                sent / len(refs), 1 / self.limits[platform].batch_size
            )
        await self._apply(platform, entries, result, now)
        self.update_gauges(platform)
        return len(entries)

    async def _apply(
        self, platform: Platform, entries: list[Entry], result: PollResult, now: datetime
    ) -> None:
        records = [(s.account_id.encode(), s.to_event_bytes()) for s in result.snapshots]
        try:
            await asyncio.to_thread(self._publisher.publish, records)
        except PublishError as exc:
            log.warning("%s: Kafka did not take %d snapshots: %s", platform.value, len(records), exc)
            ERRORS.labels("publish").inc()
            for entry in entries:
                self.schedule.release(entry, _epoch(now) + PUBLISH_RETRY_S)
            return
        SNAPSHOTS_PUBLISHED.labels(platform.value).inc(len(records))
        snapshots = {s.account_id: s for s in result.snapshots}
        failures = {f.account_id: f for f in result.failures}
        at = _epoch(now)
        rows: list[state.PollState] = []
        failed: list[state.FailureRow] = []
        for entry in entries:
            snapshot = snapshots.get(entry.account_id)
            failure = failures.get(entry.account_id)
            last_success = _instant(entry.read_at) if entry.read_at is not None else None
            if snapshot is not None:
                shown = snapshot.status is AccountStatus.ACTIVE
                due = self.schedule.succeeded(entry, at, snapshot.followers, gone=not shown)
                ACCOUNTS_POLLED.labels(platform.value, "snapshot").inc()
                rows.append(
                    state.PollState(
                        platform.value, entry.account_id, _instant(due), round(entry.cadence_s), now, now
                    )
                )
            elif failure is not None:
                due = self.schedule.failed(entry, at)
                ACCOUNTS_POLLED.labels(platform.value, "failure").inc()
                FAILURES.labels(platform.value, failure.reason.value).inc()
                rows.append(
                    state.PollState(
                        platform.value,
                        entry.account_id,
                        _instant(due),
                        round(entry.cadence_s),
                        now,
                        last_success,
                        failure.reason.value,
                        failure.detail,
                        entry.failures,
                    )
                )
                failed.append(
                    state.FailureRow(
                        platform.value, entry.account_id, now, failure.reason.value, failure.detail
                    )
                )
            else:
                # Not handed to the poller (unreadable registry row) or not answered: try again later.
                self.schedule.release(entry, at + self.schedule.policy.backoff_s)
        renames = list(result.renamed)
        gone = [
            (account_id, f"{platform.value}: not found by handle nor by stable id")
            for account_id in result.gone
        ]
        for account_id, _ in gone:
            self.schedule.drop(account_id)
        try:
            await asyncio.to_thread(self._write, rows, failed, renames, gone)
        except Exception as exc:  # the schedule in memory goes on; a restart may read these accounts again
            log.warning("%s: could not write the poll state: %s", platform.value, exc)
            ERRORS.labels("state").inc()

    def _write(
        self,
        rows: list[state.PollState],
        failed: list[state.FailureRow],
        renames: list[tuple[str, str]],
        gone: list[tuple[str, str]],
    ) -> None:
        # One client for every chunk's writes (making one asks the server for its settings: a round
        # trip per chunk otherwise); the platforms' loops write from their threads one at a time.
        with self._ch_lock:
            if self._ch is None:
                self._ch = make_client(self.settings)
            client = self._ch
            try:
                if rows:
                    state.write_states(client, self._db, rows)
                if failed:
                    state.append_failures(client, self._db, failed)
                for account_id, handle in renames:
                    log.info("%s is now %s", account_id, handle)
                    with contextlib.suppress(KeyError):  # unregistered meanwhile: nothing to rename
                        accounts.rename(client, self._db, account_id, handle, time.time_ns())
                for account_id, why in gone:
                    log.info("%s is gone: %s", account_id, why)
                    with contextlib.suppress(KeyError):
                        accounts.mark_gone(client, self._db, account_id, why, time.time_ns())
            except Exception:
                self._ch = None  # a broken connection is not reused
                client.close()
                raise

    async def poll_all_due(self) -> int:
        """Poll every platform until nothing is due now; return how many accounts were polled."""

        async def drain(platform: Platform) -> int:
            total = 0
            while polled := await self.poll_due(platform):
                total += polled
            return total

        return sum(await asyncio.gather(*(drain(p) for p in self.pollers)))

    def update_gauges(self, platform: Platform | None = None) -> None:
        """Set the gauges: the lag of ``platform`` (or of every platform) at once, which is cheap; the
        account counts, a pass over every account, at most every ``GAUGE_COUNTS_S``."""
        now = _epoch(self._clock())
        for p in [platform] if platform else list(self.pollers):
            LAG.labels(p.value).set(self.schedule.lag(p.value, now))
        if platform is not None and now - self._counted_at < GAUGE_COUNTS_S:
            return
        self._counted_at = now
        counts = self.schedule.counts(now)
        for p in self.pollers:
            total, due = counts.get(p.value, (0, 0))
            ACCOUNTS.labels(p.value).set(total)
            ACCOUNTS_DUE.labels(p.value).set(due)

    # --- Running.

    async def _platform_loop(self, platform: Platform) -> None:
        wake = self._wake[platform]
        while True:
            try:
                if await self.poll_due(platform):
                    continue
            except Exception:
                log.exception("polling %s failed", platform.value)
                await asyncio.sleep(5.0)
                continue
            wake.clear()
            next_due = self.schedule.next_due(platform.value)
            wait = self.settings.poller_registry_refresh_s
            if next_due is not None:
                wait = min(wait, max(0.0, next_due - _epoch(self._clock())))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=max(wait, 0.05))

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poller_registry_refresh_s)
            try:
                await self.refresh()
            except Exception as exc:
                log.warning("could not read the registry (keeping the accounts known): %s", exc)
                ERRORS.labels("registry").inc()

    async def _gauge_loop(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            self.update_gauges()

    async def run(self) -> None:
        """Start (retrying until ClickHouse answers), then poll until cancelled."""

        async def start() -> None:
            await asyncio.to_thread(ensure_topics, self.settings)
            await self.start()

        await Retry(
            "Starting the poller",
            first_s=1.0,
            transient=lambda exc: isinstance(exc, Exception) and not isinstance(exc, PollerConfigError),
        ).acall(start)
        log.info(
            "polling %s",
            ", ".join(
                f"{p.value} ({self.limits[p].budget.requests} requests/{self.limits[p].budget.window_s:g}s)"
                for p in self.pollers
            )
            or "no platform",
        )
        tasks = [asyncio.create_task(self._platform_loop(p), name=f"poll-{p.value}") for p in self.pollers]
        tasks += [asyncio.create_task(self._refresh_loop()), asyncio.create_task(self._gauge_loop())]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def create_app(settings: Settings, *, service: PollerService | None = None) -> FastAPI:
    """The poller's HTTP face: the service runs in the background of the app's lifespan."""
    service = service or PollerService(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(service.run(), name="poller")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            await service.close()

    app = FastAPI(title="barometre poller", version="1", lifespan=lifespan)

    async def kafka() -> None:
        await check_kafka(settings)

    async def clickhouse() -> None:
        def ping() -> None:
            client = make_client(settings)
            try:
                client.command("SELECT 1")
            finally:
                client.close()

        await asyncio.to_thread(ping)

    checks: dict[str, Callable[[], Awaitable[None]]] = {"kafka": kafka, "clickhouse": clickhouse}
    web.install(app, "poller", checks)
    return app


def app_factory() -> FastAPI:
    """The application, built from this process's settings (uvicorn calls it with factory=True)."""
    return create_app(get_settings())
