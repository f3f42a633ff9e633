"""Silences: mute the alerts matching every given matcher for a period (docs/ALERTS.md, "Silences").

The api stores them in ClickHouse; the scoring worker reloads them every few seconds and publishes no
alert that a silence in force matches. Expiring one early writes a new version that ends now.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from services.api import alert_store
from services.api.alert_models import SilenceIn, SilenceOut, SilencesOut, to_ms
from services.api.deps import UUID_RE, AlertsWriter, ApiDep, now, nullable_choice, path_id
from services.api.models import BODY_ERRORS, ERROR_RESPONSES, NOT_FOUND, links
from services.api.routes.alerts import AUTH_RESPONSES
from services.common.web import ApiError

router = APIRouter(prefix="/v1/silences", tags=["alerts"])

MAX_LIMIT = 1_000
MILLISECOND = timedelta(milliseconds=1)


def _out(row: dict[str, Any], at: datetime) -> SilenceOut:
    return SilenceOut.model_validate({**row, "active": row["starts_at"] <= at < row["ends_at"]})


def _json(model: SilenceOut | SilencesOut, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


@router.post(
    "",
    status_code=201,
    response_model=SilenceOut,
    responses={
        **ERROR_RESPONSES,
        **BODY_ERRORS,
        **AUTH_RESPONSES,
        **links(
            201,
            ExpireSilence=(
                "expire_silence_v1_silences__silence_id__delete",
                {"silence_id": "$response.body#/silence_id"},
            ),
        ),
    },
    summary="Create a silence (token with alerts:write)",
    description="Mutes the alerts matching every given matcher (`account_id`, `entity_id`, `platform`, "
    "`type`; at least one) during [`starts_at` (default now), `ends_at`) or `duration` (90m, 2h, 7d, 1w), "
    "at most 366 days. `comment` says why.",
)
async def create_silence(api: ApiDep, caller: AlertsWriter, body: SilenceIn) -> Response:
    at = to_ms(now())
    try:
        starts, ends = body.period(at)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    row = {
        "silence_id": str(uuid.uuid4()), "starts_at": starts, "ends_at": ends,
        "account_id": body.account_id, "entity_id": body.entity_id,
        "platform": None if body.platform is None else body.platform.value,
        "type": None if body.type is None else body.type.value,
        "created_by": caller, "comment": body.comment.strip(), "created_at": at,
    }  # fmt: skip
    await api.run(lambda: alert_store.insert_silence(api.client(), api.db, row))
    return _json(_out(row, at), 201)


@router.get(
    "",
    response_model=SilencesOut,
    responses={
        **ERROR_RESPONSES,
        **links(
            200,
            ExpireFirstSilence=(
                "expire_silence_v1_silences__silence_id__delete",
                {"silence_id": "$response.body#/items/0/silence_id"},
            ),
        ),
    },
    summary="Silences, newest first",
    description="`active=true`: in force now; `active=false`: ended or not started yet; absent: all.",
)
async def list_silences(
    api: ApiDep,
    active: Annotated[
        bool | None,
        Query(description="In force now (true) or not (false).", json_schema_extra=nullable_choice),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> Response:
    at = to_ms(now())
    rows = await api.run(
        lambda: alert_store.list_silences(api.client(), api.db, active=active, now=at, limit=limit)
    )
    return _json(SilencesOut(items=[_out(r, at) for r in rows]))


@router.delete(
    "/{silence_id}",
    response_model=SilenceOut,
    responses={**ERROR_RESPONSES, **NOT_FOUND, **AUTH_RESPONSES},
    summary="Expire a silence now (token with alerts:write)",
    description="Ends the silence now (a silence that has not started yet never starts); an ended one "
    "is answered as it is.",
)
async def expire_silence(
    api: ApiDep,
    caller: AlertsWriter,
    silence_id: Annotated[
        str, Path(description="The silence's id (a UUID)", json_schema_extra={"pattern": UUID_RE.pattern})
    ],
) -> Response:
    silence_id = path_id(silence_id, UUID_RE, "silence")
    at = to_ms(now())

    def compute() -> SilenceOut:
        row = alert_store.get_silence(api.client(), api.db, silence_id)
        if row is None:
            raise ApiError(404, "not_found", f"unknown silence {silence_id!r}")
        if row["ends_at"] > at:
            # Ends now; one not started yet gets a period ending before now (ends_at > starts_at always).
            row = {**row, "ends_at": at, "starts_at": min(row["starts_at"], at - MILLISECOND)}
            alert_store.insert_silence(api.client(), api.db, row)
        return _out(row, at)

    return _json(await api.run(compute))
