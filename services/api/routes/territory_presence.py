"""``GET /v1/presence/territories``: presence by département or by région in one request, for the
dashboard's map (docs/CONTRACT.md, "Presence by territory")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, BeforeValidator, Field

from services.api.deps import ApiDep, AtQuery, PanelQuery, PlatformQuery, choice, now, scope_of
from services.api.models import ERROR_RESPONSES, PANEL_NOT_FOUND, Answer, Instant, _example
from services.api.territory_presence import Level, territory_presence
from services.common.events import DEPARTEMENT_CODE_PATTERN, ENTITY_ID_PATTERN, FOREIGN_CODE_PATTERN
from services.common.names import Platform

# A département's code (38, 2A, 971), which includes every région code (84, 01), or an imported foreign one.
TERRITORY_CODE_PATTERN = f"^(?:{DEPARTEMENT_CODE_PATTERN[1:-1]}|{FOREIGN_CODE_PATTERN[1:-1]})$"

router = APIRouter(prefix="/v1/presence", tags=["presence"])

LevelQuery = Annotated[
    Level,
    BeforeValidator(choice(Level, "level")),
    Query(description="departement (every département of the registry) or region."),
]


class TerritoryPresenceItem(BaseModel):
    """One département or région."""

    code: str = Field(
        pattern=TERRITORY_CODE_PATTERN,
        description="The territory's INSEE code: 38, 2A, 971 for a département; 84, 01 for a région",
        examples=["38"],
    )
    entity_id: str = Field(
        pattern=ENTITY_ID_PATTERN,
        description="The territory's own collectivité (DEP:38, REG:84)",
        examples=["DEP:38"],
    )
    name: str = Field(examples=["Isère"])
    present: int = Field(
        ge=0, description="Communes of the territory in scope present on the platform at `at`"
    )
    total: int = Field(ge=0, description="Communes of the territory in scope: the denominator")
    rate: float | None = Field(ge=0, le=1, description="present / total; null when total is 0")
    entity_present: bool | None = Field(
        description="Whether the territory's own collectivité (`entity_id`) is present on the platform at "
        "`at`; null when `panel` is named and the collectivité is not in it"
    )


class TerritoryPresenceOut(BaseModel):
    """Presence of the communes of each département or région, and of the territory's own collectivité."""

    model_config = _example(
        {
            "platform": "facebook",
            "level": "departement",
            "panel": None,
            "at": "2026-03-01T00:00:00Z",
            "items": [
                {
                    "code": "01",
                    "entity_id": "DEP:01",
                    "name": "Ain",
                    "present": 112,
                    "total": 392,
                    "rate": 0.2857,
                    "entity_present": True,
                },
                {
                    "code": "2A",
                    "entity_id": "DEP:2A",
                    "name": "Corse-du-Sud",
                    "present": 0,
                    "total": 124,
                    "rate": 0.0,
                    "entity_present": False,
                },
            ],
        }
    )
    platform: Platform
    level: Level
    panel: str | None = Field(description="null: every commune of the registry")
    at: Instant = Field(description="The instant of the figures (now when not asked for)")
    items: list[TerritoryPresenceItem] = Field(
        description="Every territory of `level` in the registry (overseas included), sorted by code"
    )


@router.get(
    "/territories",
    response_model=TerritoryPresenceOut,
    responses={**ERROR_RESPONSES, **PANEL_NOT_FOUND},
    summary="Presence by département or région",
    description="For each département (`level=departement`) or région (`level=region`) of the registry: "
    "its communes present on `platform` at `at` (default now) out of its communes in scope (those of "
    "`panel` when named, else every commune of the registry), and whether the territory's own "
    "collectivité is present. Presence is GET /v1/presence's definition. One query; the dashboard's map.",
)
async def get_territory_presence(
    api: ApiDep,
    platform: PlatformQuery,
    level: LevelQuery = Level.DEPARTEMENT,
    at: AtQuery = None,
    panel: PanelQuery = None,
) -> Response:
    def compute() -> Answer[TerritoryPresenceOut]:
        api.check_scope(scope_of(None, panel))
        when = at or now()
        rows = territory_presence(api.client(), api.db, platform, level, panel, when)
        items = [
            TerritoryPresenceItem(
                code=r.code,
                entity_id=r.entity_id,
                name=r.name,
                present=r.present,
                total=r.total,
                rate=r.rate,
                entity_present=r.entity_present,
            )
            for r in rows
        ]
        return Answer.of(
            TerritoryPresenceOut(platform=platform, level=level, panel=panel, at=when, items=items)
        )

    key = ("presence-territories", platform, level, at, panel)
    return (await api.cached(key, compute)).response()
