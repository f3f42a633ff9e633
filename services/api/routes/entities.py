"""One entity: its registry row and its accounts per platform, with their latest figures, presence now
and score."""

from __future__ import annotations

from collections import defaultdict

from fastapi import APIRouter
from fastapi.responses import Response

from services.api import queries
from services.api.deps import ApiDep, EntityIdPath, entity_id_of, now
from services.api.models import (
    ERROR_RESPONSES,
    NOT_FOUND,
    Answer,
    EntityAccount,
    EntityOut,
    EntityPlatform,
)
from services.common.names import SCORE_FORMULA, Platform
from services.common.web import ApiError

router = APIRouter(prefix="/v1/entities", tags=["entities"])


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _account(a: queries.AccountFigures) -> EntityAccount:
    return EntityAccount(
        account_id=a.account_id,
        handle=a.handle,
        registered=a.registered,
        observed_at=a.observed_at,
        followers=a.followers,
        status=a.status,
        fresh=a.fresh,
        present=a.present,
        score=None if a.score is None else round(a.score, 4),
        formula=a.score_formula,
        posts_30d=a.posts_30d,
        followers_before=dict(a.before or {}),
    )


@router.get(
    "/{entity_id}",
    response_model=EntityOut,
    responses={**ERROR_RESPONSES, **NOT_FOUND},
    summary="One entity with its accounts",
    description="The registry row of `entity_id` (KIND:code, e.g. COM:38185), its accounts on each "
    "platform with their latest figures, whether it is present there now, and its average score. "
    "Platform sums and scores count only fresh accounts (observed in the last 45 days).",
)
async def get_entity(
    api: ApiDep,
    entity_id: EntityIdPath,
) -> Response:
    entity_id = entity_id_of(entity_id)

    def compute() -> Answer[EntityOut]:
        client = api.client()
        row = queries.entity(client, api.db, entity_id)
        if row is None:
            raise ApiError(404, "not_found", f"unknown entity {entity_id!r}")
        accounts = queries.entity_accounts(client, api.db, entity_id, now(), api.staleness)
        by_platform: dict[str, list[queries.AccountFigures]] = defaultdict(list)
        for a in accounts:
            by_platform[a.platform].append(a)
        platforms = []
        for name, group in by_platform.items():
            fresh = [a for a in group if a.fresh]
            platforms.append(
                EntityPlatform(
                    platform=Platform(name),
                    present=any(a.present for a in group),
                    followers=sum(a.followers or 0 for a in fresh) if fresh else None,
                    score=_mean([a.score for a in fresh if a.score is not None]),
                    accounts=[_account(a) for a in group],
                )
            )
        return Answer.of(
            EntityOut(
                entity_id=row.entity_id,
                name=row.name,
                category=row.category,
                population=row.population,
                departement=row.departement,
                region=row.region,
                source=row.source,
                present_on=[p.platform for p in platforms if p.present],
                score=_mean([a.score for a in accounts if a.fresh and a.score is not None]),
                formula=SCORE_FORMULA,
                platforms=platforms,
            )
        )

    return (await api.cached(("entity", entity_id), compute)).response()
