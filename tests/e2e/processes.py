"""Barometre services as their own processes, as containers run them, for the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

import httpx

from services.common.settings import Settings


def service_env(settings: Settings, data_dir: Path, ports: dict[str, int], **extra: str) -> dict[str, str]:
    """The environment that runs a service on ``settings``' ClickHouse database and Kafka prefix, with
    the ports of ``ports`` (by service name), the test token, quiet logs, and ``extra`` settings."""
    return {
        **os.environ,
        "BAROMETRE_CLICKHOUSE_URL": settings.clickhouse_url,
        "BAROMETRE_CLICKHOUSE_DATABASE": settings.clickhouse_database,
        "BAROMETRE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "BAROMETRE_KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "BAROMETRE_KAFKA_PARTITIONS": str(settings.kafka_partitions),
        "BAROMETRE_BOOTSTRAP_TOKEN": (
            settings.bootstrap_token.get_secret_value() if settings.bootstrap_token else ""
        ),
        "BAROMETRE_DATA_DIR": str(data_dir),
        "BAROMETRE_LOG_LEVEL": "WARNING",
        **{f"BAROMETRE_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        **extra,
    }


class Service:
    """One barometre service as its own process (``barometre <name>``), listening on ``port``."""

    def __init__(self, name: str, port: int, env: dict[str, str], log_dir: Path) -> None:
        self.name, self.env = name, env
        self.log_path = log_dir / f"{name}.log"
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.cli", self.name],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until ``/readyz`` answers 200: the scoring worker once it has read its inputs, the others once
        their dependencies answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, f"{self.name} exited:\n{self.tail()}"
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"{self.name} not ready:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
