"""Platform-wide incidents (docs/ALERTS.md, "Grouping and inhibition"): the list and one incident."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BeforeValidator

from services.api import alert_store
from services.api.alert_models import IncidentOut, IncidentsPage
from services.api.deps import (
    EVENT_ID_RE,
    ApiDep,
    CursorQuery,
    OptionalPlatformQuery,
    SinceQuery,
    choice,
    nullable_choice,
    path_id,
)
from services.api.models import ERROR_RESPONSES, NOT_FOUND, links
from services.api.paging import next_cursor, position
from services.common.events import EVENT_ID_PATTERN
from services.common.names import AlertType
from services.common.web import ApiError

router = APIRouter(prefix="/v1/incidents", tags=["alerts"])

MAX_LIMIT = 1_000
DEFAULT_LIMIT = 100


class IncidentStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


@router.get(
    "",
    response_model=IncidentsPage,
    responses={
        **ERROR_RESPONSES,
        **links(
            200,
            GetFirstIncident=(
                "get_incident_v1_incidents__incident_id__get",
                {"incident_id": "$response.body#/items/0/incident_id"},
            ),
        ),
    },
    summary="Incidents, newest first",
    description="Platform-wide incidents newest first (by `detected_at`, then `incident_id`), at most "
    f"`limit` (default {DEFAULT_LIMIT}, at most {MAX_LIMIT:,}); `next` is the following page's cursor.",
)
async def list_incidents(
    api: ApiDep,
    since: SinceQuery = None,
    platform: OptionalPlatformQuery = None,
    type: Annotated[
        AlertType | None,
        BeforeValidator(choice(AlertType, "alert type")),
        Query(description="Alert type.", json_schema_extra=nullable_choice),
    ] = None,
    status: Annotated[
        IncidentStatus | None,
        BeforeValidator(choice(IncidentStatus, "status")),
        Query(description="open or resolved.", json_schema_extra=nullable_choice),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Response:
    after = position(cursor)

    def compute() -> IncidentsPage:
        items, more = alert_store.list_incidents(
            api.client(), api.db, since=since, platform=platform, type=type,
            status=None if status is None else status.value, limit=limit, after=after,
        )  # fmt: skip
        cursor_next = next_cursor(items, more, "detected_at", "incident_id")
        return IncidentsPage.model_validate({"items": items, "next": cursor_next})

    return Response((await api.run(compute)).model_dump_json(), media_type="application/json")


@router.get(
    "/{incident_id}",
    response_model=IncidentOut,
    responses={**ERROR_RESPONSES, **NOT_FOUND},
    summary="One incident",
)
async def get_incident(
    api: ApiDep,
    incident_id: Annotated[
        str, Path(description="The incident's id", json_schema_extra={"pattern": EVENT_ID_PATTERN})
    ],
) -> Response:
    incident_id = path_id(incident_id, EVENT_ID_RE, "incident")

    def compute() -> IncidentOut:
        row = alert_store.get_incident(api.client(), api.db, incident_id)
        if row is None:
            raise ApiError(404, "not_found", f"unknown incident {incident_id!r}")
        return IncidentOut.model_validate(row)

    return Response((await api.run(compute)).model_dump_json(), media_type="application/json")
