"""The ingest application factory."""

from __future__ import annotations

from fastapi import FastAPI

from services.common import web
from services.common.kafka import check_kafka
from services.common.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    """Build the ingest application for ``settings``."""
    app = FastAPI(title="barometre ingest", version="1")

    async def kafka() -> None:
        await check_kafka(settings.kafka_bootstrap)

    web.install(app, "ingest", {"kafka": kafka})
    return app
