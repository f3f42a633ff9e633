"""Alerts over HTTP: the list, one alert, its acknowledgement, and the live stream (Server-Sent Events).

The list and the detail read ClickHouse (the ``alerts`` table the scoring worker writes, and
``alert_acks``); the stream reads Kafka through the process's :class:`~services.api.alert_hub.AlertHub`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Header, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from prometheus_client import Counter
from pydantic import BeforeValidator

from services.api import alert_store
from services.api.alert_hub import AlertHub, HubUnavailable, StaleEventId
from services.api.alert_models import (
    AckIn,
    AlertDetailOut,
    AlertsPage,
    parse_account_id,
    parse_entity_id,
)
from services.api.alert_store import AlertFilter
from services.api.deps import (
    EVENT_ID_RE,
    AlertsWriter,
    ApiDep,
    CursorQuery,
    OptionalPlatformQuery,
    SinceQuery,
    choice,
    nullable_choice,
    path_id,
    text_schema,
)
from services.api.models import BODY_ERRORS, ERROR_RESPONSES, NOT_FOUND, ErrorBody, case_insensitive, links
from services.api.paging import next_cursor, position
from services.common.events import (
    ACCOUNT_ID_PATTERN,
    ENTITY_ID_PATTERN,
    EVENT_ID_PATTERN,
    MAX_ACCOUNT_ID_LENGTH,
)
from services.common.names import AlertSeverity, AlertStatus, AlertType
from services.common.web import ApiError

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])

MAX_LIMIT = 1_000
DEFAULT_LIMIT = 100
RETRY_AFTER_S = 5

ACKS = Counter(
    "barometre_api_alert_acks_total", "Acknowledgements received, by result: new or repeated.", ["result"]
)

AUTH_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "No token, or an unknown or revoked one."},
    403: {"model": ErrorBody, "description": "The token has neither the alerts:write nor the admin scope."},
}

TypeQuery = Annotated[
    AlertType | None,
    BeforeValidator(choice(AlertType, "alert type")),
    Query(description=f"One of {', '.join(AlertType)}.", json_schema_extra=nullable_choice),
]
SeverityQuery = Annotated[
    AlertSeverity | None,
    BeforeValidator(choice(AlertSeverity, "severity")),
    Query(description="info, warning or critical.", json_schema_extra=nullable_choice),
]
EntityQuery = Annotated[
    str | None,
    BeforeValidator(parse_entity_id),
    Query(
        description="KIND:code, e.g. COM:38185 (either case).",
        json_schema_extra=text_schema(case_insensitive(ENTITY_ID_PATTERN)),
    ),
]
AccountQuery = Annotated[
    str | None,
    BeforeValidator(parse_account_id),
    Query(
        description="platform:id, e.g. facebook:123456.",
        json_schema_extra=text_schema(ACCOUNT_ID_PATTERN, maxLength=MAX_ACCOUNT_ID_LENGTH),
    ),
]

AlertIdPath = Annotated[
    str, Path(description="The alert's id", json_schema_extra={"pattern": EVENT_ID_PATTERN})
]


@router.get(
    "",
    response_model=AlertsPage,
    responses={
        **ERROR_RESPONSES,
        **links(
            200,
            GetFirstAlert=(
                "get_alert_v1_alerts__alert_id__get",
                {"alert_id": "$response.body#/items/0/alert_id"},
            ),
            AckFirstAlert=(
                "ack_alert_v1_alerts__alert_id__ack_post",
                {"alert_id": "$response.body#/items/0/alert_id"},
            ),
        ),
    },
    summary="Alerts, newest first",
    description="Alerts newest first (by `detected_at`, then `alert_id`), at most `limit` (default "
    f"{DEFAULT_LIMIT}, at most {MAX_LIMIT:,}); `next` is the cursor of the following page (null on the "
    "last). Alerts an incident inhibited are left out unless `inhibited=true`.",
)
async def list_alerts(
    api: ApiDep,
    since: SinceQuery = None,
    type: TypeQuery = None,
    platform: OptionalPlatformQuery = None,
    entity_id: EntityQuery = None,
    account_id: AccountQuery = None,
    severity: SeverityQuery = None,
    status: Annotated[
        AlertStatus | None,
        BeforeValidator(choice(AlertStatus, "status")),
        Query(description="open or acknowledged.", json_schema_extra=nullable_choice),
    ] = None,
    inhibited: Annotated[bool, Query(description="Include the alerts inhibited by an incident.")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"At most {MAX_LIMIT:,}.")] = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Response:
    after = position(cursor)
    where = AlertFilter(since, type, platform, entity_id, account_id, severity, status, inhibited)

    def compute() -> AlertsPage:
        items, more = alert_store.list_alerts(api.client(), api.db, where, limit, after)
        cursor_next = next_cursor(items, more, "detected_at", "alert_id")
        return AlertsPage.model_validate({"items": items, "next": cursor_next})

    page = await api.run(compute)
    return Response(page.model_dump_json(), media_type="application/json")


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`event: alert` (data: Alert v1 JSON) and `event: incident` (data: the incident "
            "JSON); `id:` is the stream position after the event; `: keepalive` comments every ~15 s.",
        },
        **ERROR_RESPONSES,
        503: {
            "model": ErrorBody,
            "description": "Kafka does not answer, or this process serves as many streams as it may "
            "(`too_many_streams`); retry after `Retry-After` seconds.",
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
        },
    },
    summary="Live alerts and incidents (Server-Sent Events), resumable",
    description="Alerts and incidents as they are published, with the list's filters (an `entity_id` "
    "or `account_id` filter leaves incidents out). Resume exactly where a previous stream stopped with "
    "the `Last-Event-ID` header (EventSource sends it by itself) or `?last_event_id=`. 503 with "
    "`Retry-After` when Kafka does not answer or the process serves its maximum of streams.",
)
async def stream_alerts(
    request: Request,
    type: TypeQuery = None,
    platform: OptionalPlatformQuery = None,
    entity_id: EntityQuery = None,
    account_id: AccountQuery = None,
    severity: SeverityQuery = None,
    last_event_id: Annotated[
        str | None,
        Query(
            description="For clients that cannot send the Last-Event-ID header.",
            json_schema_extra=text_schema("^.+$"),
        ),
    ] = None,
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", include_in_schema=False)
    ] = None,
) -> StreamingResponse:
    hub: AlertHub = request.app.state.alert_hub
    if hub.full():
        raise ApiError(
            503,
            "too_many_streams",
            "this api process serves as many alert streams as it may; retry shortly or on another replica",
            {"Retry-After": str(RETRY_AFTER_S)},
        )
    try:
        await hub.start()
    except HubUnavailable as exc:
        raise ApiError(
            503,
            "service_unavailable",
            f"the alert stream is unavailable: {exc}",
            {"Retry-After": str(RETRY_AFTER_S)},
        ) from None
    resume = None
    text = last_event_id_header or last_event_id
    if text:
        try:
            resume = hub.check_resume(text)
        except StaleEventId as exc:
            raise ApiError(422, "invalid_request", f"last_event_id: {exc}") from None
    where = AlertFilter(
        type=type, platform=platform, entity_id=entity_id, account_id=account_id, severity=severity
    )
    return StreamingResponse(
        hub.stream(where, resume),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/{alert_id}",
    response_model=AlertDetailOut,
    responses={**ERROR_RESPONSES, **NOT_FOUND},
    summary="One alert, with what explains it and its acknowledgement",
)
async def get_alert(api: ApiDep, alert_id: AlertIdPath) -> Response:
    alert_id = path_id(alert_id, EVENT_ID_RE, "alert")

    def compute() -> AlertDetailOut:
        row = alert_store.get_alert(api.client(), api.db, alert_id)
        if row is None:
            raise ApiError(404, "not_found", f"unknown alert {alert_id!r}")
        return AlertDetailOut.model_validate(row)

    return Response((await api.run(compute)).model_dump_json(), media_type="application/json")


@router.post(
    "/{alert_id}/ack",
    response_model=AlertDetailOut,
    responses={**ERROR_RESPONSES, **BODY_ERRORS, **NOT_FOUND, **AUTH_RESPONSES},
    summary="Acknowledge an alert (token with alerts:write)",
    description="Marks the alert `acknowledged`. Idempotent: acknowledging again keeps the first "
    'acknowledgement (who, when, comment). Optional body `{"comment": "…"}`.',
)
async def ack_alert(
    api: ApiDep, caller: AlertsWriter, alert_id: AlertIdPath, body: Annotated[AckIn | None, Body()] = None
) -> Response:
    alert_id = path_id(alert_id, EVENT_ID_RE, "alert")
    comment = body.comment.strip() if body else ""

    def compute() -> AlertDetailOut:
        client = api.client()
        if alert_store.get_alert(client, api.db, alert_id) is None:
            raise ApiError(404, "not_found", f"unknown alert {alert_id!r}")
        repeated = alert_store.get_ack(client, api.db, alert_id) is not None
        if not repeated:
            alert_store.insert_ack(client, api.db, alert_id, datetime.now(UTC), caller, comment)
        ACKS.labels("repeated" if repeated else "new").inc()
        row = alert_store.get_alert(client, api.db, alert_id)
        assert row is not None
        return AlertDetailOut.model_validate(row)

    return Response((await api.run(compute)).model_dump_json(), media_type="application/json")
