"""Log output of every service: one JSON object a line (``BAROMETRE_LOG_FORMAT=json``, the container
default) or the classic text line (``text``, for ``barometre run`` in a terminal).

A JSON line carries ``ts`` (UTC, ISO 8601, milliseconds), ``level``, ``logger``, ``message``, ``service``;
``request_id`` while an HTTP request is served (:class:`RequestIdMiddleware`: the caller's
``X-Request-ID`` when it is a plain token, else a new one, echoed in the response); any ``extra=`` field
a call passes (the scoring worker's ``account_id``, ``event_key``, ``partition``, ``offset``); and
``exc`` with the traceback when there is one. Standard library only: a formatter and a context variable.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import Context, ContextVar, copy_context
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
# What a caller's X-Request-ID may be to be kept: a plain token (a UUID, a trace id, a load balancer's
# id), never something that could forge a log field or a header.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}")

request_id: ContextVar[str | None] = ContextVar("barometre_request_id", default=None)

# The attributes every LogRecord has: anything else on a record came from ``extra=`` and is logged.
# uvicorn's color_message duplicates message with terminal colours.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _install_record_factory() -> None:
    """Records made while a request is served carry its id (``record.request_id``), whichever handler
    formats them later (a test's capture, a queue); installed once, on top of any other factory."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "barometre_request_id", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        rec = previous(*args, **kwargs)
        rid = request_id.get()
        if rid is not None and not hasattr(rec, "request_id"):
            rec.request_id = rid
        return rec

    factory.barometre_request_id = True  # type: ignore[attr-defined]  # marks ours
    logging.setLogRecordFactory(factory)


_install_record_factory()


def outside_requests() -> Context:
    """The current context without a request id: for a long-lived task a request happens to start (its
    lines are not that request's). ``asyncio.create_task(coro, context=outside_requests())``."""
    context = copy_context()
    context.run(request_id.set, None)
    return context


def valid_request_id(value: str | None) -> str | None:
    """``value`` if it may serve as a request id as it is, else None."""
    return value if value is not None and _VALID_REQUEST_ID.fullmatch(value) else None


def new_request_id() -> str:
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """Each record as one line of JSON (see the module's docstring for the fields)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        rid = getattr(record, "request_id", None) or request_id.get()
        if rid is not None:
            line["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and key not in line:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter(log_format: Literal["json", "text"], service: str) -> logging.Formatter:
    return JsonFormatter(service) if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure(level: str, log_format: Literal["json", "text"], service: str) -> None:
    """The root logger at ``level``, one stderr handler in ``log_format``; the chatty libraries (kafka
    narrates every connection at INFO, httpx every request) kept to their warnings."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format, service))
    logging.basicConfig(level=level.upper(), handlers=[handler])  # a no-op where one is set (pytest)
    for noisy in ("kafka", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


class RequestIdMiddleware:
    """Gives every HTTP request an id: the caller's ``X-Request-ID`` when valid, else a new one. It is in
    :data:`request_id` while the request is served (every log line of it carries it) and in the
    response's ``X-Request-ID``. Pure ASGI, so streamed answers (SSE) pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        rid = valid_request_id(given.decode("latin-1") if given is not None else None) or new_request_id()
        # Not reset afterwards: each request is served in a task (a context) of its own, and the server
        # error handler outside this middleware logs with the id still set.
        request_id.set(rid)
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)
