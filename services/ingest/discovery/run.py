"""``barometre discover``: read the sources, verify, merge with the registry, write (unless dry), report."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from clickhouse_connect.driver.client import Client

from services.common import accounts
from services.common.registry import user_version
from services.common.settings import Settings
from services.ingest.discovery import merge
from services.ingest.discovery.annuaire import harvest_annuaire
from services.ingest.discovery.http import Fetcher
from services.ingest.discovery.model import EntityIndex, Harvest
from services.ingest.discovery.report import Report, build, write_csv
from services.ingest.discovery.verify import Verification, verify_links
from services.ingest.discovery.wikidata import harvest_wikidata


class SourceChoice(StrEnum):
    WIKIDATA = "wikidata"
    ANNUAIRE = "annuaire"
    ALL = "all"


@dataclass(frozen=True)
class DiscoverOptions:
    source: SourceChoice = SourceChoice.ALL
    dry_run: bool = False
    verify: bool = True
    out: Path | None = None


@dataclass
class DiscoverResult:
    plan: merge.Plan
    harvests: list[Harvest]
    report: Report


def entity_index(client: Client, db: str) -> EntityIndex:
    known, departement, region = accounts.entity_areas(client, db)
    return EntityIndex(frozenset(known), departement, region)


async def _harvest(
    settings: Settings, fetcher: Fetcher, entities: EntityIndex, source: SourceChoice
) -> list[Harvest]:
    harvests = []
    # One source after the other: each registry sees one client, asking one thing at a time.
    if source in (SourceChoice.WIKIDATA, SourceChoice.ALL):
        harvests.append(await harvest_wikidata(fetcher, settings, entities))
    if source in (SourceChoice.ANNUAIRE, SourceChoice.ALL):
        harvests.append(await harvest_annuaire(fetcher, settings, entities))
    return harvests


def discover(
    settings: Settings,
    client: Client,
    options: DiscoverOptions,
    *,
    fetcher_factory: Callable[[Settings], Fetcher] = Fetcher,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DiscoverResult:
    """One discovery run against the configured sources and the registry in ClickHouse."""
    db = settings.clickhouse_database
    entities = entity_index(client, db)
    existing = accounts.read_accounts(client, db)

    async def gather() -> tuple[list[Harvest], merge.Analysis, dict[str, Verification]]:
        async with fetcher_factory(settings) as fetcher:
            harvests = await _harvest(settings, fetcher, entities, options.source)
            analysis = merge.analyse([c for h in harvests for c in h.candidates], existing)
            verifications: dict[str, Verification] = {}
            if options.verify:
                verifications = await verify_links(
                    settings, fetcher, merge.needs_verification(analysis, existing)
                )
            return harvests, analysis, verifications

    harvests, analysis, verifications = asyncio.run(gather())
    first_seen = merge.first_seen_of(accounts.read_sources(client, db))
    plan = merge.plan(analysis, existing, first_seen, verifications, now())
    if not options.dry_run:
        version = user_version()
        accounts.write_sources(client, db, plan.sources, version)
        accounts.write_accounts(client, db, plan.accounts, version)
    if options.out is not None:
        write_csv(plan, options.out)
    return DiscoverResult(plan, harvests, build(plan, harvests, dry_run=options.dry_run))


def incomplete(harvests: Sequence[Harvest]) -> bool:
    """Whether a source could not be read to its end (the exit status says so)."""
    return any(h.failed for h in harvests)
