"""Rankings: entities (or accounts) ordered by audience growth, relative growth, audience per 1,000
inhabitants or audience, live or as of any instant (docs/SCORING.md, "Growth over a window")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

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
    MinBaseOut,
    RankingItem,
    RankingsOut,
)
from services.api.queries import Metric, MinBase, RankBy
from services.common.names import Window

router = APIRouter(prefix="/v1/rankings", tags=["rankings"])

MAX_LIMIT = 500
MAX_MIN_FOLLOWERS = 1_000_000_000
MAX_MIN_POPULATION = 100_000_000


def _count_schema(maximum: int) -> Callable[[dict[str, Any]], None]:
    """``json_schema_extra`` of an optional count: an integer in [0, maximum], not ``anyOf [integer,
    null]`` (a query parameter is absent or a number, never null)."""

    def update(schema: dict[str, Any]) -> None:
        schema.pop("anyOf", None)
        schema.update({"type": "integer", "minimum": 0, "maximum": maximum})

    return update


MinFollowersQuery = Annotated[
    int | None,
    Query(
        ge=0,
        le=MAX_MIN_FOLLOWERS,
        description="growth_pct only: the least followers at the window's start a row needs to be ranked "
        "(default: the server's BAROMETRE_RANKING_MIN_FOLLOWERS, 1,000); 0 ranks every row. The value "
        "applied is stated in `min_base`.",
        examples=[1000],
        json_schema_extra=_count_schema(MAX_MIN_FOLLOWERS),
    ),
]
MinPopulationQuery = Annotated[
    int | None,
    Query(
        ge=0,
        le=MAX_MIN_POPULATION,
        description="growth_pct and per_1000_inhabitants: the least population an entity needs to be "
        "ranked (default: the server's BAROMETRE_RANKING_MIN_POPULATION, 2,000); 0 ranks every entity. "
        "growth_pct keeps entities without a known population. The value applied is stated in `min_base`.",
        examples=[2000],
        json_schema_extra=_count_schema(MAX_MIN_POPULATION),
    ),
]

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
    'Relative rankings need a minimum base (docs/SCORING.md, "Minimum base"): growth_pct ranks only rows '
    "with at least `min_followers` followers at the window's start and entities of at least "
    "`min_population` inhabitants (when known), per_1000_inhabitants only entities of at least "
    "`min_population` inhabitants; the minimums applied are stated in `min_base` (null for the metrics "
    "that apply none). "
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
    min_followers: MinFollowersQuery = None,
    min_population: MinPopulationQuery = None,
    format: FormatQuery = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    fmt = negotiate(format, accept)
    category = stratum_category(category, stratum)
    scope = scope_of(category, panel, region, departement, stratum)
    base = MinBase(
        api.settings.ranking_min_followers if min_followers is None else min_followers,
        api.settings.ranking_min_population if min_population is None else min_population,
    )

    def compute() -> Answer[RankingsOut]:
        api.check_scope(scope)
        client = api.client()
        when = now()
        if at is None:
            ranked = queries.rankings_live(
                client,
                api.db,
                platform,
                scope,
                window,
                metric,
                when,
                api.staleness,
                limit,
                by=by,
                min_base=base,
            )
        else:
            ranked = queries.rankings_at(
                client,
                api.db,
                platform,
                scope,
                window,
                metric,
                at,
                api.staleness,
                limit,
                by=by,
                min_base=base,
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
                min_base=MinBaseOut.of(base, metric),
            )
        )

    key = (
        "rankings",
        platform,
        category,
        window,
        metric,
        at,
        region,
        departement,
        panel,
        stratum,
        by,
        limit,
        base,
    )
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
