"""The api application factory: the routes of docs/CONTRACT.md ("HTTP API") over ClickHouse.

The service is stateless apart from a one-second cache of answers (services/api/cache.py): any number
of api processes can serve the same database. Errors, /healthz, /readyz and /metrics are the shared
ones (services.common.web).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from clickhouse_connect.driver.exceptions import OperationalError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.api.deps import Api
from services.api.routes import accounts, dashboard, entities, presence, rankings, reports, scores
from services.common import web
from services.common.clickhouse import make_client
from services.common.settings import Settings

RETRY_AFTER_S = 5


def create_app(settings: Settings) -> FastAPI:
    """Build the api application for ``settings``."""
    api = Api(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
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

    for module in (presence, rankings, entities, accounts, scores, reports):
        app.include_router(module.router)
    # The dashboard: the page at / (and /entite/{id}), /v1/territories, and its files under /static.
    app.include_router(dashboard.router)
    dashboard.mount(app)
    return app
