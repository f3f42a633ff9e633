"""The webhook dispatcher: every alert on ``alerts.v1`` POSTed to every subscription that wants it.

It runs inside the api process (a lifespan background task; ``BAROMETRE_WEBHOOKS_ENABLED=false`` turns
it off) as a member of the Kafka consumer group ``<prefix>barometre-webhooks``, so api replicas share
the partitions. It joins the group only once a subscription exists (an api without subscriptions
opens no Kafka connection for this), and a new group starts at the end of the topic: a subscription
receives the alerts published after it was made.

For each record, each matching subscription gets its own delivery task: ``POST <url>`` with the Alert v1
JSON as body and the headers ``X-Barometre-Signature`` (services/api/webhook_signature.py),
``X-Barometre-Alert-Id`` and ``X-Barometre-Delivery-Attempt``. Connection errors, timeouts, 5xx and 429
are retried with exponential back-off and full jitter (a 429's or 503's ``Retry-After`` is honoured),
until ``webhook_max_attempts`` attempts or ``webhook_give_up_s`` seconds; any other answer is final.
A subscription has at most ``webhook_concurrency`` deliveries in flight, so a slow or dead receiver
holds up only its own deliveries. A record's offset is committed once every delivery of it (and of
every record before it in its partition) is delivered or given up: after a crash the uncommitted ones
are delivered again (at least once: receivers deduplicate by ``X-Barometre-Alert-Id``).

Each state of a delivery (``retrying``, then ``delivered`` or ``failed``) is written to
``webhook_deliveries``, in batches, with the receiver's status code and an error of our own words
("connection refused", "timed out", "HTTP 500"): never text from the receiver, which would make the
delivery log a probe of what the api's network can reach.

No SSRF (services/api/egress.py): each attempt resolves the URL's host, refuses it (a final failure,
"destination address not allowed") when any address is loopback, private, link-local, metadata…, and
connects to the address it checked, with the Host header, TLS SNI and certificate check still on the
host name. Redirects are not followed; at most ``webhook_max_response_bytes`` of an answer are read.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import errno
import logging
import random
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from clickhouse_connect.driver.client import Client
from prometheus_client import Counter
from pydantic import ValidationError

from services.api import alert_store, egress
from services.api.webhook_signature import SIGNATURE_HEADER, signature_header
from services.common.events import Alert
from services.common.kafka import client_security, ensure_topics
from services.common.names import AlertSeverity, Topic
from services.common.retry import Retry
from services.common.settings import Settings

log = logging.getLogger(__name__)

WEBHOOK_CONSUMER_GROUP = "barometre-webhooks"
USER_AGENT = "barometre-webhooks/1"
MAX_IN_FLIGHT_RECORDS = 10_000  # beyond this, fetching pauses until deliveries catch up
MAX_PENDING_ROWS = 100_000
MAX_ERROR_LENGTH = 500

DELIVERIES = Counter(
    "barometre_webhook_deliveries_total",
    "Webhook deliveries finished, by outcome: delivered or failed (refused, or given up after retries).",
    ["outcome"],
)
for _outcome in ("delivered", "failed"):  # exported at 0 from the start: rates (and rules) see both
    DELIVERIES.labels(_outcome)
ATTEMPTS = Counter(
    "barometre_webhook_delivery_attempts_total",
    "Webhook delivery attempts, by result: success, http_<status class> (2xx, 4xx, 429, 5xx…), "
    "timeout, connection_error, refused (destination address not allowed).",
    ["result"],
)

SEVERITY_RANK = {AlertSeverity.INFO: 0, AlertSeverity.WARNING: 1, AlertSeverity.CRITICAL: 2}


# --- Pure parts.


@dataclass(frozen=True)
class Subscription:
    """Where to POST alerts, and which: empty filters match everything."""

    subscription_id: str
    url: str
    secret: str
    types: frozenset[str] = frozenset()
    platforms: frozenset[str] = frozenset()
    entity_ids: frozenset[str] = frozenset()
    min_severity: AlertSeverity = AlertSeverity.INFO

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Subscription:
        return cls(
            subscription_id=row["subscription_id"],
            url=row["url"],
            secret=row["secret"],
            types=frozenset(row["types"]),
            platforms=frozenset(row["platforms"]),
            entity_ids=frozenset(row["entity_ids"]),
            min_severity=AlertSeverity(row["min_severity"] or AlertSeverity.INFO),
        )

    def wants(self, alert: Alert) -> bool:
        return (
            (not self.types or alert.type.value in self.types)
            and (not self.platforms or alert.platform.value in self.platforms)
            and (not self.entity_ids or alert.entity_id in self.entity_ids)
            and SEVERITY_RANK[alert.severity] >= SEVERITY_RANK[self.min_severity]
        )


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) as seconds from ``now``; None when absent or
    unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def retry_delay(
    attempt: int, base: float, cap: float, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, …): exponential back-off
    ``base * 2^(attempt-1)`` up to ``cap`` with full jitter (uniform between half and all of it, so
    receivers recovering from an outage are not hit by every sender at once); a ``Retry-After`` the
    receiver gave wins (up to ``cap``)."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), cap)
    delay = min(cap, base * 2 ** (attempt - 1))
    return rng.uniform(delay / 2, delay)


def is_retryable(status: int) -> bool:
    """Whether an HTTP answer says "try again later": 5xx and 429."""
    return status >= 500 or status == 429


def attempt_result(status: int | None, error: BaseException | None) -> str:
    """The metric label of one attempt."""
    if status is not None:
        if 200 <= status < 300:
            return "success"
        return "http_429" if status == 429 else f"http_{status // 100}xx"
    if isinstance(error, egress.DestinationRefused):
        return "refused"
    return "timeout" if isinstance(error, httpx.TimeoutException | TimeoutError) else "connection_error"


NOT_ALLOWED = "destination address not allowed"


def _causes(error: BaseException) -> Iterable[BaseException]:
    """``error`` and what caused it (httpx wraps httpcore wraps anyio's exception groups wrap OSError)."""
    seen: set[int] = set()
    stack = [error]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        stack.extend(c for c in (e.__cause__, e.__context__) if c is not None)


def describe_error(error: BaseException) -> str:
    """Our own words for a failed attempt: the exception's text can hold what a receiver (or a server
    at the address it names) said, so it is never recorded."""
    if isinstance(error, egress.DestinationRefused):
        return NOT_ALLOWED
    if isinstance(error, httpx.TimeoutException | TimeoutError):
        return "timed out"
    if isinstance(error, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return "invalid URL"
    causes = list(_causes(error))
    if any(isinstance(c, socket.gaierror) for c in causes):
        return "host name not resolved"
    if any(isinstance(c, ssl.SSLCertVerificationError) for c in causes):
        return "TLS certificate not valid for the host"
    if any(isinstance(c, ssl.SSLError) for c in causes):
        return "TLS handshake failed"
    errnos = {c.errno for c in causes if isinstance(c, OSError)}
    if isinstance(error, httpx.ConnectError) or errnos:
        if errno.ECONNREFUSED in errnos or any(isinstance(c, ConnectionRefusedError) for c in causes):
            return "connection refused"
        if errnos & {errno.ENETUNREACH, errno.EHOSTUNREACH}:
            return "host unreachable"
        return "connection failed"
    if isinstance(error, httpx.RemoteProtocolError | httpx.LocalProtocolError):
        return "invalid HTTP answer"
    if isinstance(error, httpx.ReadError | httpx.WriteError):
        return "connection lost"
    return "request failed"


def default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


def pinned_url(url: httpx.URL, address: egress.IPAddress) -> httpx.URL:
    """``url`` with its host replaced by the address that was checked (so no second resolution)."""
    return url.copy_with(host=str(address))


def host_header(url: httpx.URL) -> str:
    """The Host header of ``url`` (host, and port when not the scheme's default)."""
    raw = url.raw_host.decode("ascii")
    host = f"[{raw}]" if ":" in raw else raw
    return host if url.port is None or url.port == default_port(url) else f"{host}:{url.port}"


async def read_capped(response: httpx.Response, limit: int) -> int:
    """Read at most about ``limit`` bytes of ``response``'s raw body (not decompressed), then stop:
    the answer's body is not used, and a receiver must not make the dispatcher hold much of it."""
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read >= limit:
            break
    return read


# --- Offsets: commit only what is finished, in partition order.


@dataclass
class _Record:
    offset: int
    remaining: int


@dataclass
class OffsetTracker:
    """Per partition, the records whose deliveries are not all finished, in offset order."""

    pending: dict[TopicPartition, deque[_Record]] = field(default_factory=dict)
    committable: dict[TopicPartition, int] = field(default_factory=dict)

    def add(self, tp: TopicPartition, offset: int, deliveries: int) -> _Record:
        record = _Record(offset, deliveries)
        self.pending.setdefault(tp, deque()).append(record)
        self._advance(tp)
        return record

    def done(self, tp: TopicPartition, record: _Record) -> None:
        record.remaining -= 1
        self._advance(tp)

    def _advance(self, tp: TopicPartition) -> None:
        queue = self.pending.get(tp)
        while queue and queue[0].remaining <= 0:
            self.committable[tp] = queue.popleft().offset + 1

    def take(self) -> dict[TopicPartition, int]:
        """The offsets to commit now (each partition's next offset after its finished prefix)."""
        out, self.committable = self.committable, {}
        return out

    def in_flight(self) -> int:
        return sum(len(q) for q in self.pending.values())


# --- The dispatcher.


class Dispatcher:
    """See the module docstring. ``client_factory`` gives ClickHouse clients (used in worker threads)."""

    def __init__(
        self,
        settings: Settings,
        client_factory: Callable[[], Client],
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._client_factory = client_factory
        self._client: Client | None = None
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._subscriptions: list[Subscription] = []
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._tracker = OffsetTracker()
        self._rows: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._http: httpx.AsyncClient | None = None
        self.ready = False  # assigned partitions with known positions (tests wait for it)
        self.loaded = asyncio.Event()
        self._allowed = egress.parse_networks(settings.webhook_allow_networks)

    # ClickHouse, in worker threads.
    def _db(self) -> Client:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    async def reload(self) -> None:
        rows = await asyncio.to_thread(
            alert_store.list_subscriptions, self._db(), self._settings.clickhouse_database
        )
        self._subscriptions = [Subscription.from_row(r) for r in rows]
        for s in self._subscriptions:
            self._limits.setdefault(s.subscription_id, asyncio.Semaphore(self._settings.webhook_concurrency))
        self.loaded.set()

    async def _reload_forever(self) -> None:
        while True:
            try:
                await self.reload()
            except Exception as exc:  # ClickHouse down: keep the subscriptions we have
                log.warning("webhooks: could not reload subscriptions: %s", exc)
            await asyncio.sleep(self._settings.webhook_reload_s)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self.flush()

    async def flush(self) -> None:
        """Write the delivery states gathered since the last flush (kept for the next one on failure)."""
        rows, self._rows = self._rows, []
        if not rows:
            return
        try:
            await asyncio.to_thread(
                alert_store.insert_deliveries, self._db(), self._settings.clickhouse_database, rows
            )
        except Exception as exc:
            log.warning("webhooks: could not record %d delivery states: %s", len(rows), exc)
            self._rows = (rows + self._rows)[-MAX_PENDING_ROWS:]

    async def run(self) -> None:
        """Reload subscriptions, and deliver once there are some; until cancelled."""
        helpers = [asyncio.create_task(self._reload_forever()), asyncio.create_task(self._flush_forever())]
        # No keep-alive: connections are pooled by address, and one opened (and its certificate checked)
        # for one host name must not carry another's delivery. trust_env=False: no proxy from the
        # environment (it would connect to the host name, unchecked).
        self._http = httpx.AsyncClient(
            headers={"User-Agent": USER_AGENT}, follow_redirects=False, trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )  # fmt: skip
        try:
            while not self._subscriptions:
                await asyncio.sleep(min(self._settings.webhook_reload_s, 1.0))
            await self._consume()
        finally:
            for task in [*helpers, *self._tasks]:
                task.cancel()
            await asyncio.gather(*helpers, *self._tasks, return_exceptions=True)
            await self.flush()
            if self._consumer is not None:
                with contextlib.suppress(Exception):
                    await self._consumer.stop()
            await self._http.aclose()
            if self._client is not None:
                self._client.close()

    async def _start_consumer(self) -> AIOKafkaConsumer:

        async def start() -> AIOKafkaConsumer:
            await asyncio.to_thread(ensure_topics, self._settings, (Topic.ALERTS,))
            consumer = AIOKafkaConsumer(
                self._settings.topic(Topic.ALERTS),
                bootstrap_servers=self._settings.kafka_bootstrap,
                group_id=self._settings.kafka_topic_prefix + WEBHOOK_CONSUMER_GROUP,
                client_id="barometre-api-webhooks",
                enable_auto_commit=False,
                auto_offset_reset="latest",
                **client_security(self._settings),
            )
            await consumer.start()
            return consumer

        return await Retry("webhooks: starting the Kafka consumer", first_s=1.0).acall(start)

    async def _consume(self) -> None:
        consumer = self._consumer = await self._start_consumer()
        paused = False
        started: set[TopicPartition] = set()  # partitions whose start is committed
        while True:
            if self._tracker.in_flight() >= MAX_IN_FLIGHT_RECORDS:
                if not paused:
                    consumer.pause(*consumer.assignment())
                    paused = True
            elif paused:
                consumer.resume(*consumer.assignment())
                paused = False
            try:
                batch = await consumer.getmany(timeout_ms=500, max_records=200)
            except Exception as exc:
                log.warning("webhooks: reading Kafka failed (retrying): %s", exc)
                await asyncio.sleep(1.0)
                continue
            if not self.ready and consumer.assignment():
                for tp in consumer.assignment():
                    await consumer.position(tp)
                self.ready = True
            if consumer.assignment() - started:
                await self._commit_start(consumer, consumer.assignment() - started, batch)
            started = set(consumer.assignment())
            for tp, records in batch.items():
                for record in records:
                    self._handle(tp, record.offset, record.value)
            await self._commit(consumer)

    async def _commit_start(
        self, consumer: AIOKafkaConsumer, new: set[TopicPartition], batch: Mapping[TopicPartition, Any]
    ) -> None:
        """Commit where the group starts on newly assigned partitions it has no offset for. "latest" is
        resolved anew by each start: without this, an api killed or restarted before its first commit
        there starts past the alerts it had not delivered yet, and past those published meanwhile."""
        start = {}
        for tp in new:
            if await consumer.committed(tp) is None:
                records = batch.get(tp)
                offset = records[0].offset if records else await consumer.position(tp)
                start[tp] = OffsetAndMetadata(offset, "")
        if start:
            try:
                await consumer.commit(start)
            except Exception as exc:  # a rebalance: the new owner commits its own start
                log.warning("webhooks: committing the start position failed: %s", exc)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        offsets = self._tracker.take()
        mine = consumer.assignment()
        offsets = {tp: o for tp, o in offsets.items() if tp in mine}
        if not offsets:
            return
        try:
            await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
        except Exception as exc:  # a rebalance: the new owner delivers the uncommitted ones again
            log.warning("webhooks: commit failed: %s", exc)

    def _handle(self, tp: TopicPartition, offset: int, value: bytes | None) -> None:
        try:
            alert = Alert.from_event_bytes(value or b"")
        except ValidationError as exc:
            log.warning(
                "webhooks: skipped %s[%d]@%d, not an Alert v1: %s", tp.topic, tp.partition, offset, exc
            )
            self._tracker.add(tp, offset, 0)
            return
        targets = [s for s in self._subscriptions if s.wants(alert)]
        record = self._tracker.add(tp, offset, len(targets))
        body = alert.to_event_bytes()
        for subscription in targets:
            task = asyncio.create_task(self._deliver(subscription, alert.alert_id, body, tp, record))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _state(
        self, s: Subscription, alert_id: str, attempts: int, status: str, http_status: int | None,
        error: str, first: datetime,
    ) -> None:  # fmt: skip
        self._rows.append({
            "subscription_id": s.subscription_id, "alert_id": alert_id, "attempts": attempts,
            "status": status, "http_status": http_status, "error": error[:MAX_ERROR_LENGTH],
            "first_attempt_at": first, "last_attempt_at": datetime.now(UTC),
        })  # fmt: skip

    async def _deliver(
        self, s: Subscription, alert_id: str, body: bytes, tp: TopicPartition, record: _Record
    ) -> None:
        settings = self._settings
        try:
            async with self._limits.setdefault(
                s.subscription_id, asyncio.Semaphore(settings.webhook_concurrency)
            ):
                first = datetime.now(UTC)
                started = time.monotonic()
                attempt = 0
                while True:
                    attempt += 1
                    status, error, retry_after = await self._attempt(s, alert_id, body, attempt)
                    if status is not None and 200 <= status < 300:
                        self._state(s, alert_id, attempt, "delivered", status, "", first)
                        DELIVERIES.labels("delivered").inc()
                        return
                    retryable = (status is None and error != NOT_ALLOWED) or (
                        status is not None and is_retryable(status)
                    )
                    delay = retry_delay(attempt, settings.webhook_backoff_s, settings.webhook_backoff_max_s,
                                        retry_after, self._rng)  # fmt: skip
                    out_of_time = time.monotonic() - started + delay > settings.webhook_give_up_s
                    if not retryable or attempt >= settings.webhook_max_attempts or out_of_time:
                        why = error if not retryable else f"gave up after {attempt} attempts: {error}"
                        self._state(s, alert_id, attempt, "failed", status, why, first)
                        DELIVERIES.labels("failed").inc()
                        return
                    self._state(s, alert_id, attempt, "retrying", status, error, first)
                    await asyncio.sleep(delay)
        finally:
            self._tracker.done(tp, record)

    async def _attempt(
        self, s: Subscription, alert_id: str, body: bytes, attempt: int
    ) -> tuple[int | None, str, float | None]:
        """One POST to the checked address, within ``webhook_timeout_s`` in all: (status or None, error
        in our words, Retry-After seconds)."""
        assert self._http is not None
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(s.secret, body, int(time.time())),
            "X-Barometre-Alert-Id": alert_id,
            "X-Barometre-Delivery-Attempt": str(attempt),
        }
        settings = self._settings
        try:
            async with asyncio.timeout(settings.webhook_timeout_s):
                url = httpx.URL(s.url)
                host = url.raw_host.decode("ascii")  # IDNA-encoded, IPv6 without brackets
                address = await egress.resolve_checked(host, url.port or default_port(url), self._allowed)
                request = self._http.build_request(
                    "POST", pinned_url(url, address), content=body,
                    headers={**headers, "Host": host_header(url)},
                    timeout=settings.webhook_timeout_s,
                    # TLS: SNI and the certificate check on the host name, not on the address.
                    extensions={"sni_hostname": host} if url.scheme == "https" else None,
                )  # fmt: skip
                response = await self._http.send(request, stream=True)
                try:
                    await read_capped(response, settings.webhook_max_response_bytes)
                finally:
                    await response.aclose()
        except (httpx.HTTPError, httpx.InvalidURL, OSError, TimeoutError, egress.DestinationRefused) as exc:
            ATTEMPTS.labels(attempt_result(None, exc)).inc()
            if isinstance(exc, egress.DestinationRefused):
                log.warning("webhooks: %s refused: %s", s.subscription_id, exc)
            return None, describe_error(exc), None
        ATTEMPTS.labels(attempt_result(response.status_code, None)).inc()
        error = "" if response.is_success else f"HTTP {response.status_code}"
        return (
            response.status_code,
            error,
            retry_after_seconds(response.headers.get("Retry-After"), time.time()),
        )

    @property
    def subscriptions(self) -> Iterable[Subscription]:
        return tuple(self._subscriptions)
