"""One account's history: its raw snapshots, as received (docs/SCORING.md: every snapshot is kept)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import Response

from services.api import queries
from services.api.deps import ApiDep, FormatQuery, FromQuery, ToQuery
from services.api.exports import (
    FILE_RESPONSES,
    ColumnType,
    ExportFormat,
    file_name,
    negotiate,
    table_response,
)
from services.api.models import ERROR_RESPONSES, NOT_FOUND, Answer, HistoryOut
from services.common.events import ACCOUNT_ID_PATTERN, MAX_ACCOUNT_ID_LENGTH, normalise_account_id
from services.common.web import ApiError

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000
# Bounds of every snapshot (the contract's timestamps are in 2000-2099).
FIRST, AFTER_LAST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)

COLUMNS = {
    "observed_at": ColumnType.INSTANT,
    "event_id": ColumnType.TEXT,
    "followers": ColumnType.INT,
    "following": ColumnType.INT,
    "posts_total": ColumnType.INT,
    "posts_30d": ColumnType.INT,
    "interactions_30d": ColumnType.INT,
    "replies_30d": ColumnType.INT,
    "automated_posts_30d": ColumnType.INT,
    "status": ColumnType.TEXT,
    "source": ColumnType.TEXT,
}


@router.get(
    "/{account_id:path}/history",
    response_model=HistoryOut,
    responses={**ERROR_RESPONSES, **NOT_FOUND, **FILE_RESPONSES},
    summary="Raw snapshots of one account",
    description="The snapshots of `account_id` (platform:id, e.g. x:grenoble; `twitter:` is accepted) "
    f"observed in [`from`, `to`), newest first, at most `limit` (default {DEFAULT_LIMIT:,}, at most "
    f"{MAX_LIMIT:,}). `truncated` says there are more: ask again with `to` set to the oldest `observed_at` "
    "returned. CSV or Parquet with `format` or the Accept header.",
)
async def get_history(
    api: ApiDep,
    account_id: Annotated[
        str,
        Path(
            description="platform:id (x:grenoble)",
            json_schema_extra={"pattern": ACCOUNT_ID_PATTERN, "maxLength": MAX_ACCOUNT_ID_LENGTH},
        ),
    ],
    start: FromQuery = None,
    end: ToQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"At most {MAX_LIMIT:,}.")] = DEFAULT_LIMIT,
    format: FormatQuery = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    fmt = negotiate(format, accept)
    try:
        account_id = normalise_account_id(account_id.strip())
    except ValueError as exc:
        raise ApiError(404, "not_found", f"unknown account: {exc}") from None
    if start is not None and end is not None and start >= end:
        raise ApiError(422, "invalid_request", "from: must be before to")

    def compute() -> Answer[HistoryOut]:
        client = api.client()
        row = queries.account(client, api.db, account_id)
        if row is None:
            raise ApiError(404, "not_found", f"unknown account {account_id!r}")
        items, truncated = queries.history(
            client, api.db, account_id, start or FIRST, end or AFTER_LAST, limit
        )
        return Answer.of(
            HistoryOut.model_validate(
                {
                    "account_id": row.account_id,
                    "platform": row.platform,
                    "entity_id": row.entity_id,
                    "handle": row.handle,
                    "from": start,
                    "to": end,
                    "truncated": truncated,
                    "items": items,
                }
            )
        )

    answer = await api.run(compute)
    if fmt is ExportFormat.JSON:
        return answer.response()
    name = file_name("history", account_id.replace(":", "-"), start, end, fmt=fmt)
    return table_response(fmt, COLUMNS, (item.model_dump() for item in answer.model.items), name)
