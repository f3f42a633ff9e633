"""The live alert stream of one api process: one Kafka reader shared by every SSE client.

The hub is an aiokafka consumer without a group, assigned to every partition of ``alerts.v1`` and
``incidents.v1`` from their end when the first client arrives (the process opens no Kafka connection
before anyone asks). Each record becomes a :class:`StreamEvent` that is kept in a bounded in-memory
buffer and put on the queue of every connected client whose filters it matches. A client that does not
read fast enough has a full queue: it is sent what its queue holds and then disconnected (it resumes
from its last event id), so one slow reader never holds up the hub or the others.

**Event ids** say where the stream is: the Kafka position (next offset) of every partition of both
topics just after that event, ``<alerts.v1 offsets by partition>;<incidents.v1 offsets by partition>``,
e.g. ``12,0,7;3,0,0``. Resuming from an id is exact: the events after it are those at or beyond those
positions. They come from the hub's buffer when it still covers them, otherwise from a temporary
consumer that reads from those positions up to where the hub was when the client connected, then the
client continues live: no loss, no repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from kafka import KafkaConsumer
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from services.api.alert_store import AlertFilter
from services.common.events import Alert
from services.common.kafka import client_security, ensure_topics
from services.common.logs import outside_requests
from services.common.names import Topic
from services.common.settings import Settings

log = logging.getLogger(__name__)

SSE_CLIENTS = Gauge("barometre_api_sse_clients", "Clients connected to GET /v1/alerts/stream.")
SSE_CLIENTS_MAX = Gauge(
    "barometre_api_sse_clients_max",
    "Most GET /v1/alerts/stream clients this process serves (BAROMETRE_API_MAX_SSE_CLIENTS; 0: no cap).",
)
EVENTS_STREAMED = Counter(
    "barometre_api_alerts_streamed_total",
    "Events sent to SSE clients (one per client), by event: alert or incident.",
    ["event"],
)
CLIENTS_DROPPED = Counter(
    "barometre_api_sse_clients_dropped_total", "SSE clients disconnected because they read too slowly."
)

RETRY_MS = 3000  # told to EventSource: reconnect after 3 s
START_TIMEOUT_S = 10.0
CATCH_UP_TIMEOUT_S = 60.0
FAILURE_MEMORY_S = 5.0  # a failed start is answered for this long without trying again
Positions = dict[TopicPartition, int]


class HubUnavailable(Exception):
    """Kafka does not answer: the stream cannot start (the route answers 503)."""


class StaleEventId(ValueError):
    """A Last-Event-ID that is not one of this server's (malformed, or another topic layout)."""


# --- Pure parts: event ids, filters, SSE frames, the resume buffer.


@dataclass(frozen=True)
class Layout:
    """The partitions an event id covers, in order: those of alerts.v1, then those of incidents.v1."""

    alerts: tuple[TopicPartition, ...]
    incidents: tuple[TopicPartition, ...]

    def encode(self, positions: Mapping[TopicPartition, int]) -> str:
        """The event id of ``positions``."""
        a = ",".join(str(positions[tp]) for tp in self.alerts)
        i = ",".join(str(positions[tp]) for tp in self.incidents)
        return f"{a};{i}"

    def decode(self, event_id: str) -> Positions:
        """The positions an event id names; StaleEventId when it cannot be one of this layout's."""
        text = event_id.strip()
        parts = text.split(";")
        if len(text) > 4096 or len(parts) != 2:
            raise StaleEventId(f"{event_id[:80]!r} is not an event id of this stream")
        out: Positions = {}
        for tps, part in zip((self.alerts, self.incidents), parts, strict=True):
            values = part.split(",") if part else []
            if len(values) != len(tps) or not all(v.isdigit() and len(v) < 19 for v in values):
                raise StaleEventId(
                    f"{event_id[:80]!r} is not an event id of this stream (a server with other topics?)"
                )
            out.update(zip(tps, (int(v) for v in values), strict=True))
        return out


@dataclass(frozen=True)
class StreamEvent:
    """One alert or incident as the stream sends it, with what filters look at."""

    event: str  # "alert" or "incident"
    tp: TopicPartition
    offset: int
    id: str  # positions just after this event
    data: str  # one line of JSON
    type: str | None = None
    platform: str | None = None
    entity_id: str | None = None
    account_id: str | None = None
    severity: str | None = None

    def frame(self) -> bytes:
        """The event in the SSE wire format."""
        return f"event: {self.event}\nid: {self.id}\ndata: {self.data}\n\n".encode()


def matches(event: StreamEvent, where: AlertFilter) -> bool:
    """Whether ``event`` passes the list's filters (an incident has no entity or account: a filter on
    those leaves incidents out)."""
    if event.event == "incident" and (where.entity_id is not None or where.account_id is not None):
        return False
    checks = (
        (where.type, event.type),
        (where.platform, event.platform),
        (where.entity_id, event.entity_id),
        (where.account_id, event.account_id),
        (where.severity, event.severity),
    )
    return all(wanted is None or str(wanted) == got for wanted, got in checks)


def parse_record(kind: str, value: bytes | None) -> dict[str, Any] | None:
    """The fields of an alerts.v1 (Alert v1) or incidents.v1 (Incident.to_dict) record value, None when
    it is not one (logged by the caller, skipped: a bad record never stops the stream)."""
    if value is None:
        return None
    try:
        if kind == "alert":
            alert = Alert.from_event_bytes(value)
            return {"data": alert.to_event_bytes().decode(), "type": alert.type.value,
                    "platform": alert.platform.value, "entity_id": alert.entity_id,
                    "account_id": alert.account_id, "severity": alert.severity.value}  # fmt: skip
        incident = json.loads(value)
        if not isinstance(incident, dict) or not isinstance(incident.get("incident_id"), str):
            return None
        return {"data": json.dumps(incident, separators=(",", ":"), ensure_ascii=False),
                "type": incident.get("type"), "platform": incident.get("platform"),
                "severity": incident.get("severity")}  # fmt: skip
    except (ValidationError, ValueError):
        return None


class Buffer:
    """The latest events, and from which positions it can replay everything that followed."""

    def __init__(self, size: int, start: Positions) -> None:
        self._events: deque[StreamEvent] = deque()
        self._size = size
        # The lowest position of each partition from which every later event is still held.
        self.floor: Positions = dict(start)

    def append(self, event: StreamEvent) -> None:
        self._events.append(event)
        if len(self._events) > self._size:
            old = self._events.popleft()
            self.floor[old.tp] = old.offset + 1

    def after(self, positions: Positions) -> list[StreamEvent] | None:
        """The held events at or beyond ``positions``, in stream order; None when some may be gone."""
        if any(positions.get(tp, 0) < floor for tp, floor in self.floor.items()):
            return None
        return [e for e in self._events if e.offset >= positions.get(e.tp, 0)]

    def __len__(self) -> int:
        return len(self._events)


# --- The hub.


@dataclass(eq=False)
class _Client:
    where: AlertFilter
    queue: asyncio.Queue[StreamEvent]
    dropped: bool = field(default=False)


class AlertHub:
    """See the module docstring. One per api process; must be used from the application's event loop."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        SSE_CLIENTS_MAX.set(settings.api_max_sse_clients)
        self._topics = {"alert": settings.topic(Topic.ALERTS), "incident": settings.topic(Topic.INCIDENTS)}
        self._kinds = {name: kind for kind, name in self._topics.items()}
        self._clients: set[_Client] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closing = asyncio.Event()
        self.layout: Layout | None = None
        self.positions: Positions = {}
        self._buffer: Buffer | None = None
        self._failure: tuple[float, str] | None = None  # when the last start failed, and why

    @property
    def started(self) -> bool:
        return self._task is not None and not self._task.done()

    def _consumer_for(self, client_id: str) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            client_id=client_id,
            request_timeout_ms=10_000,
            **client_security(self._settings),
        )

    async def start(self) -> None:
        """Connect and start reading from the end, unless already started; HubUnavailable when Kafka
        does not answer."""
        if self.started:
            return
        async with self._lock:
            if self.started:
                return
            # Clients arriving while Kafka is away are answered at once, not each after a timeout.
            now = asyncio.get_running_loop().time()
            if self._failure is not None and now - self._failure[0] < FAILURE_MEMORY_S:
                raise HubUnavailable(self._failure[1])
            try:
                await asyncio.wait_for(self._connect(), START_TIMEOUT_S)
            except BaseException as exc:  # cancelled too (the client left): no consumer left behind
                await self._stop_consumer()
                if not isinstance(exc, Exception):
                    raise
                message = f"Kafka does not answer ({type(exc).__name__}: {exc})"
                self._failure = (asyncio.get_running_loop().time(), message)
                raise HubUnavailable(message) from exc
            self._failure = None
            # Started by the first stream's request, but not part of it (no request_id in its logs).
            self._task = asyncio.create_task(self._run(), name="alert-hub", context=outside_requests())

    async def _connect(self) -> None:
        await asyncio.to_thread(
            ensure_topics, self._settings, (Topic.ALERTS, Topic.INCIDENTS), START_TIMEOUT_S
        )
        consumer = self._consumer = self._consumer_for("barometre-api-alert-hub")
        await consumer.start()
        names = (self._topics["alert"], self._topics["incident"])
        found = await asyncio.to_thread(_partitions, self._settings, names)
        groups = [tuple(TopicPartition(name, p) for p in found[name]) for name in names]
        layout = Layout(groups[0], groups[1])
        every = [*layout.alerts, *layout.incidents]
        consumer.assign(every)
        ends = await consumer.end_offsets(every)
        for tp in every:
            consumer.seek(tp, ends[tp])
        self.begin(layout, {tp: ends[tp] for tp in every})
        log.info("alert hub reading %d partitions from their end", len(every))

    def begin(self, layout: Layout, positions: Positions) -> None:
        """Start the stream's bookkeeping at ``positions`` (the end of every partition)."""
        self.layout, self.positions = layout, dict(positions)
        self._buffer = Buffer(self._settings.alert_stream_buffer, self.positions)

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=1000, max_records=500)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker went away: aiokafka reconnects; say so and go on
                log.warning("alert hub: reading Kafka failed (retrying): %s", exc)
                await asyncio.sleep(1.0)
                continue
            for tp, records in batch.items():
                for record in records:
                    self.dispatch(tp, record)

    def _event(
        self, tp: TopicPartition, record: ConsumerRecord[Any, Any], positions: Positions
    ) -> StreamEvent | None:
        assert self.layout is not None
        kind = self._kinds[tp.topic]
        fields = parse_record(kind, record.value)
        if fields is None:
            log.warning("alert hub: skipped a record that is not a valid %s (%s[%d]@%d)",
                        kind, tp.topic, tp.partition, record.offset)  # fmt: skip
            return None
        return StreamEvent(
            event=kind, tp=tp, offset=record.offset, id=self.layout.encode(positions), **fields
        )

    def dispatch(self, tp: TopicPartition, record: ConsumerRecord[Any, Any]) -> None:
        """Hand one record read from Kafka to the buffer and to the clients that want it."""
        self.positions[tp] = record.offset + 1
        event = self._event(tp, record, self.positions)
        if event is None:
            return
        assert self._buffer is not None
        self._buffer.append(event)
        for client in list(self._clients):
            if not matches(event, client.where):
                continue
            try:
                client.queue.put_nowait(event)
            except asyncio.QueueFull:
                client.dropped = True
                self._clients.discard(client)
                CLIENTS_DROPPED.inc()

    def check_resume(self, last_event_id: str) -> Positions:
        """The positions of a Last-Event-ID; StaleEventId when it is not one of this stream's."""
        assert self.layout is not None
        return self.layout.decode(last_event_id)

    async def stream(self, where: AlertFilter, resume: Positions | None) -> AsyncIterator[bytes]:
        """The SSE body of one client: what follows ``resume`` (or now), then live events, with a
        heartbeat comment when quiet. Call :meth:`start` first."""
        assert self._buffer is not None
        client = _Client(where, asyncio.Queue(self._settings.alert_stream_client_queue))
        # No await between these lines: the queue gets exactly the events after this snapshot.
        self._clients.add(client)
        replay = None if resume is None else self._buffer.after(resume)
        until = dict(self.positions)
        SSE_CLIENTS.inc()
        try:
            yield f"retry: {RETRY_MS}\n\n".encode()
            if resume is not None:
                earlier = self._read_range(resume, until) if replay is None else _iterate(replay)
                async for event in earlier:
                    if matches(event, where):
                        EVENTS_STREAMED.labels(event.event).inc()
                        yield event.frame()
            heartbeat = self._settings.alert_stream_heartbeat_s
            while not self._closing.is_set():
                if client.dropped and client.queue.empty():
                    return  # too slow: what it had is sent; it resumes from its last id
                try:
                    event = await asyncio.wait_for(client.queue.get(), heartbeat)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if event is _WAKE:
                    return
                EVENTS_STREAMED.labels(event.event).inc()
                yield event.frame()
        finally:
            self._clients.discard(client)
            SSE_CLIENTS.dec()

    async def _read_range(self, start: Positions, until: Positions) -> AsyncIterator[StreamEvent]:
        """Events from ``start`` up to (not including) ``until``, read by a temporary consumer."""
        wanted = [tp for tp, end in until.items() if start.get(tp, 0) < end]
        if not wanted:
            return
        consumer = self._consumer_for("barometre-api-alert-resume")
        positions = {tp: min(start.get(tp, 0), until[tp]) for tp in until}
        try:
            await consumer.start()
            consumer.assign(wanted)
            first = await consumer.beginning_offsets(wanted)
            for tp in wanted:
                # Older than the retention: what is left is all there is.
                positions[tp] = max(positions[tp], first[tp])
                consumer.seek(tp, positions[tp])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + CATCH_UP_TIMEOUT_S
            remaining = {tp for tp in wanted if positions[tp] < until[tp]}
            while remaining and loop.time() < deadline:
                batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=500)
                for tp, records in sorted(batch.items()):
                    for record in records:
                        if record.offset >= until[tp]:
                            break
                        positions[tp] = record.offset + 1
                        event = self._event(tp, record, positions)
                        if event is not None:
                            yield event
                for tp in list(remaining):
                    if await consumer.position(tp) >= until[tp]:
                        remaining.discard(tp)
            if remaining:
                raise HubUnavailable("catching up from the last event id took too long")
        finally:
            await consumer.stop()

    async def _stop_consumer(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
            self._consumer = None

    def close_streams(self) -> None:
        """End every open stream (the server is shutting down); clients reconnect elsewhere."""
        self._closing.set()
        for client in list(self._clients):
            client.dropped = True
            with contextlib.suppress(asyncio.QueueFull):
                client.queue.put_nowait(_WAKE)

    async def close(self) -> None:
        self.close_streams()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self._stop_consumer()

    @property
    def clients(self) -> int:
        return len(self._clients)

    def full(self) -> bool:
        """Whether this process serves as many streams as it may (``api_max_sse_clients``; 0: no cap).
        Streams count from their first byte, so clients connecting in the same instant may pass it by
        a few."""
        cap = self._settings.api_max_sse_clients
        return cap > 0 and len(self._clients) >= cap

    def buffered(self) -> int:
        return len(self._buffer) if self._buffer is not None else 0


def _partitions(
    settings: Settings, topics: Sequence[str], timeout_s: float = START_TIMEOUT_S
) -> dict[str, list[int]]:
    """The partitions of each topic, waiting for topics created a moment ago to reach the metadata.
    (kafka-python here: aiokafka's public API does not refresh the metadata partitions_for_topic reads.)"""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        enable_auto_commit=False,
        **client_security(settings),
    )
    try:
        deadline = time.monotonic() + timeout_s
        out: dict[str, list[int]] = {}
        for topic in topics:
            partitions = consumer.partitions_for_topic(topic)
            while not partitions and time.monotonic() < deadline:
                time.sleep(0.1)
                consumer.topics()  # refreshes the metadata
                partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                raise HubUnavailable(f"topic {topic} has no partitions")
            out[topic] = sorted(partitions)
        return out
    finally:
        consumer.close()


# Wakes a stream waiting on its queue when the server shuts down (never sent: the stream ends first).
_WAKE = StreamEvent(event="alert", tp=TopicPartition("", 0), offset=-1, id="", data="")


async def _iterate(events: Sequence[StreamEvent]) -> AsyncIterator[StreamEvent]:
    for event in events:
        yield event
