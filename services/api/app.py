"""The api application factory: the routes of docs/CONTRACT.md ("HTTP API") over ClickHouse.

The service is stateless apart from a one-second cache of answers (services/api/cache.py): any number
of api processes can serve the same database. Errors, /healthz, /readyz and /metrics are the shared
ones (services.common.web).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

from clickhouse_connect.driver.exceptions import OperationalError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.api.alert_hub import AlertHub
from services.api.deps import Api
from services.api.routes import (
    accounts,
    alerts,
    coverage,
    dashboard,
    entities,
    incidents,
    presence,
    rankings,
    reports,
    scores,
    silences,
    webhooks,
)
from services.api.webhooks import Dispatcher
from services.common import web
from services.common.clickhouse import make_client
from services.common.settings import Settings

RETRY_AFTER_S = 5


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

    async def clickhouse() -> None:
        def ping() -> None:
            client = make_client(settings, database=None, connect_timeout=2, send_receive_timeout=2)
            try:
                client.command("SELECT 1")
            finally:
                client.close()

        await asyncio.to_thread(ping)

    web.install(app, "api", {"clickhouse": clickhouse})

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
        rankings,
        coverage,
        entities,
        accounts,
        scores,
        reports,
        alerts,
        incidents,
        silences,
        webhooks,
    ):
        app.include_router(module.router)
    # The dashboard: the page at / (and /entite/{id}), /v1/territories, and its files under /static.
    app.include_router(dashboard.router)
    dashboard.mount(app)
    return app
