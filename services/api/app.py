"""The api application factory: the routes of docs/CONTRACT.md ("HTTP API") over ClickHouse.

The service is stateless apart from a one-second cache of answers (services/api/cache.py): any number
of api processes can serve the same database. Errors, /healthz, /readyz and /metrics are the shared
ones (services.common.web).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.api.alert_hub import AlertHub
from services.api.deps import Api
from services.api.models import ErrorBody
from services.api.routes import (
    accounts,
    alerts,
    coverage,
    dashboard,
    entities,
    incidents,
    opendata,
    peers,
    presence,
    rankings,
    reports,
    scores,
    search,
    silences,
    status,
    territory_presence,
    webhooks,
)
from services.api.webhooks import Dispatcher
from services.common import web
from services.common.clickhouse import make_client
from services.common.limits import LimitConfig, limit_responses
from services.common.settings import Settings

RETRY_AFTER_S = 5
STREAM_PATH = "/v1/alerts/stream"

# ClickHouse errors of a query stopped by its limits (services.common.clickhouse.query_limits): the
# request asked too much of the store, which is not a server fault. (status, code, message)
_QUERY_LIMITS: dict[int, tuple[int, str, str]] = {
    159: (504, "query_timeout", "the query ran past its time limit"),  # TIMEOUT_EXCEEDED
    160: (504, "query_timeout", "the query was too slow to end within its time limit"),  # TOO_SLOW
    241: (503, "query_too_large", "the query needed more memory than it may use"),  # MEMORY_LIMIT_EXCEEDED
    158: (503, "query_too_large", "the answer has more rows than one query may return"),  # TOO_MANY_ROWS
    396: (503, "query_too_large", "the answer has more rows than one query may return"),  # ..._OR_BYTES
    307: (503, "query_too_large", "the query read or returned more bytes than it may"),  # TOO_MANY_BYTES
}
_CODE_RE = re.compile(r"\bCode: (\d+)\.")


def _clickhouse_code(exc: DatabaseError) -> int | None:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    found = _CODE_RE.search(str(exc))
    return int(found.group(1)) if found else None


def _end_streams_on_signal(hub: AlertHub, loop: asyncio.AbstractEventLoop) -> None:
    """Let SIGINT/SIGTERM end the open alert streams, then do what the server does with them.

    uvicorn waits for open connections to finish before it stops, and an SSE stream never finishes by
    itself; the streams must end first (EventSource clients reconnect to another replica by
    themselves). Only possible from the main thread (not in tests that serve the app from a thread).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
            # A signal handler may run in the middle of a step of the loop: let the loop do it.
            loop.call_soon_threadsafe(hub.close_streams)
            if callable(previous):
                previous(signum, frame)

        signal.signal(sig, handler)


def create_app(settings: Settings) -> FastAPI:
    """Build the api application for ``settings``."""
    api = Api(settings)
    hub = AlertHub(settings)
    status_reader = status.StatusReader(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _end_streams_on_signal(hub, asyncio.get_running_loop())
        dispatcher: Dispatcher | None = None
        task: asyncio.Task[None] | None = None
        if settings.webhooks_enabled:
            dispatcher = Dispatcher(settings, lambda: make_client(settings))
            task = asyncio.create_task(dispatcher.run(), name="webhook-dispatcher")
        app.state.webhook_dispatcher = dispatcher
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await hub.close()
            status_reader.close()
            api.clickhouse.close()

    app = FastAPI(
        title="barometre API",
        version="1",
        description="Live presence, audience rankings, scores and alerts of French local governments "
        "on social networks. Times are RFC 3339 with an offset; errors are "
        '`{"error": {"code", "message"}}`. Live answers (no `at`) are at most 1 s old.',
        lifespan=lifespan,
    )
    app.state.api = api
    app.state.alert_hub = hub
    app.state.status_reader = status_reader

    async def clickhouse() -> None:
        def ping() -> None:
            client = make_client(settings, database=None, connect_timeout=2, send_receive_timeout=2)
            try:
                client.command("SELECT 1")
            finally:
                client.close()

        await asyncio.to_thread(ping)

    async def write_token_refusal(token: str) -> str | None:
        found = await api.verifier.check(token)
        return None if found.valid else found.refusal

    web.install(
        app,
        "api",
        {"clickhouse": clickhouse},
        limits=LimitConfig.from_settings(
            settings,
            settings.api_max_body_bytes,
            # Streams are long-lived: capped apart (api_max_sse_clients), not as requests in flight.
            uncounted_paths=frozenset({STREAM_PATH}),
            # A write's token is checked before its body is read or parsed (401 without a valid one).
            write_token_check=write_token_refusal,
        ),
    )

    @app.exception_handler(DatabaseError)
    async def _query_limit(request: Request, exc: DatabaseError) -> JSONResponse:
        known = _QUERY_LIMITS.get(_clickhouse_code(exc) or 0)
        if known is None:
            raise exc  # any other ClickHouse error is a fault of ours: the 500 handler logs it
        status, code, message = known
        return JSONResponse(
            web.error_body(code, f"{message}; narrow the request or try again in a few seconds"),
            status_code=status,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    @app.exception_handler(OperationalError)
    async def _clickhouse_down(request: Request, exc: OperationalError) -> JSONResponse:
        # Connection refused, timeouts: the storage, not the request, is at fault; say when to retry.
        return JSONResponse(
            web.error_body("service_unavailable", "ClickHouse does not answer; try again in a few seconds"),
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    for module in (
        presence,
        territory_presence,
        rankings,
        coverage,
        entities,
        search,
        peers,
        accounts,
        scores,
        reports,
        opendata,
        alerts,
        incidents,
        silences,
        webhooks,
        status,
    ):
        # 413, 429, 503 and 504: what the limits may answer on any route (route-level answers win).
        app.include_router(module.router, responses=limit_responses(ErrorBody, queries=True))
    # The dashboard: the page at / (and /entite/{id}), /v1/territories, and its files under /static.
    app.include_router(dashboard.router)
    dashboard.mount(app)
    return app
