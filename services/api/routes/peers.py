"""Where an entity stands among its peers: ``GET /v1/entities/{entity_id}/peers`` (docs/SCORING.md,
"Strata" and "Peers")."""

from __future__ import annotations

import statistics

from fastapi import APIRouter
from fastapi.responses import Response

from services.api import coverage, queries
from services.api.deps import (
    ApiDep,
    AtQuery,
    EntityIdPath,
    MetricQuery,
    PlatformQuery,
    WindowQuery,
    entity_id_of,
    now,
)
from services.api.models import ERROR_RESPONSES, NOT_FOUND, Answer, FigureCoverage
from services.api.queries import Metric, Scope
from services.api.search_models import PeerBest, PeerGroup, PeersOut
from services.api.strata import stratum_of
from services.common.names import Category, Window
from services.common.web import ApiError

router = APIRouter(prefix="/v1/entities", tags=["entities"])

# Every peer is ranked: the largest group (communes under 3,500 of one région) holds ~4,500 entities.
MAX_PEERS = 100_000


def peer_scope(category: Category, region: str | None, entity_id: str, population: int | None) -> Scope:
    """The peers of an entity: its category, its stratum (when it has one) and its région (when it has
    one; not for a région, whose peers are the other régions)."""
    stratum = stratum_of(entity_id, category.value, population)
    return Scope(category, None, None if category is Category.REGION else region, None, stratum)


@router.get(
    "/{entity_id}/peers",
    response_model=PeersOut,
    responses={**ERROR_RESPONSES, **NOT_FOUND},
    summary="Where an entity stands among its peers",
    description="The entity's peers are the entities of its category, its stratum (population band of "
    'a commune, nature of an EPCI; docs/SCORING.md, "Strata") and its région (every région for a '
    "région). On `platform`, by `metric` (as in GET /v1/rankings, live or as of `at`): the entity's "
    "value and rank among the peers that have a value, their count, median and best, and how many "
    "peers are present there.",
)
async def get_peers(
    api: ApiDep,
    entity_id: EntityIdPath,
    platform: PlatformQuery,
    metric: MetricQuery = Metric.FOLLOWERS,
    window: WindowQuery = Window.D30,
    at: AtQuery = None,
) -> Response:
    entity_id = entity_id_of(entity_id)

    def compute() -> Answer[PeersOut]:
        client = api.client()
        row = queries.entity(client, api.db, entity_id)
        if row is None:
            raise ApiError(404, "not_found", f"unknown entity {entity_id!r}")
        category = Category(row.category)
        scope = peer_scope(category, row.region, row.entity_id, row.population)
        when = now()
        if at is None:
            ranked = queries.rankings_live(
                client, api.db, platform, scope, window, metric, when, api.staleness, MAX_PEERS
            )
        else:
            ranked = queries.rankings_at(
                client, api.db, platform, scope, window, metric, at, api.staleness, MAX_PEERS
            )
        mine = next((r for r in ranked if r.entity_id == row.entity_id), None)
        present = queries.presence(client, api.db, [platform], scope, at or when)
        seen = coverage.summary(client, api.db, [platform], scope, at, when, api.staleness)
        return Answer.of(
            PeersOut(
                entity_id=row.entity_id,
                name=row.name,
                platform=platform,
                metric=metric,
                window=window,
                at=at,
                group=PeerGroup(
                    category=category,
                    stratum=scope.stratum,
                    region=scope.region,
                    size=present.total,
                    present=present.present,
                    presence_rate=present.rate,
                ),
                value=None if mine is None else mine.value,
                rank=None if mine is None else mine.rank,
                count=len(ranked),
                median=statistics.median(r.value for r in ranked) if ranked else None,
                best=PeerBest(entity_id=ranked[0].entity_id, name=ranked[0].name, value=ranked[0].value)
                if ranked
                else None,
                coverage=FigureCoverage.of(seen),
            )
        )

    return (await api.cached(("peers", entity_id, platform, metric, window, at), compute)).response()
