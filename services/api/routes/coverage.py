"""Coverage: per platform and category, the entities in scope, those with a known account, observed
within the staleness window, stale, never observed; failing accounts with their last errors; the same
per account origin; and whether simulated data are in scope (services/api/coverage.py)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from services.api import coverage
from services.api.deps import ApiDep, FigureQuery, now
from services.api.models import (
    ERROR_RESPONSES,
    PANEL_NOT_FOUND,
    Answer,
    CoverageOut,
    CoverageRow,
    FailureReason,
    OriginCoverage,
)

router = APIRouter(prefix="/v1/coverage", tags=["coverage"])


def _counts(counts: coverage.Counts, failing_known: bool) -> dict[str, Any]:
    # The fields of CoverageCounts, which CoverageRow and OriginCoverage extend.
    return {**asdict(counts), "accounts_failing": counts.accounts_failing if failing_known else None}


def _row(row: coverage.Row) -> CoverageRow:
    failing_known = row.failures is not None
    return CoverageRow(
        platform=row.platform,
        category=row.category,
        entities=row.entities,
        without_account=row.without_account,
        **_counts(row.known, failing_known),
        by_origin=[
            OriginCoverage(origin=origin, **_counts(c, failing_known)) for origin, c in row.by_origin.items()
        ],
        failures=None
        if row.failures is None
        else [FailureReason.model_validate(f, from_attributes=True) for f in row.failures],
    )


@router.get(
    "",
    response_model=CoverageOut,
    responses={**ERROR_RESPONSES, **PANEL_NOT_FOUND},
    summary="How much of the world the figures see",
    description="Per platform and category (each optional: absent, every one), of the panel or the whole "
    "registry: the entities in scope; those with a known account (registered, not deleted, rejected or "
    "gone; or observed without being registered); of those, observed within the staleness window (45 "
    "days) up to `at` (default now), stale (observed, but not within the window), never observed; "
    "accounts whose last poll attempts failed, with the most common reasons and the latest examples "
    "(live only: the poller keeps its current state); the same counts per account origin; and whether "
    "simulated data are in scope. The registry is read as it is now, observations as of `at`.",
)
async def get_coverage(api: ApiDep, q: FigureQuery) -> Response:
    def compute() -> Answer[CoverageOut]:
        api.check_scope(q.scope)
        when = q.at or now()
        found = coverage.coverage(
            api.client(), api.db, q.platform, q.category, q.panel, q.at, when, api.staleness
        )
        return Answer.of(
            CoverageOut(
                platform=q.platform,
                category=q.category,
                panel=q.panel,
                at=when,
                staleness_days=api.settings.staleness_days,
                simulated=found.simulated,
                sources=found.sources,
                items=[_row(r) for r in found.rows],
            )
        )

    return (await api.cached(("coverage", q), compute)).response()
