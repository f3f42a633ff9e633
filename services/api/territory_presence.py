"""Presence by territory, for the dashboard's map: for every département or région of the registry, the
communes of that territory present on a platform at an instant out of its communes in scope, and whether
the territory's own collectivité (``DEP:38``, ``REG:84``) is present. One query (docs/CONTRACT.md,
``GET /v1/presence/territories``); presence is :func:`services.api.queries.presence`'s definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from clickhouse_connect.driver.client import Client

from services.api.queries import DATETIME, Scope
from services.common.names import Category, Platform, Table


class Level(StrEnum):
    """Which territories: départements or régions."""

    DEPARTEMENT = "departement"
    REGION = "region"


@dataclass(frozen=True)
class TerritoryPresence:
    code: str
    entity_id: str
    name: str
    present: int  # communes present
    total: int  # communes in scope
    entity_present: bool | None  # None: a panel was named and the territory's entity is not in it

    @property
    def rate(self) -> float | None:
        return None if self.total == 0 else self.present / self.total


def territory_presence(
    client: Client, db: str, platform: Platform, level: Level, panel: str | None, at: datetime
) -> list[TerritoryPresence]:
    """Every territory of ``level`` in the registry, sorted by code, with its communes present on
    ``platform`` at ``at`` (the communes of ``panel`` when named, else all of the registry's) and its
    own entity's presence."""
    column = level.value  # the entities table's column of that territory's code (allow-listed above)
    communes, params = Scope(Category.COMMUNE, panel).conditions(db)
    params.update({"platform": platform.value, "at": at, "level": level.value})
    present = (
        f"SELECT entity_id FROM {db}.{Table.PRESENCE} FINAL "
        "WHERE platform = {platform:String} "
        f"AND arrayExists((s, e) -> s <= {{at:{DATETIME}}} AND {{at:{DATETIME}}} < e, starts, ends)"
    )
    in_panel = "1"
    if panel:
        in_panel = (
            f"t.entity_id IN (SELECT entity_id FROM {db}.{Table.PANELS} FINAL "
            "WHERE panel = {panel:String} AND removed = 0)"
        )
    sql = f"""
        SELECT t.code, t.entity_id, t.name, c.total, c.present, t.entity_id IN ({present}), {in_panel}
        FROM (
            SELECT assumeNotNull({column}) AS code, entity_id, name FROM {db}.{Table.ENTITIES} FINAL
            WHERE category = {{level:String}} AND {column} IS NOT NULL
        ) AS t
        LEFT JOIN (
            SELECT assumeNotNull({column}) AS code, count() AS total,
                   countIf(entity_id IN ({present})) AS present
            FROM {db}.{Table.ENTITIES} FINAL
            WHERE {" AND ".join(communes)} AND {column} IS NOT NULL
            GROUP BY code
        ) AS c ON c.code = t.code
        ORDER BY t.code, t.entity_id
    """
    rows = client.query(sql, parameters=params).result_rows
    return [
        TerritoryPresence(
            code=str(code),
            entity_id=str(entity_id),
            name=str(name),
            present=int(n_present or 0),
            total=int(total or 0),
            entity_present=bool(entity_present) if in_scope else None,
        )
        for code, entity_id, name, total, n_present, entity_present, in_scope in rows
    ]
