"""Ingest's limits with the real broker and ClickHouse: the body size counted as it arrives (a chunked
body has no Content-Length to trust), the item cap enforced while parsing, and `barometre import`
refusing a file that unfolds past its limits (a gzip bomb, a line without end)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.common.settings import Settings
from services.ingest.app import create_app
from tests.integration.ingest.helpers import consume_all

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

AUTH = {"Authorization": "Bearer test-bootstrap-token-0123456789abcdef"}


def snap(n: int) -> dict[str, object]:
    return {
        "account_id": "x:villedegrenoble",
        "platform": "x",
        "entity_id": "COM:38185",
        "observed_at": "2013-01-01T10:00:00+01:00",
        "followers": n,
    }


@pytest.fixture
def small(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings.model_copy(update={"ingest_max_body_bytes": 2000}))) as c:
        yield c


def test_a_chunked_body_over_the_limit_is_413_and_nothing_is_published(
    small: TestClient, app_settings: Settings
) -> None:
    line = json.dumps(snap(1)).encode() + b"\n"

    def chunks() -> Iterator[bytes]:  # no Content-Length
        for _ in range(40):
            yield line

    r = small.post("/v1/snapshots", content=chunks(), headers=AUTH)
    assert (r.status_code, r.json()["error"]["code"]) == (413, "payload_too_large")
    assert small.post("/v1/snapshots", content=line * 40, headers=AUTH).status_code == 413
    r = small.post("/v1/snapshots", content=line * 2, headers=AUTH)
    assert r.json() == {"accepted": 2, "rejected": []}
    assert len(consume_all(app_settings, 3, timeout_ms=3000)) == 2


def test_the_body_is_not_read_before_the_token_is_checked(small: TestClient) -> None:
    r = small.post("/v1/snapshots", content=b"x" * 100_000)
    assert r.status_code == 413  # a declared length over the limit is refused at once
    r = small.post("/v1/snapshots", content=b"[{")
    assert r.status_code == 401


def test_a_million_items_are_refused_while_parsing(app_settings: Settings) -> None:
    with TestClient(create_app(app_settings)) as client:
        for body in (b"[" + b",".join([b"{}"] * 1_000_000) + b"]", b"\n".join([b"{}"] * 1_000_000)):
            start = time.perf_counter()
            r = client.post("/v1/snapshots", content=body, headers=AUTH)
            assert (r.status_code, r.json()["error"]["code"]) == (413, "payload_too_large")
            assert "at most 10000" in r.json()["error"]["message"]
            assert time.perf_counter() - start < 2
        r = client.post("/v1/snapshots", json=[snap(i) for i in range(10_000)], headers=AUTH)
        assert r.status_code == 200 and r.json()["accepted"] == 10_000


def barometre(settings: Settings, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        BAROMETRE_CLICKHOUSE_URL=settings.clickhouse_url,
        BAROMETRE_CLICKHOUSE_DATABASE=settings.clickhouse_database,
        BAROMETRE_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        BAROMETRE_KAFKA_TOPIC_PREFIX=settings.kafka_topic_prefix,
        BAROMETRE_KAFKA_PARTITIONS=str(settings.kafka_partitions),
        **env_extra,
    )
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_import_refuses_a_gzip_bomb_and_an_endless_line(app_settings: Settings, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.jsonl.gz"
    good = "".join(json.dumps(snap(i)) + "\n" for i in range(3))
    with gzip.open(bomb, "wb") as f:
        f.write(good.encode())
        for _ in range(50):
            f.write(b"\n" * (1 << 20))  # 50 MiB of blank lines: a few kB on disk
    out = barometre(
        app_settings,
        "import",
        "snapshots",
        str(bomb),
        "--no-progress",
        BAROMETRE_IMPORT_MAX_DECOMPRESSED_BYTES=str(10 << 20),
    )
    assert out.returncode == 2, out.stderr
    assert "decompresses to more than 10,485,760 bytes" in out.stderr
    assert bomb.stat().st_size < 200_000

    endless = tmp_path / "endless.jsonl.gz"
    with gzip.open(endless, "wb") as f:
        f.write(good.encode())
        for _ in range(4):
            f.write(b" " * (1 << 20))  # one line of 4 MiB
    out = barometre(app_settings, "import", "snapshots", str(endless), "--no-progress")
    assert out.returncode == 2 and "a line longer than 1,048,576 bytes" in out.stderr

    fine = tmp_path / "fine.jsonl.gz"
    with gzip.open(fine, "wb") as f:
        f.write(good.encode())
    out = barometre(app_settings, "import", "snapshots", str(fine), "--no-progress")
    assert out.returncode == 0, out.stderr
