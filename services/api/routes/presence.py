"""Presence: the rate of entities present on a platform, at an instant, over time, and on several
platforms at once (docs/SCORING.md, "Presence")."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response
from pydantic import BeforeValidator

from services.api import coverage, queries
from services.api.deps import (
    ApiDep,
    AtQuery,
    CategoryQuery,
    FormatQuery,
    FromQuery,
    PanelQuery,
    PlatformQuery,
    PlatformsQuery,
    StratumQuery,
    ToQuery,
    choice,
    now,
    platforms_key,
    scope_of,
    stratum_category,
)
from services.api.exports import (
    FILE_RESPONSES,
    ColumnType,
    ExportFormat,
    file_name,
    negotiate,
    table_response,
)
from services.api.models import (
    ERROR_RESPONSES,
    PANEL_NOT_FOUND,
    Answer,
    FigureCoverage,
    OverlapOut,
    PresenceOut,
    PresencePoint,
    PresenceSeriesOut,
)
from services.common.web import ApiError

router = APIRouter(prefix="/v1/presence", tags=["presence"])

MAX_POINTS = 400


class Step(StrEnum):
    MONTH = "month"
    WEEK = "week"
    DAY = "day"


# Without ``from``, a series covers this much before ``to``.
DEFAULT_SPAN = {Step.MONTH: 12, Step.WEEK: 26, Step.DAY: 30}

StepQuery = Annotated[
    Step,
    BeforeValidator(choice(Step, "step")),
    Query(description="month (calendar months: same day and time each month), week or day."),
]


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` moved by whole calendar months, the day clamped to the month's length (Jan 31 + 1
    month = Feb 28 or 29)."""
    year, month = divmod(moment.month - 1 + months, 12)
    year += moment.year
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def step_from(start: datetime, step: Step, k: int) -> datetime:
    if step is Step.MONTH:
        return add_months(start, k)
    return start + k * timedelta(days=7 if step is Step.WEEK else 1)


def instants(start: datetime, end: datetime, step: Step) -> list[datetime]:
    """``start``, ``start + step``… up to ``end`` included; at most MAX_POINTS (422 beyond)."""
    if start > end:
        raise ApiError(422, "invalid_request", "from: must not be after to")
    out: list[datetime] = []
    while (t := step_from(start, step, len(out))) <= end:
        out.append(t)
        if len(out) > MAX_POINTS:
            raise ApiError(
                422,
                "invalid_request",
                f"from, to, step: more than {MAX_POINTS} points; shorten the range or use a longer step",
            )
    return out


@router.get(
    "",
    response_model=PresenceOut,
    responses={**ERROR_RESPONSES, **PANEL_NOT_FOUND},
    summary="Presence rate on a platform",
    description="Entities in scope present on `platform` at `at` (default now), out of all entities in "
    "scope. An entity is present when, for one of its accounts there, the last snapshot in the 45 days "
    "up to `at` is active. `coverage` says how many entities in scope barometre observes there "
    "(GET /v1/coverage for the details).",
)
async def get_presence(
    api: ApiDep,
    platform: PlatformQuery,
    category: CategoryQuery = None,
    at: AtQuery = None,
    panel: PanelQuery = None,
    stratum: StratumQuery = None,
) -> Response:
    category = stratum_category(category, stratum)
    scope = scope_of(category, panel, stratum=stratum)

    def compute() -> Answer[PresenceOut]:
        api.check_scope(scope)
        when = at or now()
        p = queries.presence(api.client(), api.db, [platform], scope, when)
        seen = coverage.summary(api.client(), api.db, [platform], scope, at, when, api.staleness)
        return Answer.of(
            PresenceOut(
                platform=platform,
                category=category,
                stratum=stratum,
                panel=panel,
                at=when,
                present=p.present,
                total=p.total,
                rate=p.rate,
                coverage=FigureCoverage.of(seen),
            )
        )

    return (await api.cached(("presence", platform, category, at, panel, stratum), compute)).response()


@router.get(
    "/series",
    response_model=PresenceSeriesOut,
    responses={**ERROR_RESPONSES, **PANEL_NOT_FOUND, **FILE_RESPONSES},
    summary="Presence rate over time",
    description=f"Presence at `from`, `from` + `step`… up to `to` (default now), at most {MAX_POINTS} "
    "points, computed in one query. Without `from`: 12 months, 26 weeks or 30 days before `to`. A point "
    "before barometre first saw an account in scope on the platform active has `observed: false` and "
    "`rate: null`: no data, not 0 %. "
    "CSV or Parquet with `format` or the Accept header.",
)
async def get_presence_series(
    api: ApiDep,
    platform: PlatformQuery,
    category: CategoryQuery = None,
    start: FromQuery = None,
    end: ToQuery = None,
    step: StepQuery = Step.MONTH,
    panel: PanelQuery = None,
    stratum: StratumQuery = None,
    format: FormatQuery = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    fmt = negotiate(format, accept)
    category = stratum_category(category, stratum)
    last = end or now()
    first = start or step_from(last, step, -DEFAULT_SPAN[step])
    points_at = instants(first, last, step)
    scope = scope_of(category, panel, stratum=stratum)

    def compute() -> Answer[PresenceSeriesOut]:
        api.check_scope(scope)
        series = queries.presence_series(api.client(), api.db, platform, scope, points_at)
        points = [
            PresencePoint(at=t, present=p.present, total=p.total, rate=p.rate, observed=p.observed)
            for t, p in zip(points_at, series, strict=True)
        ]
        return Answer.of(
            PresenceSeriesOut(
                platform=platform,
                category=category,
                stratum=stratum,
                panel=panel,
                step=step.value,
                points=points,
            )
        )

    answer = await api.cached(("series", platform, category, start, end, step, panel, stratum), compute)
    if fmt is ExportFormat.JSON:
        return answer.response()
    columns = {
        "at": ColumnType.INSTANT,
        "present": ColumnType.INT,
        "total": ColumnType.INT,
        "rate": ColumnType.FLOAT,
        "observed": ColumnType.BOOL,
    }
    name = file_name("presence", platform, category, stratum, panel, step, first, last, fmt=fmt)
    return table_response(fmt, columns, (p.model_dump() for p in answer.model.points), name)


@router.get(
    "/overlap",
    response_model=OverlapOut,
    responses={**ERROR_RESPONSES, **PANEL_NOT_FOUND},
    summary="Entities present on several platforms at once",
    description="Entities in scope present at `at` (default now) on every one of `platforms`. "
    "`coverage` counts an entity as covered as on its least covered platform.",
)
async def get_overlap(
    api: ApiDep,
    platforms: PlatformsQuery,
    category: CategoryQuery = None,
    at: AtQuery = None,
    panel: PanelQuery = None,
) -> Response:
    scope = scope_of(category, panel)

    def compute() -> Answer[OverlapOut]:
        api.check_scope(scope)
        when = at or now()
        p = queries.presence(api.client(), api.db, platforms, scope, when)
        seen = coverage.summary(api.client(), api.db, platforms, scope, at, when, api.staleness)
        return Answer.of(
            OverlapOut(
                platforms=platforms,
                category=category,
                panel=panel,
                at=when,
                present_all=p.present,
                total=p.total,
                rate=p.rate,
                coverage=FigureCoverage.of(seen),
            )
        )

    key = ("overlap", platforms_key(platforms), category, at, panel)
    return (await api.cached(key, compute)).response()
