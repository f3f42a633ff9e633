"""The ingest application: ``POST /v1/snapshots`` validates snapshots and publishes them to Kafka.

The answer ``{"accepted", "rejected": [{"index", "error"}]}`` is sent only after Kafka acknowledged every
accepted snapshot (acks=all); if Kafka cannot take them the answer is ``503`` with ``Retry-After`` and
nothing is reported accepted. Resending is safe: event ids make duplicates count once downstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from clickhouse_connect.driver.client import Client
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import Counter, Histogram

from services.common import web
from services.common.clickhouse import make_client
from services.common.kafka import check_kafka, ensure_topics
from services.common.limits import LimitConfig, limit_responses
from services.common.names import SourceKind
from services.common.retry import Retry
from services.common.settings import Settings
from services.common.tokens import Scope, TokenVerifier
from services.ingest import openapi, validation
from services.ingest.known import KnownRegistry
from services.ingest.publisher import Publisher, PublishError

log = logging.getLogger(__name__)

MAX_ITEMS = 10_000
RETRY_AFTER_S = 5

SNAPSHOTS = Counter(
    "barometre_ingest_snapshots_total", "Snapshots received over HTTP, by result.", ["result"]
)
PUBLISH_SECONDS = Histogram(
    "barometre_ingest_publish_seconds",
    "Time for Kafka to acknowledge one request's snapshots.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

_bearer = HTTPBearer(auto_error=False)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(web.error_body(code, message), status_code=status, headers=headers)


def create_app(
    settings: Settings,
    *,
    publisher: Publisher | None = None,
    known: KnownRegistry | None = None,
    verifier: TokenVerifier | None = None,
) -> FastAPI:
    """Build the ingest application; collaborators can be given (tests), else built from ``settings``."""

    def client() -> Client:
        return make_client(settings)

    publisher = publisher or Publisher(settings)
    known = known or KnownRegistry(client, settings.clickhouse_database)
    verifier = verifier or TokenVerifier(settings, client)

    async def prepare_kafka() -> None:
        # In the background, so the service starts (and /readyz explains) while Kafka is down.
        created = await Retry("Ensuring the Kafka topics", first_s=1.0).acall(
            lambda: asyncio.to_thread(ensure_topics, settings)
        )
        if created:
            log.info("created topics %s", ", ".join(created))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await known.reload()
        except Exception as exc:  # readiness reports it; the background refresh keeps trying
            log.warning("could not load the registry yet: %s", exc)
        tasks = [asyncio.create_task(prepare_kafka()), asyncio.create_task(known.run())]
        # What start-up built (modules, the app, the registry) lives as long as the process: moved out of
        # the collector's reach, so that the full collections which the snapshots in flight keep
        # triggering do not scan it every time (a large share of the CPU per pushed snapshot).
        gc.freeze()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.to_thread(publisher.close)

    app = FastAPI(title="barometre ingest", version="1", lifespan=lifespan)

    async def require_ingest(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if credentials is None:
            raise web.ApiError(
                401,
                "unauthorized",
                "a bearer token with the ingest scope is needed",
                {"WWW-Authenticate": "Bearer"},
            )
        found = await verifier.check(credentials.credentials)
        if not found.valid:  # unknown, revoked or expired (the message says which of the last)
            raise web.ApiError(401, "unauthorized", found.refusal, {"WWW-Authenticate": "Bearer"})
        if not found.allows(Scope.INGEST):
            raise web.ApiError(403, "forbidden", "this token does not have the ingest scope")

    @app.post(
        "/v1/snapshots",
        tags=["ingest"],
        summary="Publish account snapshots (JSON array or JSON Lines, at most 10,000)",
        dependencies=[Depends(require_ingest)],
        response_model=openapi.SnapshotsOut,
        responses={**openapi.RESPONSES, **limit_responses(web.ErrorBody)},
        openapi_extra=openapi.request_body(MAX_ITEMS),
    )
    async def post_snapshots(request: Request) -> JSONResponse:
        # The body's size is limited as it arrives (services.common.limits: 413 past
        # ingest_max_body_bytes, chunked bodies included); the token was checked before it is read.
        body = await request.body()
        try:
            items = list(validation.split_body(body, MAX_ITEMS))
        except validation.TooManyItems as exc:
            return _error(413, "payload_too_large", str(exc))
        except validation.BodyError as exc:
            return _error(400, "bad_request", str(exc))
        now = datetime.now(UTC)
        accepted, rejected = await asyncio.to_thread(
            validation.check, items, now, known, SourceKind.PUSH.value
        )
        if any(r.registry_miss for r in rejected) and await known.reload_after_miss():
            accepted, rejected = await asyncio.to_thread(
                validation.check, items, now, known, SourceKind.PUSH.value
            )
        try:
            with PUBLISH_SECONDS.time():
                await asyncio.to_thread(publisher.publish, accepted)
        except PublishError as exc:
            log.warning("publish failed (%d acknowledged): %s", exc.acknowledged, exc)
            return _error(
                503,
                "kafka_unavailable",
                f"Kafka did not take the snapshots ({exc}); nothing was accepted, send them again",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        SNAPSHOTS.labels("accepted").inc(len(accepted))
        SNAPSHOTS.labels("rejected").inc(len(rejected))
        return JSONResponse(
            {
                "accepted": len(accepted),
                "rejected": [{"index": r.index, "error": r.error} for r in rejected],
            }
        )

    async def kafka() -> None:
        await check_kafka(settings)

    async def registry_loaded() -> None:
        if known.loaded_at is None:
            await known.reload()

    web.install(
        app,
        "ingest",
        {"kafka": kafka, "registry": registry_loaded},
        limits=LimitConfig.from_settings(settings, settings.ingest_max_body_bytes),
    )
    return app
