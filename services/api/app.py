"""The api application factory."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from services.common import web
from services.common.clickhouse import make_client
from services.common.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    """Build the api application for ``settings``."""
    app = FastAPI(
        title="barometre API",
        version="1",
        description="Live presence, audience rankings, scores and alerts of French local governments "
        "on social networks.",
    )

    async def clickhouse() -> None:
        def ping() -> None:
            client = make_client(settings, database=None, connect_timeout=2, send_receive_timeout=2)
            try:
                client.command("SELECT 1")
            finally:
                client.close()

        await asyncio.to_thread(ping)

    web.install(app, "api", {"clickhouse": clickhouse})
    return app
