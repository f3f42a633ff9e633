"""Coverage: per platform and category, the entities in scope, those with a known account, observed
within the staleness window, stale, never observed; failing accounts with their last errors; the same
per account origin; and whether simulated data are in scope (services/api/coverage.py)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from services.api import coverage
from services.api.deps import ApiDep, AtQuery, CategoryQuery, OptionalPlatformQuery, PanelQuery, now, scope_of
from services.api.models import (
    ERROR_RESPONSES,
    Answer,
    CoverageCounts,
    CoverageOut,
    CoverageRow,
    FailureExample,
    FailureReason,
    OriginCoverage,
)

router = APIRouter(prefix="/v1/coverage", tags=["coverage"])


def _counts(counts: coverage.Counts, failing_known: bool) -> CoverageCounts:
    return CoverageCounts(
        with_account=counts.entities,
        observed=counts.observed,
        stale=counts.stale,
        never_observed=counts.never_observed,
        accounts=counts.accounts,
        accounts_observed=counts.accounts_observed,
        accounts_stale=counts.accounts_stale,
        accounts_never_observed=counts.accounts_never_observed,
        accounts_failing=counts.accounts_failing if failing_known else None,
    )


def _row(row: coverage.Row) -> CoverageRow:
    failing_known = row.failures is not None
    return CoverageRow(
        platform=row.platform,
        category=row.category,
        entities=row.entities,
        without_account=row.without_account,
        **_counts(row.known, failing_known).model_dump(),
        by_origin=[
            OriginCoverage(origin=origin, **_counts(c, failing_known).model_dump())
            for origin, c in row.by_origin.items()
        ],
        failures=None
        if row.failures is None
        else [
            FailureReason(
                reason=f.reason,
                accounts=f.accounts,
                examples=[FailureExample.model_validate(e, from_attributes=True) for e in f.examples],
            )
            for f in row.failures
        ],
    )


@router.get(
    "",
    response_model=CoverageOut,
    responses=ERROR_RESPONSES,
    summary="How much of the world the figures see",
    description="Per platform and category (each optional: absent, every one), of the panel or the whole "
    "registry: the entities in scope; those with a known account (registered, not deleted, rejected or "
    "gone; or observed without being registered); of those, observed within the staleness window (45 "
    "days) up to `at` (default now), stale (observed, but not within the window), never observed; "
    "accounts whose last poll attempts failed, with the most common reasons and the latest examples "
    "(live only: the poller keeps its current state); the same counts per account origin; and whether "
    "simulated data are in scope. The registry is read as it is now, observations as of `at`.",
)
async def get_coverage(
    api: ApiDep,
    platform: OptionalPlatformQuery = None,
    category: CategoryQuery = None,
    at: AtQuery = None,
    panel: PanelQuery = None,
) -> Response:
    def compute() -> Answer[CoverageOut]:
        api.check_scope(scope_of(category, panel))
        when = at or now()
        found = coverage.coverage(api.client(), api.db, platform, category, panel, at, when, api.staleness)
        return Answer.of(
            CoverageOut(
                platform=platform,
                category=category,
                panel=panel,
                at=when,
                staleness_days=api.settings.staleness_days,
                simulated=found.simulated,
                sources=found.sources,
                items=[_row(r) for r in found.rows],
            )
        )

    return (await api.cached(("coverage", platform, category, at, panel), compute)).response()
