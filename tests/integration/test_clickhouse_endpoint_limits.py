"""The local ClickHouse endpoint's limits: query limits sent as URL settings are the engine's (a query
that would run for hours is cut by max_execution_time), and a request body, as sent or decompressed, is
bounded (413 in ClickHouse's error form), so that a few kilobytes cannot unfold into gigabytes."""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import lz4.block
import pytest
import zstandard

from infra.clickhouse import ClickHouseEndpoint
from infra.clickhouse.server import MAX_BODY_BYTES_ENV

pytestmark = pytest.mark.clickhouse

LIMITED_PORT = 44123
LIMIT = 1_000_000


def test_max_execution_time_cuts_a_long_query(clickhouse_url: str) -> None:
    start = time.monotonic()
    r = httpx.post(
        clickhouse_url,
        params={"max_execution_time": "1"},
        content=b"SELECT count() FROM numbers(1e11)",
        timeout=30,
    )
    elapsed = time.monotonic() - start
    assert r.headers["x-clickhouse-exception-code"] == "159" and "TIMEOUT_EXCEEDED" in r.text
    assert r.status_code == 408 and elapsed < 5, elapsed


def test_memory_and_result_rows_limits_are_the_engines(clickhouse_url: str) -> None:
    r = httpx.post(
        clickhouse_url,
        params={"max_result_rows": "10", "result_overflow_mode": "throw"},
        content=b"SELECT number FROM numbers(100)",
    )
    assert r.headers["x-clickhouse-exception-code"] == "396"
    r = httpx.post(
        clickhouse_url,
        params={"max_memory_usage": "10000000"},
        content=b"SELECT groupArray(number) FROM numbers(1e8)",
        timeout=30,
    )
    assert r.headers["x-clickhouse-exception-code"] == "241"


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    mp = pytest.MonkeyPatch()
    mp.setenv(MAX_BODY_BYTES_ENV, str(LIMIT))  # inherited by the endpoint process
    try:
        endpoint = ClickHouseEndpoint(Path(tmp_path_factory.mktemp("limited")) / "data", port=LIMITED_PORT)
        with endpoint:
            yield endpoint.url
    finally:
        mp.undo()


def too_large(r: httpx.Response) -> None:
    assert r.status_code == 413, r.text
    assert r.headers["x-clickhouse-exception-code"] == "229"
    assert r.text.startswith("Code: 229. DB::Exception: The ") and "(QUERY_IS_TOO_LARGE)" in r.text


INSERT = {"query": "INSERT INTO t FORMAT TSV"}


def test_bodies_as_sent_and_decompressed_are_bounded(limited: str) -> None:
    assert httpx.post(limited, content=b"CREATE TABLE t (s String) ENGINE = Memory").status_code == 200
    rows = b"x\n" * 400_000  # 800 kB: under the limit
    bomb = b"x" * (LIMIT * 50)  # 50 MB of one value: 50 kB of gzip
    for method, pack in (
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("zstd", zstandard.ZstdCompressor().compress),
    ):
        r = httpx.post(limited, params=INSERT, content=pack(rows), headers={"Content-Encoding": method})
        assert r.status_code == 200, (method, r.text)
        packed = pack(bomb)
        assert len(packed) < LIMIT / 5
        too_large(httpx.post(limited, params=INSERT, content=packed, headers={"Content-Encoding": method}))
    assert httpx.post(limited, content=b"SELECT count() FROM t").text == "1200000\n"

    # As sent: with a Content-Length, and chunked (no length to check first).
    too_large(httpx.post(limited, params=INSERT, content=b"x\n" * LIMIT))
    too_large(httpx.post(limited, params=INSERT, content=iter([b"x\n" * 300_000] * 3)))
    # ClickHouse's own block compression (decompress=1): the declared sizes count.
    payload = lz4.block.compress(b"x\n" * 300_000, store_size=False)
    block = b"\0" * 16 + bytes([0x82]) + (len(payload) + 9).to_bytes(4, "little")
    block += (600_000).to_bytes(4, "little") + payload
    too_large(httpx.post(limited, params={**INSERT, "decompress": "1"}, content=block * 2))
    # The endpoint is still fine afterwards.
    assert httpx.get(limited + "/ping").text == "Ok.\n"
