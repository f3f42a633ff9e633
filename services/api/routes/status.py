"""Status: whether the figures are final or the scoring worker is still catching up (how far behind).

Read from Kafka (services/common/lag.py): the scoring group's committed offsets against the snapshots
topic's end offsets; the rate comes from the answers of the last minute. One admin client per api
process, asked at most once a second whatever the number of callers (the dashboard asks every 5 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError
from pydantic import BaseModel, ConfigDict, Field

from services.api.models import ErrorBody, Instant
from services.common.kafka import admin_client
from services.common.lag import Lag, Progress, read_lag
from services.common.settings import Settings
from services.common.web import ApiError

router = APIRouter(prefix="/v1/status", tags=["status"])

RETRY_AFTER_S = 5
FRESH_S = 1.0  # an answer younger than this is served again rather than asking Kafka


class ScoringStatus(BaseModel):
    """The scoring worker's progress through the snapshots received."""

    events_received: int = Field(description="Snapshots on the snapshots topic (every partition).")
    events_scored: int = Field(description="Of those, scored and written: the worker's committed offsets.")
    events_behind: int = Field(description="Received but not yet in any figure (received - scored).")
    partitions: int = Field(description="Partitions of the snapshots topic.")
    rate_per_s: float | None = Field(
        description="Snapshots scored a second over the last minute; null until two readings a second apart."
    )
    seconds_to_catch_up: float | None = Field(
        description="events_behind at that rate: 0 when nothing is behind; null when the rate is unknown "
        "or zero (the worker is starting, stopped or stuck)."
    )
    provisional: bool = Field(
        description="True while more than threshold_events are behind: figures may then lack recent or "
        "back-filled snapshots (the dashboard says so)."
    )
    threshold_events: int = Field(description="BAROMETRE_SCORING_PROVISIONAL_EVENTS.")


class StatusOut(BaseModel):
    """Whether the figures are final, or provisional while the scoring worker catches up."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "checked_at": "2026-03-10T12:00:00.000Z",
                    "scoring": {
                        "events_received": 2900000,
                        "events_scored": 2650000,
                        "events_behind": 250000,
                        "partitions": 6,
                        "rate_per_s": 3500.0,
                        "seconds_to_catch_up": 71.4,
                        "provisional": True,
                        "threshold_events": 20000,
                    },
                }
            ]
        }
    )
    checked_at: Instant = Field(description="When Kafka was asked.")
    scoring: ScoringStatus


class StatusReader:
    """The api process's view of the scoring lag: one admin client, a one-second cache, the rate."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._admin: KafkaAdminClient | None = None
        self._lock = threading.Lock()
        self._progress = Progress()
        self._last: tuple[float, StatusOut] | None = None

    def read(self) -> StatusOut:
        with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < FRESH_S:
                return self._last[1]
            try:
                if self._admin is None:
                    self._admin = admin_client(self.settings, "barometre-api-status", timeout_s=3.0)
                lag = read_lag(self._admin, self.settings)
            except (KafkaError, OSError) as exc:
                self._close()
                raise ApiError(
                    503,
                    "service_unavailable",
                    f"Kafka does not answer ({type(exc).__name__}); try again in a few seconds",
                    {"Retry-After": str(RETRY_AFTER_S)},
                ) from exc
            self._progress.add(lag)
            out = self._answer(lag)
            self._last = (time.monotonic(), out)
            return out

    def _answer(self, lag: Lag) -> StatusOut:
        threshold = self.settings.scoring_provisional_events
        rate = self._progress.rate()
        eta = self._progress.seconds_to_catch_up(lag)
        return StatusOut(
            checked_at=datetime.now(UTC),
            scoring=ScoringStatus(
                events_received=lag.end,
                events_scored=lag.committed,
                events_behind=lag.behind,
                partitions=lag.partitions,
                rate_per_s=None if rate is None else round(max(rate, 0.0), 1),
                seconds_to_catch_up=None if eta is None else round(eta, 1),
                provisional=lag.behind > threshold,
                threshold_events=threshold,
            ),
        )

    def _close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):  # closing a broken client: nothing more to do
                admin.close()

    def close(self) -> None:
        with self._lock:
            self._close()


@router.get(
    "",
    response_model=StatusOut,
    responses={
        503: {"model": ErrorBody, "description": "Kafka does not answer; retry after a few seconds."},
    },
    summary="Whether the figures are final or the worker is catching up",
    description="How far behind the scoring worker is: snapshots received (the snapshots topic's end "
    "offsets), scored (its consumer group's committed offsets: a snapshot is committed only once its "
    "rows are written), the difference, the recent rate and the time to catch up at that rate. "
    "`provisional` is true while more than `threshold_events` snapshots are behind (after a start with a "
    "back-fill, an outage, an import): figures then lack some of what was received. At most 1 s old.",
)
async def get_status(request: Request) -> Response:
    reader: StatusReader = request.app.state.status_reader
    out = await asyncio.to_thread(reader.read)
    return Response(out.model_dump_json().encode(), media_type="application/json")
