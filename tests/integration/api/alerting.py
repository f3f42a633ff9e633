"""Helpers of the alert delivery tests: alerts written the way the scoring worker writes them (a row of
the ``alerts`` table and an Alert v1 record on ``alerts.v1``, keyed by account_id), the api served by
uvicorn on a real port (SSE needs a real connection), an SSE reader, and a webhook receiver that checks
signatures. Ports: 52020-52069 (this suite's range)."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from kafka import KafkaProducer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.api.webhook_signature import verify_signature
from services.common.clickhouse import make_client
from services.common.events import Alert, derive_alert_id, format_timestamp
from services.common.names import AlertType, Topic
from services.common.settings import Settings

PORTS = range(52020, 52070)


def alert(
    account_id: str = "facebook:grenoble",
    *,
    type: str = "audience_drop",
    entity_id: str | None = "COM:38185",
    observed_at: datetime | None = None,
    detected_at: datetime | None = None,
    severity: str = "critical",
    value: float | None = 600.0,
    expected: float | None = 5000.0,
    score: float | None = 42.0,
) -> dict[str, Any]:
    """An Alert v1 document (as the worker's to_alert makes it), validated by the contract model."""
    observed = observed_at or datetime.now(UTC).replace(microsecond=0)
    document = {
        "alert_id": derive_alert_id(AlertType(type), account_id, observed),
        "type": type, "account_id": account_id, "entity_id": entity_id,
        "platform": account_id.partition(":")[0], "observed_at": format_timestamp(observed),
        "detected_at": format_timestamp(detected_at or datetime.now(UTC)), "value": value,
        "expected": expected, "score": score, "severity": severity, "status": "open",
    }  # fmt: skip
    return json.loads(Alert.model_validate(document).to_event_bytes())


def store_alerts(
    settings: Settings, alerts: list[dict[str, Any]], *, details: dict[str, Any] | None = None,
    inhibited_by: str | None = None,
) -> None:  # fmt: skip
    """Rows of the ``alerts`` table, as the worker writes them."""
    client = make_client(settings)
    try:
        rows = []
        for a in alerts:
            parsed = Alert.model_validate(a)
            rows.append([
                parsed.alert_id, parsed.type.value, parsed.account_id, parsed.entity_id, parsed.platform.value,
                parsed.observed_at, parsed.detected_at, parsed.value, parsed.expected, parsed.score,
                parsed.severity.value, json.dumps(details or {}), inhibited_by, time.time_ns(),
            ])  # fmt: skip
        client.insert(
            f"{settings.clickhouse_database}.alerts", rows,
            column_names=["alert_id", "type", "account_id", "entity_id", "platform", "observed_at",
                          "detected_at", "value", "expected", "score", "severity", "details",
                          "inhibited_by", "version"],
        )  # fmt: skip
    finally:
        client.close()


def publish(settings: Settings, topic: Topic, records: list[tuple[str, dict[str, Any]]]) -> None:
    """Records on ``topic`` (key, JSON value), acknowledged by the broker."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    try:
        for key, value in records:
            producer.send(settings.topic(topic), key=key.encode(), value=json.dumps(value).encode())
        producer.flush(30)
    finally:
        producer.close()


def _free_socket() -> socket.socket:
    for port in PORTS:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.listen(128)
        return sock
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


@contextmanager
def serve(app: Starlette | FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn in a thread; yields its base URL."""
    sock = _free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the application did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@dataclass
class SseEvent:
    event: str
    id: str
    data: Any


@dataclass
class SseReader:
    """Reads an SSE response in a thread; ``start()`` returns once the stream is live (its first line
    came) or refused, ``next()`` waits for the next event."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    events: queue.Queue[SseEvent | BaseException] = field(default_factory=queue.Queue)
    status: int | None = None
    comments: list[str] = field(default_factory=list)
    _opened: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> SseReader:
        threading.Thread(target=self._run, daemon=True).start()
        if not self._opened.wait(15):
            raise TimeoutError(f"no answer from {self.url}")
        return self

    def _run(self) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(60, connect=5)) as client,
                client.stream("GET", self.url, headers=self.headers) as response,
            ):
                self.status = response.status_code
                if self.status != 200:
                    self._opened.set()
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    # The stream's first line (retry:) comes once the client is registered with the hub.
                    self._opened.set()
                    if self._stop.is_set():
                        return
                    if line.startswith(":"):
                        self.comments.append(line)
                    elif not line:
                        if "data" in fields:
                            self.events.put(SseEvent(fields.get("event", "message"), fields.get("id", ""),
                                                     json.loads(fields["data"])))  # fmt: skip
                        fields = {}
                    else:
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
        except BaseException as exc:  # surfaced by next()
            self._opened.set()
            self.events.put(exc)

    def next(self, timeout: float = 10.0) -> SseEvent:
        item = self.events.get(timeout=timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()


@dataclass
class Receiver:
    """A webhook receiver: checks each request's signature, answers with the statuses it is told to
    (then 200), and keeps what it received."""

    secret: str
    script: list[int] = field(default_factory=list)  # statuses to answer first, in order
    received: list[dict[str, Any]] = field(default_factory=list)  # valid deliveries
    attempts: list[dict[str, str]] = field(default_factory=list)  # every request's headers
    bad_signatures: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            self.attempts.append(dict(request.headers))
            if not verify_signature(self.secret, request.headers.get("x-barometre-signature", ""), body):
                self.bad_signatures += 1
                return Response(status_code=401)
            if self.script:
                status = self.script.pop(0)
                return Response(status_code=status, headers={"Retry-After": "1"} if status == 429 else None)
            self.received.append(json.loads(body))
            self.arrived.set()
            return Response(status_code=204)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


def new_id() -> str:
    return str(uuid.uuid4())
