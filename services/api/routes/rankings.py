"""Rankings: entities (or accounts) ordered by audience growth, relative growth, audience per 1,000
inhabitants or audience, live or as of any instant (docs/SCORING.md, "Growth over a window")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from services.api import coverage, queries
from services.api.deps import (
    ApiDep,
    AtQuery,
    CategoryQuery,
    DepartementQuery,
    FormatQuery,
    MetricQuery,
    PanelQuery,
    PlatformQuery,
    RankByQuery,
    RegionQuery,
    StratumQuery,
    WindowQuery,
    now,
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
    AccountRankingItem,
    Answer,
    FigureCoverage,
    RankingItem,
    RankingsOut,
)
from services.api.queries import Metric, RankBy
from services.common.names import Window

router = APIRouter(prefix="/v1/rankings", tags=["rankings"])

MAX_LIMIT = 500

COLUMNS = {
    "rank": ColumnType.INT,
    "entity_id": ColumnType.TEXT,
    "name": ColumnType.TEXT,
    "value": ColumnType.FLOAT,
    "followers": ColumnType.INT,
    "followers_before": ColumnType.INT,
}
ACCOUNT_COLUMNS = {
    "rank": ColumnType.INT,
    "entity_id": ColumnType.TEXT,
    "name": ColumnType.TEXT,
    "account_id": ColumnType.TEXT,
    "handle": ColumnType.TEXT,
    "value": ColumnType.FLOAT,
    "followers": ColumnType.INT,
    "followers_before": ColumnType.INT,
}


@router.get(
    "",
    response_model=RankingsOut,
    responses={**ERROR_RESPONSES, **PANEL_NOT_FOUND, **FILE_RESPONSES},
    summary="Audience rankings",
    description="The top `limit` entities (or accounts, `by=account`) of `platform` by `metric` over "
    "`window`. Live without `at`: each account at its latest point, compared with the point in force one "
    "window before it; accounts not observed for 45 days are left out; answers are at most 1 s old. "
    "With `at`: every figure as of that instant. Entities (accounts) without a value at both ends are "
    "left out of growth rankings, those without a population out of per_1000_inhabitants. "
    "`coverage` says how many entities of the scope barometre observes on `platform` (all of them, not "
    "only those listed). "
    "CSV or Parquet with `format` or the Accept header.",
)
async def get_rankings(
    api: ApiDep,
    platform: PlatformQuery,
    category: CategoryQuery = None,
    window: WindowQuery = Window.D30,
    metric: MetricQuery = Metric.GROWTH_ABS,
    at: AtQuery = None,
    region: RegionQuery = None,
    departement: DepartementQuery = None,
    panel: PanelQuery = None,
    stratum: StratumQuery = None,
    by: RankByQuery = RankBy.ENTITY,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"At most {MAX_LIMIT}.")] = 20,
    format: FormatQuery = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    fmt = negotiate(format, accept)
    category = stratum_category(category, stratum)
    scope = scope_of(category, panel, region, departement, stratum)

    def compute() -> Answer[RankingsOut]:
        api.check_scope(scope)
        client = api.client()
        when = now()
        if at is None:
            ranked = queries.rankings_live(
                client, api.db, platform, scope, window, metric, when, api.staleness, limit, by=by
            )
        else:
            ranked = queries.rankings_at(
                client, api.db, platform, scope, window, metric, at, api.staleness, limit, by=by
            )
        items: list[AccountRankingItem] | list[RankingItem]
        if by is RankBy.ACCOUNT:
            items = [AccountRankingItem.model_validate(r, from_attributes=True) for r in ranked]
        else:
            items = [RankingItem.model_validate(r, from_attributes=True) for r in ranked]
        seen = coverage.summary(client, api.db, [platform], scope, at, when, api.staleness)
        return Answer.of(
            RankingsOut(
                platform=platform,
                category=category,
                stratum=stratum,
                window=window,
                metric=metric,
                by=by,
                at=at,
                items=items,
                coverage=FigureCoverage.of(seen),
            )
        )

    key = ("rankings", platform, category, window, metric, at, region, departement, panel, stratum, by, limit)
    answer = await api.cached(key, compute)
    if fmt is ExportFormat.JSON:
        return answer.response()
    name = file_name(
        "rankings",
        platform,
        category,
        stratum,
        region and f"reg{region}",
        departement and f"dep{departement}",
        panel,
        by,
        metric,
        window,
        at or "live",
        fmt=fmt,
    )
    columns = ACCOUNT_COLUMNS if by is RankBy.ACCOUNT else COLUMNS
    return table_response(fmt, columns, (item.model_dump() for item in answer.model.items), name)
