"""`barometre run` from the outside, as a user meets it: the stack comes up, answers, and stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.slow]

# Below 32768: Linux gives client sockets local ports from 32768-60999, so a fixed port there can be
# held by any connection (a full run once failed with "port 39092 is in use", nothing listening there).
PORTS = {
    "kafka": 27092,
    "clickhouse": 27123,
    "api": 27000,
    "ingest": 27001,
    "scoring": 27002,
    "poller": 27003,
}


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[subprocess.Popen[str], Path, list[str]]]:
    data_dir = tmp_path_factory.mktemp("run-data")
    env = dict(os.environ)
    env.update(
        BAROMETRE_KAFKA_BOOTSTRAP=f"127.0.0.1:{PORTS['kafka']}",
        BAROMETRE_CLICKHOUSE_URL=f"http://127.0.0.1:{PORTS['clickhouse']}",
        BAROMETRE_API_PORT=str(PORTS["api"]),
        BAROMETRE_INGEST_PORT=str(PORTS["ingest"]),
        BAROMETRE_SCORING_PORT=str(PORTS["scoring"]),
        BAROMETRE_POLLER_PORT=str(PORTS["poller"]),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "run", "--data-dir", str(data_dir), "--no-simulator"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Press Ctrl-C to stop" in line:
            break
    if not any("barometre is running" in ln for ln in lines):
        proc.kill()
        pytest.fail("barometre run did not come up:\n" + "".join(lines[-60:]))
    try:
        yield proc, data_dir, lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_prints_the_urls(stack: tuple[subprocess.Popen[str], Path, list[str]]) -> None:
    _, _, lines = stack
    text = "".join(lines)
    assert f"http://127.0.0.1:{PORTS['api']}/" in text
    assert f"http://127.0.0.1:{PORTS['clickhouse']}" in text
    assert f"http://127.0.0.1:{PORTS['poller']}/metrics" in text


def test_clickhouse_pings_with_curl(stack: object) -> None:
    out = subprocess.run(
        ["curl", "-sS", f"http://127.0.0.1:{PORTS['clickhouse']}/ping"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == "Ok.\n"


def test_migrations_were_applied(stack: object) -> None:
    r = httpx.post(
        f"http://127.0.0.1:{PORTS['clickhouse']}/",
        content="SELECT count() FROM barometre.schema_migrations",
    )
    assert r.status_code == 200 and int(r.text) >= 1


def test_a_produced_message_is_consumed(stack: object) -> None:
    bootstrap = f"127.0.0.1:{PORTS['kafka']}"
    topic = f"run-check-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    producer.send(topic, key=b"k", value=b"hello barometre").get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=20000
    )
    values = []
    for message in consumer:
        values.append(message.value)
        break
    consumer.close()
    assert values == [b"hello barometre"]


@pytest.mark.parametrize("service", ["api", "ingest", "scoring"])
def test_services_are_healthy_and_ready(stack: object, service: str) -> None:
    base = f"http://127.0.0.1:{PORTS[service]}"
    assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 200, ready.text
    assert "barometre_" in httpx.get(f"{base}/metrics").text


def test_ctrl_c_stops_everything(stack: tuple[subprocess.Popen[str], Path, list[str]]) -> None:
    proc, data_dir, _ = stack
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    assert "barometre stopped." in out
    for name in ("kafka", "clickhouse", "api", "ingest", "scoring"):
        assert not port_open(PORTS[name]), f"{name} still listens after Ctrl-C"
    assert (data_dir / "logs" / "api.log").exists()
