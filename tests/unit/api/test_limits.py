"""The request limits of services.common.limits, on a small FastAPI app with the shared web.install: body
size counted as it arrives (chunked, lying Content-Length), token before body, rates per address and
token with Retry-After, concurrency; and the pure parts of the other limits (CSV cells, the ingest item
cap while parsing, the ClickHouse endpoint's bounded decompression)."""

from __future__ import annotations

import asyncio
import bz2
import gzip
import json
import lzma
import time
import zlib
from collections.abc import Iterator, MutableMapping
from typing import Any

import lz4.block
import lz4.frame
import pytest
import zstandard
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel

from infra.clickhouse.server import ClickHouseError, decode_content, decode_native_blocks
from services.api.exports import ColumnType, to_csv
from services.common import web
from services.common.limits import LimitConfig, RequestLimits, client_address, networks
from services.ingest import validation

GOOD = "brm_00000000_good"


async def _token(token: str) -> str | None:
    return None if token == GOOD else "unknown or revoked token"


class Thing(BaseModel):
    name: str


def make_app(**config: Any) -> FastAPI:
    app = FastAPI()
    parsed: list[str] = []
    app.state.parsed = parsed

    @app.post("/v1/things")
    async def create(thing: Thing) -> dict[str, str]:
        parsed.append(thing.name)
        return {"name": thing.name}

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.get("/v1/things")
    async def things() -> dict[str, int]:
        return {"n": len(parsed)}

    config.setdefault("max_body_bytes", 1000)
    web.install(app, "test", {}, limits=LimitConfig(**config))
    return app


def error(r: Any) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


# --- body size


def test_body_over_the_limit_is_413_declared_or_chunked() -> None:
    with TestClient(make_app()) as client:
        assert client.post("/raw", content=b"x" * 1000).json() == {"bytes": 1000}
        r = client.post("/raw", content=b"x" * 1001)
        assert error(r) == (413, "payload_too_large")
        assert "1000 bytes" in r.json()["error"]["message"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
            for _ in range(20):
                yield b"y" * 100

        r = client.post("/raw", content=chunks())
        assert error(r) == (413, "payload_too_large")
        # Through FastAPI's body parsing too (a JSON body model), not "400 error parsing the body".
        big = json.dumps({"name": "z" * 2000}).encode()
        r = client.post(
            "/v1/things",
            content=iter([big[:500], big[500:]]),
            headers={"Authorization": f"Bearer {GOOD}", "Content-Type": "application/json"},
        )
        assert error(r) == (413, "payload_too_large")


def run_asgi(app: Any, scope: dict[str, Any], bodies: list[bytes]) -> tuple[int, bytes, int]:
    """Call ``app`` with a request whose body comes in ``bodies``; (status, body, messages read)."""
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        if read <= len(bodies):
            return {"type": "http.request", "body": bodies[read - 1], "more_body": read < len(bodies)}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    base = {"type": "http", "http_version": "1.1", "scheme": "http", "query_string": b"", "root_path": ""}
    base.update({"client": ("10.0.0.1", 1234), "server": ("test", 80), "headers": []})
    asyncio.run(app({**base, **scope}, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"), read


def test_a_lying_content_length_is_cut_where_the_limit_is() -> None:
    reached: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        total = 0
        while True:
            message = await receive()
            total += len(message.get("body", b""))
            reached.append(total)
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read all"})

    limits = RequestLimits(app, LimitConfig(max_body_bytes=1000))
    headers = [(b"content-length", b"10")]
    status, body, _ = run_asgi(
        limits, {"method": "POST", "path": "/raw", "headers": headers}, [b"a" * 600] * 5
    )
    assert status == 413 and json.loads(body)["error"]["code"] == "payload_too_large"
    assert reached == [600]  # the second chunk was never handed over
    status, _, _ = run_asgi(
        limits, {"method": "POST", "path": "/raw", "headers": [(b"content-length", b"5000")]}, [b"a"]
    )
    assert status == 413  # an honest Content-Length over the limit: refused before reading


# --- the token before the body


def test_a_write_without_a_valid_token_is_refused_before_its_body_is_read() -> None:
    app = make_app(write_token_check=_token)
    limits = app.build_middleware_stack()
    scope = {"method": "POST", "path": "/v1/things", "headers": [(b"content-type", b"application/json")]}
    status, body, read = run_asgi(limits, scope, [b"{not json"])
    assert (status, json.loads(body)["error"]["code"], read) == (401, "unauthorized", 0)
    bad = [*scope["headers"], (b"authorization", b"Bearer brm_00000000_nope")]
    status, body, read = run_asgi(limits, {**scope, "headers": bad}, [b"{not json"])
    assert (status, json.loads(body)["error"]["message"], read) == (401, "unknown or revoked token", 0)
    with TestClient(app) as client:
        r = client.post("/v1/things", json={"name": "a"})
        assert error(r) == (401, "unauthorized") and r.headers["www-authenticate"] == "Bearer"
        r = client.post("/v1/things", json={"name": "a"}, headers={"Authorization": f"Bearer {GOOD}"})
        assert r.json() == {"name": "a"}
        assert client.get("/v1/things").json() == {"n": 1}  # reads need no token
        assert client.post("/raw", content=b"x").status_code == 200  # outside /v1/


def test_the_token_check_failing_is_503_not_500() -> None:
    async def down(token: str) -> str | None:
        raise ConnectionError("ClickHouse is down")

    with TestClient(make_app(write_token_check=down)) as client:
        r = client.post("/v1/things", json={"name": "a"}, headers={"Authorization": f"Bearer {GOOD}"})
        assert error(r) == (503, "service_unavailable") and r.headers["retry-after"] == "5"


# --- rates


def test_rate_per_address_answers_429_with_retry_after_and_spares_operations() -> None:
    with TestClient(make_app(per_address=3)) as client:
        assert [client.get("/v1/things").status_code for _ in range(3)] == [200] * 3
        r = client.get("/v1/things")
        assert error(r) == (429, "too_many_requests")
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert all(client.get(p).status_code == 200 for p in ("/healthz", "/metrics", "/healthz"))
        assert "barometre_http_rejected_total" in client.get("/metrics").text


def test_rate_per_token_counts_each_token_apart() -> None:
    with TestClient(make_app(per_token=2)) as client:

        def get(token: str) -> int:
            status: int = client.get("/v1/things", headers={"Authorization": f"Bearer {token}"}).status_code
            return status

        assert [get("a"), get("a"), get("a")] == [200, 200, 429]
        assert [get("b"), get("b")] == [200, 200]
        assert client.get("/v1/things").status_code == 200  # no token, no per-token count


def test_zero_disables_the_rates() -> None:
    with TestClient(make_app(per_address=0, per_token=0)) as client:
        assert {client.get("/v1/things").status_code for _ in range(50)} == {200}


def test_forwarded_for_is_believed_only_from_a_trusted_proxy() -> None:
    proxies = networks("10.0.0.0/8, ::1")
    xff = [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.7, 10.1.1.1")]
    assert client_address({"client": ("10.0.0.2", 1), "headers": xff}, proxies) == "203.0.113.7"
    assert client_address({"client": ("198.51.100.1", 1), "headers": xff}, proxies) == "198.51.100.1"
    assert client_address({"client": ("10.0.0.2", 1), "headers": xff}, ()) == "10.0.0.2"
    assert client_address({"client": ("10.0.0.2", 1), "headers": []}, proxies) == "10.0.0.2"
    garbage = [(b"x-forwarded-for", b"not-an-ip")]
    assert client_address({"client": ("10.0.0.2", 1), "headers": garbage}, proxies) == "10.0.0.2"

    # Through the middleware: two clients behind one trusted proxy are limited apart.
    async def ok(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    limits = RequestLimits(ok, LimitConfig(max_body_bytes=10, per_address=1, trusted_proxies=proxies))

    def status(client: bytes) -> int:
        scope = {"method": "GET", "path": "/v1/x", "headers": [(b"x-forwarded-for", client)]}
        return run_asgi(limits, scope, [b""])[0]

    assert [status(b"192.0.2.1"), status(b"192.0.2.2"), status(b"192.0.2.1")] == [200, 200, 429]


# --- concurrency


def test_requests_beyond_the_concurrency_cap_are_503_streams_are_not_counted() -> None:
    async def scenario() -> list[int]:
        release = asyncio.Event()

        async def slow(scope: Any, receive: Any, send: Any) -> None:
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        limits = RequestLimits(
            slow,
            LimitConfig(max_body_bytes=10, max_concurrent=2, uncounted_paths=frozenset({"/stream"})),
        )
        statuses: list[int] = []

        async def call(path: str) -> None:
            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])

            scope = {"type": "http", "method": "GET", "path": path, "headers": [], "client": ("1.2.3.4", 1)}
            await limits(scope, receive, send)

        tasks = [asyncio.create_task(call(p)) for p in ("/stream", "/a", "/b")]
        await asyncio.sleep(0.05)
        assert limits.in_flight == 2  # /a and /b; the stream is not counted
        await call("/c")  # refused at once
        tasks.append(asyncio.create_task(call("/healthz")))  # exempt: served beside the others
        await asyncio.sleep(0.05)
        assert limits.in_flight == 2
        release.set()
        await asyncio.gather(*tasks)
        assert limits.in_flight == 0
        return statuses

    async def bounded() -> list[int]:
        return await asyncio.wait_for(scenario(), 5)

    statuses = asyncio.run(bounded())
    assert statuses[0] == 503 and sorted(statuses[1:]) == [200] * 4


def test_the_503_for_concurrency_has_retry_after_and_the_json_error() -> None:
    async def never(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not reached")

    limits = RequestLimits(never, LimitConfig(max_body_bytes=10, max_concurrent=1))
    limits._state.in_flight = 1  # one request already being served
    status, body, _ = run_asgi(limits, {"method": "GET", "path": "/v1/x"}, [b""])
    assert (status, json.loads(body)["error"]["code"]) == (503, "overloaded")


# --- CSV cells against formula injection (OWASP)


def test_csv_text_cells_that_look_like_formulas_are_quoted_numbers_are_not() -> None:
    columns = {"name": ColumnType.TEXT, "value": ColumnType.FLOAT, "n": ColumnType.INT}
    rows: list[dict[str, Any]] = [
        {"name": '=HYPERLINK("http://evil")', "value": -3.5, "n": -2},
        {"name": "+33 4 76", "value": 0.0, "n": 0},
        {"name": "-x", "value": None, "n": None},
        {"name": "@SUM(A1)", "value": 1.0, "n": 1},
        {"name": "\tcmd", "value": 1.0, "n": 1},
        {"name": "\rcmd", "value": 1.0, "n": 1},
        {"name": "Saint-Égrève", "value": 1.0, "n": 1},
    ]
    lines = to_csv(columns, rows).decode().split("\n")
    assert lines[1] == '"\'=HYPERLINK(""http://evil"")",-3.5,-2'
    assert lines[2:5] == ["'+33 4 76,0.0,0", "'-x,,", "'@SUM(A1),1.0,1"]
    assert lines[5] == "'\tcmd,1.0,1" and lines[6] == "'\rcmd,1.0,1"
    assert lines[7] == "Saint-Égrève,1.0,1"


# --- the ingest item cap, enforced while parsing


def test_the_item_cap_stops_parsing_at_the_first_item_past_it() -> None:
    # A million tiny items: refused after 11 items parsed at most, not after a million-element list.
    body = b"[" + b",".join([b"{}"] * 1_000_000) + b"]"
    start = time.perf_counter()
    with pytest.raises(validation.TooManyItems, match="at most 10"):
        list(validation.split_body(body, 10))
    assert time.perf_counter() - start < 0.5
    lines = b"\n".join([b"{}"] * 1_000_000)
    with pytest.raises(validation.TooManyItems):
        list(validation.split_body(lines, 10))
    # At the cap exactly, both forms pass, with their indexes (blank lines keep their place).
    assert len(list(validation.split_body(b"[" + b",".join([b"1"] * 10) + b"]", 10))) == 10
    many_blank = b"\n" * 50 + b"{}\n\n{}"
    assert [i for i, _ in validation.split_body(many_blank, 10)] == [50, 52]
    assert [i for i, _ in validation.split_body(b"{}\n\n{}", 10)] == [0, 2]
    # Past the cap with few commas: parsed whole (the fast path), refused on its length.
    with pytest.raises(validation.TooManyItems):
        list(validation.split_body(b"[" + b",".join([b"1"] * 11) + b"]", 10))


def test_the_item_by_item_parse_refuses_what_a_whole_parse_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validation, "STEP_COMMAS_PER_ITEM", 0)  # every array item by item
    for body in (b"[1,]", b"[1 2, 3, 4]", b"[1,2,3] x", b"[1,2,3", b'[1,2,"\xff"]'):
        with pytest.raises(validation.BodyError, match="not valid JSON"):
            list(validation.split_body(body, 2 if body == b"[1,]" else 3))
    items = [{"a": [1, {"b": "c,]"}]}, "x", None, 2.5, {"n": float("nan")}]
    body = json.dumps(items).encode()
    parsed = [item for _, item in validation.split_body(body, 5)]
    assert json.dumps(parsed) == json.dumps(items)


# --- the ClickHouse endpoint's bounded decompression


@pytest.mark.parametrize("method", ["gzip", "deflate", "zstd", "lz4", "xz", "bz2"])
def test_decompression_stops_at_the_limit(method: str) -> None:
    data = b"0" * 1_000_000
    packed = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "zstd": zstandard.ZstdCompressor().compress,
        "lz4": lz4.frame.compress,
        "xz": lzma.compress,
        "bz2": bz2.compress,
    }[method](data)
    assert decode_content(packed, method, limit=len(data)) == data
    with pytest.raises(ClickHouseError) as info:
        decode_content(packed, method, limit=len(data) - 1)
    assert (info.value.code, info.value.name, info.value.http_status) == (229, "QUERY_IS_TOO_LARGE", 413)


def test_native_blocks_declaring_more_than_the_limit_are_refused_before_decompressing() -> None:
    payload = lz4.block.compress(b"0" * 100_000, store_size=False)
    header = bytes([0x82]) + (len(payload) + 9).to_bytes(4, "little") + (100_000).to_bytes(4, "little")
    block = b"\0" * 16 + header + payload
    assert decode_native_blocks(block * 2, limit=200_000) == b"0" * 200_000
    with pytest.raises(ClickHouseError, match="larger than this endpoint accepts"):
        decode_native_blocks(block * 3, limit=200_000)
