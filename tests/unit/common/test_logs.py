"""The JSON log formatter, the request-id middleware and BAROMETRE_LOG_FORMAT (services.common.logs)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.common import web
from services.common.logs import JsonFormatter, formatter, request_id, valid_request_id
from services.common.settings import Settings


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.getLogger("barometre.test").makeRecord(
        "barometre.test", logging.WARNING, __file__, 1, message, args, None, extra=extra or None
    )
    return rec


def test_a_line_is_one_json_object_with_the_fields() -> None:
    line = JsonFormatter("scoring").format(record("lag %d on %s", 3, "p0"))
    assert "\n" not in line
    body = json.loads(line)
    assert body["level"] == "WARNING"
    assert body["logger"] == "barometre.test"
    assert body["message"] == "lag 3 on p0"
    assert body["service"] == "scoring"
    assert datetime.fromisoformat(body["ts"]).utcoffset() is not None
    assert body["ts"].endswith("+00:00")
    assert "request_id" not in body


def test_extra_fields_are_kept_and_odd_values_turned_to_text() -> None:
    body = json.loads(
        JsonFormatter("scoring").format(
            record("x", account_id="bsky:a", partition=2, offset=41, obj=object())
        )
    )
    assert (body["account_id"], body["partition"], body["offset"]) == ("bsky:a", 2, 41)
    assert body["obj"].startswith("<object object")


def test_a_message_with_newlines_and_quotes_stays_one_line() -> None:
    line = JsonFormatter("api").format(record('a "quoted"\nsecond line é'))
    assert "\n" not in line
    assert json.loads(line)["message"] == 'a "quoted"\nsecond line é'


def test_the_traceback_is_in_exc() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logging.getLogger("t").makeRecord("t", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    body = json.loads(JsonFormatter("api").format(rec))
    assert "ValueError: boom" in body["exc"] and "Traceback" in body["exc"]


def test_the_request_id_of_the_context() -> None:
    token = request_id.set("abc-123")
    try:
        assert json.loads(JsonFormatter("api").format(record("x")))["request_id"] == "abc-123"
    finally:
        request_id.reset(token)


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("3f2b8c1e-9d4a-4c1b-a3e2-0f1e2d3c4b5a", True),
        ("Root=1-67891233-abcdef012345678912345678", True),
        ("", False),
        ("a b", False),
        ('x"}{"level":"ERROR', False),
        ("x\r\nSet-Cookie: a=b", False),
        ("a" * 129, False),
        (None, False),
    ],
)
def test_which_request_ids_are_kept(value: str | None, kept: bool) -> None:
    assert valid_request_id(value) == (value if kept else None)


def test_log_format_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().log_format == "text"
    monkeypatch.setenv("BAROMETRE_LOG_FORMAT", "json")
    assert Settings().log_format == "json"
    assert isinstance(formatter("json", "api"), JsonFormatter)
    assert not isinstance(formatter("text", "api"), JsonFormatter)
    monkeypatch.setenv("BAROMETRE_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        Settings()


def small_app() -> FastAPI:
    app = FastAPI()
    web.install(app, "api", {})

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        logging.getLogger("barometre.hello").warning("said hello")
        return {"hello": "world"}

    return app


def test_request_id_from_the_header_in_the_logs_and_the_response(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with TestClient(small_app()) as client:
        r = client.get("/hello", headers={"X-Request-ID": "req-42"})
    assert r.headers["X-Request-ID"] == "req-42"
    lines = [json.loads(JsonFormatter("api").format(rec)) for rec in caplog.records]
    said = [ln for ln in lines if ln["message"] == "said hello"]
    access = [ln for ln in lines if ln["logger"] == "barometre.access"]
    assert said and said[0]["request_id"] == "req-42"
    assert access and access[0]["request_id"] == "req-42"
    assert (access[0]["route"], access[0]["status"]) == ("/hello", 200)


def test_an_invalid_or_missing_request_id_is_replaced_by_a_new_one() -> None:
    with TestClient(small_app()) as client:
        bad = client.get("/hello", headers={"X-Request-ID": "no good"})
        none = client.get("/hello")
    ids = {bad.headers["X-Request-ID"], none.headers["X-Request-ID"]}
    assert len(ids) == 2 and all(len(i) == 32 and valid_request_id(i) for i in ids)


def test_uvicorn_colour_copies_are_left_out() -> None:
    body = json.loads(JsonFormatter("api").format(record("started", color_message="\x1b[36mstarted")))
    assert "color_message" not in body


def test_a_task_started_outside_requests_has_no_request_id() -> None:
    import asyncio

    from services.common.logs import outside_requests

    async def main() -> tuple[str | None, str | None]:
        request_id.set("req-1")

        async def read() -> str | None:
            return request_id.get()

        inherited = await asyncio.create_task(read())
        detached = await asyncio.create_task(read(), context=outside_requests())
        return inherited, detached

    assert asyncio.run(main()) == ("req-1", None)
