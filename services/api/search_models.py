"""The answers of the entity search (``GET /v1/entities?q=``) and of an entity's peers
(``GET /v1/entities/{entity_id}/peers``), as the OpenAPI documents them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from services.api.models import FigureCoverage, Instant
from services.api.queries import Metric
from services.api.search import Match
from services.api.strata import Stratum
from services.common.names import Category, Platform, Window


def _example(example: dict[str, JsonValue]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


class EntityMatch(BaseModel):
    entity_id: str = Field(description="KIND:code, as GET /v1/entities/{entity_id} takes it")
    name: str
    category: Category
    population: int | None
    departement: str | None
    region: str | None
    postal_codes: list[str] = Field(description="A commune's postal codes (shipped registry); else empty")
    stratum: Stratum | None = Field(description='Its stratum (docs/SCORING.md, "Strata"); null: none')
    match: Match = Field(
        description="How it matched, best first: code (its code, id or a postal code), name (the whole "
        "name), prefix (the name starts with q), word (a word of the name does), code_prefix (a code or "
        "postal code starts with q), substring; accents, case and punctuation ignored"
    )


class EntitySearchOut(BaseModel):
    """The entities best matching ``q``, best first (then larger population first)."""

    model_config = _example(
        {
            "q": "grenoble",
            "category": None,
            "items": [
                {
                    "entity_id": "COM:38185",
                    "name": "Grenoble",
                    "category": "commune",
                    "population": 156140,
                    "departement": "38",
                    "region": "84",
                    "postal_codes": ["38000", "38100"],
                    "stratum": "commune_100000_plus",
                    "match": "name",
                }
            ],
        }
    )
    q: str = Field(description="The query, as received (blanks around it removed)")
    category: Category | None = Field(description="The category asked for; null: every one")
    items: list[EntityMatch]


class PeerGroup(BaseModel):
    category: Category
    stratum: Stratum | None = Field(
        description="The entity's stratum; null for départements, régions and entities without one"
    )
    region: str | None = Field(description="The entity's région; null for régions (all 18 are peers)")
    size: int = Field(description="Entities in the group, the entity included")
    present: int = Field(description="Of them, present on the platform")
    presence_rate: float | None = Field(description="present / size")


class PeerBest(BaseModel):
    entity_id: str
    name: str
    value: float


class PeersOut(BaseModel):
    """Where an entity stands among its peers (same category, stratum and région) on a platform."""

    model_config = _example(
        {
            "entity_id": "COM:38185",
            "name": "Grenoble",
            "platform": "facebook",
            "metric": "followers",
            "window": "30d",
            "at": None,
            "group": {
                "category": "commune",
                "stratum": "commune_100000_plus",
                "region": "84",
                "size": 4,
                "present": 4,
                "presence_rate": 1.0,
            },
            "value": 98210.0,
            "rank": 2,
            "count": 4,
            "median": 61500.0,
            "best": {"entity_id": "COM:69123", "name": "Lyon", "value": 310000.0},
            "coverage": {"observed": 4, "stale": 0, "missing": 0, "simulated": False},
        }
    )
    entity_id: str
    name: str
    platform: Platform
    metric: Metric
    window: Window = Field(description="The growth window (growth metrics only)")
    at: Instant | None = Field(description="The instant asked for; null: live")
    group: PeerGroup
    value: float | None = Field(description="The entity's value; null when it has none (e.g. absent)")
    rank: int | None = Field(
        description="Its rank among the peers that have a value (1: best); null without value"
    )
    count: int = Field(description="Peers that have a value (the ranked ones), the entity included")
    median: float | None = Field(description="Median value of the ranked peers; null when none")
    best: PeerBest | None = Field(description="The first of the ranked peers")
    coverage: FigureCoverage = Field(description="How many entities of the group barometre observes there")
