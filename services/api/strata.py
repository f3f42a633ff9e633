"""Strata: communes by population band and EPCI by legal nature, as the field reports presence
(docs/SCORING.md, "Strata").

Commune bands read the population of the registry in ClickHouse (an imported override counts); an
EPCI's nature is the shipped registry's (``entity_extras.csv.gz``), so an EPCI a user imports belongs to
no stratum. Départements and régions have no strata: there are 101 and 18 of them, each its own class.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from services.common.names import Category
from services.common.reference.extras import EpciKind, epci_ids, extras_by_id


class Stratum(StrEnum):
    COMMUNE_LT_3500 = "commune_lt_3500"
    COMMUNE_3500_19999 = "commune_3500_19999"
    COMMUNE_20000_99999 = "commune_20000_99999"
    COMMUNE_100000_PLUS = "commune_100000_plus"
    METROPOLE = "metropole"
    COMMUNAUTE_URBAINE = "communaute_urbaine"
    COMMUNAUTE_AGGLOMERATION = "communaute_agglomeration"
    COMMUNAUTE_COMMUNES = "communaute_communes"

    @property
    def category(self) -> Category:
        return Category.COMMUNE if self.value.startswith("commune_") else Category.EPCI

    @property
    def label(self) -> str:
        """Its French name, as the dashboard shows it."""
        return _LABELS[self]

    def condition(self) -> tuple[str, dict[str, Any]]:
        """SQL on the ``entities`` table (unqualified columns) selecting the stratum, and its parameters."""
        if self in _BANDS:
            band = _BANDS[self]
            params: dict[str, Any] = {"stratum_min": band.low}
            sql = "category = 'commune' AND population >= {stratum_min:UInt64}"
            if band.high is not None:
                sql += " AND population <= {stratum_max:UInt64}"
                params["stratum_max"] = band.high
            return sql, params
        return (
            "category = 'epci' AND entity_id IN {stratum_ids:Array(String)}",
            {"stratum_ids": list(epci_ids(EpciKind(self.value)))},
        )


@dataclass(frozen=True)
class Band:
    """Populations from ``low`` to ``high`` included (no upper bound when None)."""

    low: int
    high: int | None


_BANDS = {
    Stratum.COMMUNE_LT_3500: Band(0, 3_499),
    Stratum.COMMUNE_3500_19999: Band(3_500, 19_999),
    Stratum.COMMUNE_20000_99999: Band(20_000, 99_999),
    Stratum.COMMUNE_100000_PLUS: Band(100_000, None),
}
_LABELS = {
    Stratum.COMMUNE_LT_3500: "Communes de moins de 3 500 habitants",
    Stratum.COMMUNE_3500_19999: "Communes de 3 500 à 19 999 habitants",
    Stratum.COMMUNE_20000_99999: "Communes de 20 000 à 99 999 habitants",
    Stratum.COMMUNE_100000_PLUS: "Communes de 100 000 habitants et plus",
    Stratum.METROPOLE: "Métropoles",
    Stratum.COMMUNAUTE_URBAINE: "Communautés urbaines",
    Stratum.COMMUNAUTE_AGGLOMERATION: "Communautés d'agglomération",
    Stratum.COMMUNAUTE_COMMUNES: "Communautés de communes",
}

STRATA_DOC = (
    'Only the entities of one stratum (docs/SCORING.md, "Strata"): communes by population '
    "(INSEE's population municipale): commune_lt_3500 (under 3,500), commune_3500_19999, "
    "commune_20000_99999, commune_100000_plus (100,000 and more); EPCI by legal nature: metropole "
    "(the Métropole de Lyon included), communaute_urbaine, communaute_agglomeration, communaute_communes. "
    "A stratum implies its category (commune or epci); another `category` with it is a 422."
)


def stratum_of(entity_id: str, category: str, population: int | None) -> Stratum | None:
    """The stratum of an entity: its band for a commune with a population, its nature for a shipped
    EPCI, None otherwise (départements, régions, entities without a population or nature)."""
    if category == Category.COMMUNE.value:
        if population is None:
            return None
        for stratum, band in _BANDS.items():
            if population >= band.low and (band.high is None or population <= band.high):
                return stratum
        return None
    if category == Category.EPCI.value:
        extras = extras_by_id().get(entity_id)
        if extras is not None and extras.epci_kind is not None:
            return Stratum(extras.epci_kind.value)
    return None
