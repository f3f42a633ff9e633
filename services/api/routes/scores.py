"""Scores: the good-practice score (docs/SCORING.md, formula ``score/1``) averaged over a scope."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from services.api import queries
from services.api.deps import ApiDep, FigureQuery, now
from services.api.models import ERROR_RESPONSES, PANEL_NOT_FOUND, Answer, ScoresOut
from services.common.names import SCORE_FORMULA

router = APIRouter(prefix="/v1/scores", tags=["scores"])


@router.get(
    "",
    response_model=ScoresOut,
    responses={**ERROR_RESPONSES, **PANEL_NOT_FOUND},
    summary="Average good-practice score",
    description="The good-practice score (0 to 5) averaged over the accounts in scope that have one. "
    "Live without `at` (accounts observed in the last 45 days, at their latest point); with `at`, each "
    "account's score at its point in force at that instant.",
)
async def get_scores(api: ApiDep, q: FigureQuery) -> Response:
    def compute() -> Answer[ScoresOut]:
        api.check_scope(q.scope)
        summary = queries.scores(api.client(), api.db, q.platform, q.scope, q.at, now(), api.staleness)
        average = None if summary.average is None else round(summary.average, 4)
        return Answer.of(
            ScoresOut(
                platform=q.platform,
                category=q.category,
                panel=q.panel,
                at=q.at,
                score=average,
                count=summary.count,
                formula=SCORE_FORMULA,
            )
        )

    return (await api.cached(("scores", q), compute)).response()
