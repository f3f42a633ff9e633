"""``barometre run``: the whole stack on one machine, without containers.

Starts, in order, Kafka (Apache's jars, KRaft), the local ClickHouse endpoint (chDB), the migrations and
every service, each service as its own process exactly as a container would run it; prints the URLs;
stops everything in reverse order on Ctrl-C or SIGTERM, or when one part dies. All state lives under
``settings.data_dir``: ``kafka/``, ``clickhouse/`` and ``logs/``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from infra.process import die_with_parent
from services.common import migrations
from services.common.bootstrap import prepare_database
from services.common.clickhouse import parse_url
from services.common.settings import Settings

log = logging.getLogger("barometre.run")

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class StackError(RuntimeError):
    """The stack cannot start; the message says what to do."""


class Part(Protocol):
    """Something the stack starts and stops."""

    name: str

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def alive(self) -> bool: ...


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _host_port(hostport: str) -> tuple[str, int]:
    parts = urlsplit("//" + hostport.split(",")[0].strip())
    if not parts.hostname or not parts.port:
        raise StackError(f"cannot read host:port from {hostport!r}")
    return parts.hostname, parts.port


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class KafkaPart:
    """The local single-node Kafka broker."""

    settings: Settings
    name: str = "kafka"

    def __post_init__(self) -> None:
        from infra.kafka import KafkaCluster

        host, port = _host_port(self.settings.kafka_bootstrap)
        self._cluster = KafkaCluster(
            self.settings.data_dir / "kafka",
            nodes=1,
            host=host,
            port=port,
            heap=self.settings.kafka_heap,
            cache_dir=self.settings.cache_dir,
        )
        self.host, self.port = host, port

    def start(self) -> None:
        from infra.kafka import PrerequisiteError, check_prerequisites, ensure_jars

        try:
            check_prerequisites()
        except PrerequisiteError as exc:
            raise StackError(str(exc)) from exc
        if not _port_free(self.host, self.port):
            raise StackError(
                f"port {self.port} is in use: another Kafka (or barometre run) is already running there; "
                "stop it or set BAROMETRE_KAFKA_BOOTSTRAP to another address"
            )
        log.info("resolving the Kafka jars (first run downloads them from Maven Central)")
        ensure_jars(self.settings.cache_dir)
        self._cluster.start()

    def stop(self) -> None:
        self._cluster.stop()

    def alive(self) -> bool:
        return bool(self._cluster.is_running())


@dataclass
class ClickHousePart:
    """The local ClickHouse HTTP endpoint over chDB."""

    settings: Settings
    name: str = "clickhouse"

    def __post_init__(self) -> None:
        from infra.clickhouse import ClickHouseEndpoint

        host, port, _ = parse_url(self.settings.clickhouse_url)
        password = self.settings.clickhouse_password.get_secret_value()
        self._endpoint = ClickHouseEndpoint(
            self.settings.data_dir / "clickhouse",
            host=host,
            port=port,
            user=self.settings.clickhouse_user if password else None,
            password=password or None,
        )
        self.host, self.port = host, port

    def start(self) -> None:
        if not _port_free(self.host, self.port):
            raise StackError(
                f"port {self.port} is in use: a ClickHouse server (or barometre run) is already there; "
                "stop it, or point BAROMETRE_CLICKHOUSE_URL at another port"
            )
        self._endpoint.start()

    def stop(self) -> None:
        self._endpoint.stop()

    def alive(self) -> bool:
        return bool(self._endpoint.is_running())


@dataclass
class ServicePart:
    """One barometre process (what its container runs). A service with a port is ready when its
    /readyz says so; a feeder without one (the simulator) is ready once started."""

    name: str
    settings: Settings
    argv: list[str]
    host: str | None = None
    port: int | None = None
    timeout: float = 60.0
    env: dict[str, str] = field(default_factory=dict)  # on top of the stack's own settings

    def __post_init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.settings.data_dir / "logs" / f"{self.name}.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        if self.host and self.port and not _port_free(self.host, self.port):
            raise StackError(f"port {self.port} for the {self.name} service is in use")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logfile = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [sys.executable, *self.argv],
            stdout=logfile,
            stderr=subprocess.STDOUT,
            env={**_service_env(self.settings), **self.env},
            start_new_session=True,  # Ctrl-C reaches the stack, which stops services in order
            # and if the stack itself is killed, its services are killed too rather than living on
            # (SIGKILL: a graceful stop could hang on a broker that died with the stack; every service
            # is at-least-once and idempotent, so an abrupt end loses nothing).
            preexec_fn=die_with_parent(signal.SIGKILL),
        )
        logfile.close()
        if self.port is None:
            return
        deadline = time.monotonic() + self.timeout
        last = ""
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise StackError(f"{self.name} exited at start:\n{_tail(self.log_path)}")
            try:
                r = httpx.get(f"{self.url}/readyz", timeout=3)
                if r.status_code == 200:
                    return
                last = r.text
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.3)
        raise StackError(f"{self.name} not ready after {self.timeout:g}s: {last}\n{_tail(self.log_path)}")

    def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None


def _service_env(settings: Settings) -> dict[str, str]:
    # Children read the same settings the stack was given, including --data-dir.
    env = dict(os.environ)
    env["BAROMETRE_DATA_DIR"] = str(settings.data_dir)
    return env


class Stack:
    """The parts of a local barometre, started in dependency order and stopped in reverse."""

    def __init__(
        self, settings: Settings, *, simulator: bool = True, poller: bool = True, workers: int = 1
    ) -> None:
        if not 1 <= workers <= settings.kafka_partitions:
            raise StackError(
                f"--workers must be between 1 and the snapshot topic's {settings.kafka_partitions} "
                "partitions (BAROMETRE_KAFKA_PARTITIONS): a worker more would have nothing to read"
            )
        self.settings = settings
        self.simulator = simulator
        self._stop = threading.Event()
        self.started: list[Part] = []
        self.services = [
            ServicePart(
                "ingest", settings, ["-m", "services.ingest"], settings.ingest_host, settings.ingest_port
            ),
            *self._workers(settings, workers),
            ServicePart("api", settings, ["-m", "services.api"], settings.api_host, settings.api_port),
        ]
        if poller:
            # Polls only real accounts (never the simulator's): with the simulator alone it reads nothing.
            self.services.append(
                ServicePart(
                    "poller",
                    settings,
                    ["-m", "services.cli", "poller"],
                    settings.poller_host,
                    settings.poller_port,
                )
            )
        self.feeders = (
            [ServicePart("simulator", settings, ["-m", "services.cli", "simulate"])] if simulator else []
        )

    @staticmethod
    def _workers(settings: Settings, count: int) -> list[ServicePart]:
        """The scoring workers: one consumer group, so Kafka shares the partitions among them. Worker k
        (from 2) listens on the scoring port + 100 (k - 1) and keeps Faust's files in data_dir/scoring-k."""
        workers = []
        for k in range(1, count + 1):
            port = settings.scoring_port + 100 * (k - 1)
            name = "scoring" if k == 1 else f"scoring-{k}"
            env = (
                {} if k == 1 else {"BAROMETRE_SCORING_PORT": str(port), "BAROMETRE_SCORING_INSTANCE": str(k)}
            )
            workers.append(
                ServicePart(name, settings, ["-m", "services.scoring"], settings.scoring_host, port, env=env)
            )
        return workers

    def _local_parts(self) -> list[Part]:
        parts: list[Part] = []
        host, _ = _host_port(self.settings.kafka_bootstrap)
        if host in LOCAL_HOSTS:
            parts.append(KafkaPart(self.settings))
        else:
            log.info("Kafka at %s is external: not starting a local broker", self.settings.kafka_bootstrap)
        ch_host, _, _ = parse_url(self.settings.clickhouse_url)
        if ch_host in LOCAL_HOSTS:
            parts.append(ClickHousePart(self.settings))
        else:
            log.info(
                "ClickHouse at %s is external: not starting the local endpoint", self.settings.clickhouse_url
            )
        return parts

    def _migrate(self) -> None:
        try:
            log.info("%s", prepare_database(self.settings).summary())
        except migrations.MigrationError as exc:
            raise StackError(str(exc)) from exc

    def start(self) -> None:
        """Start every part; on any failure stop what was started and raise StackError."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            for part in self._local_parts():
                log.info("starting %s", part.name)
                part.start()
                self.started.append(part)
            self._migrate()
            for svc in [*self.services, *self.feeders]:
                log.info("starting %s", svc.name)
                svc.start()
                self.started.append(svc)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop what was started, newest first; never raises."""
        while self.started:
            part = self.started.pop()
            log.info("stopping %s", part.name)
            try:
                part.stop()
            except Exception:
                log.exception("stopping %s failed", part.name)

    def urls(self) -> dict[str, str]:
        svc = {s.name: s.url for s in self.services}
        return {
            "dashboard": f"{svc['api']}/",
            "api": f"{svc['api']}/v1/  (OpenAPI: {svc['api']}/openapi.json)",
            "ingest": f"{svc['ingest']}/v1/snapshots",
            **{name: f"{url}/metrics" for name, url in svc.items() if name.startswith("scoring")},
            **({"poller": f"{svc['poller']}/metrics"} if "poller" in svc else {}),
            "clickhouse": self.settings.clickhouse_url,
            "kafka": self.settings.kafka_bootstrap,
            "logs": str(self.settings.data_dir / "logs"),
        }

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def run_forever(self) -> None:
        """Start, print the URLs, and wait for Ctrl-C, SIGTERM or a part dying; then stop everything."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            width = max(map(len, self.urls()))
            print("\nbarometre is running:", flush=True)
            for name, url in self.urls().items():
                print(f"  {name:<{width}}  {url}", flush=True)
            if self.simulator:
                print(
                    "  (simulator: first the days the figures read, then every account each 15 min; the rest"
                    " of 90 days of history fills in as the worker keeps up: GET /v1/status)"
                )
            print("Press Ctrl-C to stop.\n", flush=True)
            while not self._stop.wait(1.0):
                dead = [p.name for p in self.started if not p.alive()]
                if dead:
                    raise StackError(
                        f"{', '.join(dead)} stopped unexpectedly; see {self.settings.data_dir}/logs"
                    )
        finally:
            self.stop()
            for s, handler in previous.items():
                with contextlib.suppress(ValueError):
                    signal.signal(s, handler)
            print("barometre stopped.", flush=True)
