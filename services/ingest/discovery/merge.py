"""Merging what the sources named with what is registered: pure, so every rule is tested alone.

Rules (docs/CONTRACT.md, "Discovering accounts"):

- Candidates are grouped by account id: several sources (or several rows of one source) naming the same
  account for the same entity are one account, with one provenance row per (source, entity).
- **An account claimed by several entities** is a conflict: it is not registered (nor changed), and
  its provenance rows, one per entity, are the evidence.
- **An entity with several accounts on one platform**, counting the accounts named now and those
  already registered (not rejected, gone or deleted), is a conflict when at least one of them would be
  newly registered: the new ones are held back. Sources are never guessed between; a person settles
  it (``barometre accounts reject`` for the wrong one, ``barometre import accounts`` for the right one).
  Once every account involved is registered, a person has decided, and nothing is reported.
- **A registered account whose origin is not ``discover``** (imported: a person's word; pushed,
  polled, simulated) is never rewritten: discovery only adds its provenance; an entity disagreement
  with it is a conflict. Accounts discovery registered earlier are updated when the sources change;
  rejected and gone ones keep their state.
- New accounts come in as ``candidate``; a candidate the platform confirmed becomes ``verified`` with
  its stable id, one the platform says does not exist becomes ``rejected`` with the reason.
- Re-running with the same answers writes no account row (only provenance ``last_seen`` moves on).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from services.common.accounts import AccountRow, SourceRow
from services.common.links import Link
from services.common.names import AccountOrigin, AccountState, Category
from services.ingest.discovery.model import Candidate
from services.ingest.discovery.verify import VERIFIABLE, Verdict, Verification

_INACTIVE = {AccountState.REJECTED.value, AccountState.GONE.value}


class Status(StrEnum):
    """What discovery did with one account."""

    NEW = "new"  # registered now
    CHANGED = "changed"  # registered by discovery before; its row changed
    UNCHANGED = "unchanged"
    KEPT = "kept"  # registered otherwise (imported...) or rejected/gone: provenance only
    CONFLICT = "conflict"  # held back: see the conflicts


class ConflictKind(StrEnum):
    SEVERAL_ENTITIES = "several_entities"  # one account named for several entities
    SEVERAL_ACCOUNTS = "several_accounts"  # one entity, several accounts on one platform
    REGISTERED_ELSEWHERE = "registered_elsewhere"  # registered (not by discovery) for another entity


@dataclass(frozen=True, slots=True)
class Conflict:
    kind: ConflictKind
    platform: str
    account_ids: tuple[str, ...]
    entity_ids: tuple[str, ...]
    detail: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """One account (for one entity, when claimed by several) as the report shows it."""

    account_id: str
    platform: str
    entity_id: str
    status: Status
    state: str
    handle: str | None
    url: str | None
    sources: tuple[str, ...]
    unverifiable: str | None = None  # why it could not be verified, when it could not
    detail: str = ""

    @property
    def category(self) -> Category:
        return Category.of_entity_id(self.entity_id)


@dataclass
class Group:
    """All candidates naming one account."""

    account_id: str
    link: Link  # the first candidate's link (sources in a stable order)
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def entities(self) -> list[str]:
        return sorted({c.entity_id for c in self.candidates})

    def sources(self, entity_id: str | None = None) -> tuple[str, ...]:
        return tuple(
            sorted({c.source.value for c in self.candidates if entity_id is None or c.entity_id == entity_id})
        )


@dataclass
class Analysis:
    groups: dict[str, Group]
    conflicts: list[Conflict]
    held: set[str]  # account ids not registered because of a conflict


@dataclass
class Plan:
    accounts: list[AccountRow]  # rows to write
    sources: list[SourceRow]  # provenance rows to write
    outcomes: list[Outcome]
    conflicts: list[Conflict]


def _order(c: Candidate) -> tuple[str, str, str, str]:
    return (c.source.value, c.entity_id, c.reference, c.given)


def group(candidates: Iterable[Candidate]) -> dict[str, Group]:
    """Candidates by account id, each group's candidates in a stable order."""
    groups: dict[str, Group] = {}
    for candidate in sorted(candidates, key=_order):
        account_id = candidate.link.account_id
        if account_id not in groups:
            groups[account_id] = Group(account_id, candidate.link)
        groups[account_id].candidates.append(candidate)
    return groups


def _active(row: AccountRow | None) -> bool:
    return row is not None and not row.deleted and row.state not in _INACTIVE


def analyse(candidates: Iterable[Candidate], existing: Mapping[str, AccountRow]) -> Analysis:
    """Group the candidates and find the conflicts (which accounts are held back, and why)."""
    groups = group(candidates)
    conflicts: list[Conflict] = []
    held: set[str] = set()
    for account_id, g in groups.items():
        entities = g.entities
        row = existing.get(account_id)
        platform = g.link.platform.value
        if row is not None and not row.deleted and row.state in _INACTIVE:
            continue  # a person rejected it (or it is gone): whatever sources say, it stays out
        if len(entities) > 1:
            held.add(account_id)
            named = "; ".join(f"{e} by {', '.join(g.sources(e))}" for e in entities)
            conflicts.append(
                Conflict(
                    ConflictKind.SEVERAL_ENTITIES,
                    platform,
                    (account_id,),
                    tuple(entities),
                    f"named for {named}",
                )
            )
        elif (
            row is not None
            and not row.deleted
            and row.origin != AccountOrigin.DISCOVER.value
            and row.entity_id != entities[0]
        ):
            held.add(account_id)
            conflicts.append(
                Conflict(
                    ConflictKind.REGISTERED_ELSEWHERE,
                    platform,
                    (account_id,),
                    (row.entity_id, entities[0]),
                    f"registered ({row.origin}) for {row.entity_id}, named by {', '.join(g.sources())} "
                    f"for {entities[0]}",
                )
            )
    # One entity, one platform: the accounts named now (not already held) and those registered.
    by_pair: dict[tuple[str, str], set[str]] = defaultdict(set)
    for account_id, g in groups.items():
        row = existing.get(account_id)
        if account_id not in held and (row is None or row.deleted or row.state not in _INACTIVE):
            by_pair[(g.entities[0], g.link.platform.value)].add(account_id)
    pairs = set(by_pair)
    for row in existing.values():
        if _active(row) and (row.entity_id, row.platform) in pairs:
            by_pair[(row.entity_id, row.platform)].add(row.account_id)
    for (entity_id, platform), accounts in sorted(by_pair.items()):
        if len(accounts) < 2:
            continue
        new = {a for a in accounts if existing.get(a) is None or existing[a].deleted}
        if not new:
            continue  # every one is registered: a person (or an earlier run) has settled it
        held |= new
        described = []
        for a in sorted(accounts):
            if a in groups:
                described.append(f"{a} ({', '.join(groups[a].sources())})")
            else:
                described.append(f"{a} (registered, {existing[a].origin})")
        conflicts.append(
            Conflict(
                ConflictKind.SEVERAL_ACCOUNTS,
                platform,
                tuple(sorted(accounts)),
                (entity_id,),
                f"{entity_id} has {len(accounts)} {platform} accounts: {', '.join(described)}",
            )
        )
    return Analysis(groups, conflicts, held)


def needs_verification(analysis: Analysis, existing: Mapping[str, AccountRow]) -> list[Link]:
    """Links of the accounts that would be registered as candidates, on platforms that can confirm them."""
    out: list[Link] = []
    for account_id, g in analysis.groups.items():
        if account_id in analysis.held or g.link.platform not in VERIFIABLE:
            continue
        row = existing.get(account_id)
        if (
            row is None
            or row.deleted
            or (row.origin == AccountOrigin.DISCOVER.value and row.state == AccountState.CANDIDATE.value)
        ):
            out.append(g.link)
    return out


def _provenance(
    g: Group, first_seen: Mapping[tuple[str, str, str], datetime], now: datetime
) -> list[SourceRow]:
    by_key: dict[tuple[str, str, str], list[Candidate]] = defaultdict(list)
    for c in g.candidates:
        by_key[(g.account_id, c.source.value, c.entity_id)].append(c)
    rows = []
    for key, named in sorted(by_key.items()):
        first = named[0]
        rows.append(
            SourceRow(
                account_id=g.account_id,
                source=key[1],
                entity_id=key[2],
                platform=g.link.platform.value,
                handle=first.link.handle,
                url=first.given,
                reference=",".join(sorted({c.reference for c in named})),
                first_seen=first_seen.get(key, now),
                last_seen=now,
            )
        )
    return rows


def _verified(
    row: AccountRow, verification: Verification | None, now: datetime
) -> tuple[AccountRow, str | None]:
    """``row`` after the platform's verdict; the second item says why it stays unverified, if it does."""
    if row.state != AccountState.CANDIDATE.value:
        return row, None
    if verification is None:
        return row, None
    if verification.verdict is Verdict.VERIFIED:
        return (
            replace(
                row,
                state=AccountState.VERIFIED.value,
                platform_id=verification.platform_id,
                verified_at=now,
                handle=verification.handle or row.handle,
                state_reason=verification.detail,
            ),
            None,
        )
    if verification.verdict is Verdict.NOT_FOUND:
        return replace(row, state=AccountState.REJECTED.value, state_reason=verification.detail), None
    return row, verification.detail


def plan(
    analysis: Analysis,
    existing: Mapping[str, AccountRow],
    first_seen: Mapping[tuple[str, str, str], datetime],
    verifications: Mapping[str, Verification],
    now: datetime,
) -> Plan:
    """What to write and what to report, given the analysis and the platforms' verdicts."""
    result = Plan(accounts=[], sources=[], outcomes=[], conflicts=list(analysis.conflicts))
    for account_id, g in sorted(analysis.groups.items()):
        result.sources.extend(_provenance(g, first_seen, now))
        link = g.link
        platform = link.platform.value
        if account_id in analysis.held:
            for entity_id in g.entities:
                result.outcomes.append(
                    Outcome(
                        account_id,
                        platform,
                        entity_id,
                        Status.CONFLICT,
                        "conflict",
                        link.handle,
                        link.url,
                        g.sources(entity_id),
                    )
                )
            continue
        entity_id = g.entities[0]
        row = existing.get(account_id)
        sources = g.sources()
        if (
            row is not None
            and not row.deleted
            and (row.origin != AccountOrigin.DISCOVER.value or row.state in _INACTIVE)
        ):
            result.outcomes.append(
                Outcome(
                    account_id,
                    platform,
                    entity_id,
                    Status.KEPT,
                    row.state,
                    row.handle,
                    row.url,
                    sources,
                    detail=f"registered ({row.origin}, {row.state}): provenance only",
                )
            )
            continue
        if row is None or row.deleted:
            status = Status.NEW
            base = AccountRow(
                account_id=account_id,
                platform=platform,
                entity_id=entity_id,
                handle=link.handle,
                url=link.url,
                origin=AccountOrigin.DISCOVER.value,
                state=AccountState.CANDIDATE.value,
                platform_id=link.platform_id,
                discovered_at=now,
            )
        else:
            status = Status.CHANGED
            base = replace(
                row,
                entity_id=entity_id,
                # A verified account keeps the handle the platform gave; the link may lag a rename.
                handle=row.handle if row.state == AccountState.VERIFIED.value else link.handle,
                url=link.url,
                platform_id=row.platform_id or link.platform_id,
            )
        updated, unverifiable = _verified(base, verifications.get(account_id), now)
        if status is Status.CHANGED and updated == row:
            status = Status.UNCHANGED
        else:
            result.accounts.append(updated)
        result.outcomes.append(
            Outcome(
                account_id,
                platform,
                entity_id,
                status,
                updated.state,
                updated.handle,
                updated.url,
                sources,
                unverifiable=unverifiable,
                detail=updated.state_reason,
            )
        )
    return result


def first_seen_of(rows: Sequence[SourceRow]) -> dict[tuple[str, str, str], datetime]:
    """(account, source, entity) → when that source first named it, from the stored provenance."""
    return {(r.account_id, r.source, r.entity_id): r.first_seen for r in rows}
