"""What discovery's sources produce and share: candidates, reported issues, the registry's entities.

A :class:`Candidate` is one source naming one account for one entity: the normalised
:class:`~services.common.links.Link`, the text as the source gave it (kept as provenance), and the
source's own reference for the statement (a Wikidata item id, an annuaire record id).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from services.common.links import Link


class DiscoverySource(StrEnum):
    """A public registry discovery reads (``account_sources.source``)."""

    WIKIDATA = "wikidata"
    ANNUAIRE = "annuaire"


@dataclass(frozen=True, slots=True)
class Candidate:
    """``source`` names the account ``link`` as belonging to ``entity_id``."""

    source: DiscoverySource
    entity_id: str
    link: Link
    given: str  # the link as the source wrote it
    reference: str  # Wikidata item (Q-id) or annuaire record id


@dataclass(frozen=True, slots=True)
class Issue:
    """A row of a source that could not be used, and why; reported, never fatal."""

    source: DiscoverySource
    reference: str
    reason: str


@dataclass
class Harvest:
    """Everything one source gave: candidates, unusable rows, and counts of what was left out on purpose."""

    source: DiscoverySource
    candidates: list[Candidate] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # reason → rows (unknown entity, annexe...)
    requests: int = 0
    failed: str | None = None  # why the source could not be read to its end, if it could not

    def issue(self, reference: str, reason: str) -> None:
        self.issues.append(Issue(self.source, reference, reason))


@dataclass(frozen=True)
class EntityIndex:
    """The registry's entities as discovery needs them: which ids exist, and where each commune lies.

    ``departement`` / ``region`` map a commune id to its département and région codes, so that an
    office registered at its seat's INSEE code (a conseil départemental at its préfecture) is matched to
    the collectivité it serves.
    """

    known: frozenset[str]
    departement: Mapping[str, str] = field(default_factory=dict)
    region: Mapping[str, str] = field(default_factory=dict)

    def __contains__(self, entity_id: object) -> bool:
        return entity_id in self.known
