"""Scenario e: the api process (which runs the webhook dispatcher and the alert stream) SIGKILLed.

- Mid-delivery: the receiver holds the first POST of an alert open, the api is killed during it; once
  the api is started again the alert is delivered, the same ``X-Barometre-Alert-Id`` (at least once).
- During an SSE stream: a client read part of the alerts, the api is killed, more alerts are
  published while it is down; a new stream with the last ``id:`` seen as ``Last-Event-ID`` gets every
  alert after it, once each: no gap, no repeat.

Alerts are written as the scoring worker writes them (a row of ``alerts`` and an Alert v1 record on
``alerts.v1``). Quick (part of ``make test``). Ports: 42050-42059."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.api.webhook_signature import verify_signature
from services.common.names import Topic
from services.common.settings import Settings
from tests.e2e.test_alert_delivery import dispatcher_in_group
from tests.faults.harness import Proc, eventually, free_port, record, serve, service
from tests.integration.api.alerting import SseReader, alert, publish, store_alerts

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.kafka, pytest.mark.clickhouse]

API_PORTS = range(42050, 42055)  # the first free one (harness.free_port)
RECEIVER_PORTS = range(42055, 42060)
SECRET = "fault-receiver-secret-0123456789"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def api_process(settings: Settings, tmp_path: Path, tag: str) -> Proc:
    return service(
        "api", settings, free_port(API_PORTS), tmp_path / tag,
        BAROMETRE_WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8",  # the receiver is local; refused by default
        BAROMETRE_WEBHOOK_RELOAD_S="0.5",
    )  # fmt: skip


def alerts(first: int, n: int) -> list[dict[str, Any]]:
    """``n`` alerts of distinct accounts (spread over the partitions), numbered from ``first``."""
    return [
        alert(f"facebook:fault-{k}", observed_at=T0 + timedelta(seconds=k)) for k in range(first, first + n)
    ]


def send(settings: Settings, documents: list[dict[str, Any]]) -> None:
    store_alerts(settings, documents)
    publish(settings, Topic.ALERTS, [(a["account_id"], a) for a in documents])


class HangingReceiver:
    """Holds the first POST open (the api gets killed during it), answers 204 to the others; checks
    every signature."""

    def __init__(self) -> None:
        self.attempts: list[tuple[float, str, dict[str, Any]]] = []  # (time, alert id header, body)
        self.first = threading.Event()
        self.released = False  # the held POST may end (the test is over)
        self.bad_signatures = 0

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            if not verify_signature(SECRET, request.headers.get("x-barometre-signature", ""), body):
                self.bad_signatures += 1
                return Response(status_code=401)
            self.attempts.append(
                (time.monotonic(), request.headers["x-barometre-alert-id"], json.loads(body))
            )
            if not self.first.is_set():
                self.first.set()
                deadline = time.monotonic() + 60
                while not self.released and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)  # not answered: the api dies meanwhile
            return Response(status_code=204)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


def test_the_dispatcher_killed_mid_delivery_delivers_after_restart(
    app_settings: Settings, tmp_path: Path
) -> None:
    receiver = HangingReceiver()
    api = api_process(app_settings, tmp_path, "api")
    with serve(receiver.app(), free_port(RECEIVER_PORTS)) as receiver_url:
        try:
            api.start().wait_ready()
            token = app_settings.bootstrap_token
            assert token is not None
            auth = {"Authorization": f"Bearer {token.get_secret_value()}"}
            r = httpx.post(f"{api.url}/v1/webhooks", headers=auth, timeout=10, json={
                "url": receiver_url + "/hook", "secret": SECRET, "types": ["audience_drop"]})  # fmt: skip
            assert r.status_code == 201, r.text
            eventually(lambda: dispatcher_in_group(app_settings), "the dispatcher in its group", timeout=60)
            time.sleep(2)  # its first fetch position, from the end of alerts.v1

            [sent] = alerts(0, 1)
            send(app_settings, [sent])
            assert receiver.first.wait(60), "the first delivery attempt never came\n" + api.tail()
            api.kill()
            killed = time.monotonic()
            api.start()
            restarted = time.monotonic()
            eventually(lambda: len(receiver.attempts) >= 2, "the delivery after the restart", timeout=120)
            redelivered_s = receiver.attempts[1][0] - restarted
            time.sleep(3)  # a third attempt would be a duplicate of a delivered alert
        finally:
            receiver.released = True
            api.stop()

    ids = [alert_id for _, alert_id, _ in receiver.attempts]
    record("e_webhook_dispatcher_sigkill", {
        "alerts_published": 1, "attempts_before_kill": 1, "attempts_after_restart": len(ids) - 1,
        "delivered": len(ids) - 1, "lost": 0 if len(ids) >= 2 else 1,
        "same_alert_id": set(ids) == {sent["alert_id"]},
        "kill_to_restart_s": round(restarted - killed, 1), "restart_to_redelivery_s": round(redelivered_s, 1),
    })  # fmt: skip
    assert receiver.bad_signatures == 0
    assert set(ids) == {sent["alert_id"]}  # at least once, the same alert id
    assert [body for _, _, body in receiver.attempts[1:]] == [sent]
    assert len(ids) == 2, "delivered more than once after the restart"


def read_alerts(stream: SseReader, n: int, timeout: float) -> list[tuple[str, dict[str, Any]]]:
    """The next ``n`` alert events of ``stream`` as (id, Alert v1)."""
    out: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        event = stream.next(timeout=max(0.1, deadline - time.monotonic()))
        if event.event == "alert":
            out.append((event.id, event.data))
    return out


def test_a_stream_resumes_after_an_api_crash_with_no_gap(app_settings: Settings, tmp_path: Path) -> None:
    api = api_process(app_settings, tmp_path, "api")
    first, down = alerts(0, 20), alerts(20, 10)
    try:
        api.start().wait_ready()
        stream = SseReader(f"{api.url}/v1/alerts/stream").start()
        assert stream.status == 200
        send(app_settings, first)
        seen = read_alerts(stream, 8, timeout=60)  # the client has read 8 of 20
        stream.close()
        api.kill()
        killed = time.monotonic()
        send(app_settings, down)  # published while the api is down
        api.start().wait_ready()
        restarted = time.monotonic()
        resumed = SseReader(f"{api.url}/v1/alerts/stream", headers={"Last-Event-ID": seen[-1][0]}).start()
        assert resumed.status == 200
        rest = read_alerts(resumed, 22, timeout=60)
        caught_up_s = time.monotonic() - restarted
        extra: list[tuple[str, dict[str, Any]]] = []
        with contextlib.suppress(queue.Empty):
            extra = read_alerts(resumed, 1, timeout=3)
        resumed.close()
    finally:
        api.stop()

    published = [a["alert_id"] for a in first + down]
    got = [a["alert_id"] for _, a in seen + rest + extra]
    record("e_sse_resume_after_api_sigkill", {
        "alerts_published": len(published), "read_before_kill": len(seen),
        "published_while_down": len(down), "received_after_resume": len(rest) + len(extra),
        "lost": len(set(published) - set(got)), "duplicated": len(got) - len(set(got)),
        "kill_to_ready_s": round(restarted - killed, 1), "ready_to_caught_up_s": round(caught_up_s, 1),
    })  # fmt: skip
    assert not extra, f"events past the published ones: {extra}"
    assert len(got) == len(set(got)), "an alert came twice"
    assert sorted(got) == sorted(published), "an alert is missing"
