"""The ClickHouse queries behind the API: presence and rankings, live and as of any instant.

Every value reaches SQL as a bound parameter; only identifiers from settings and allow-listed names
(platforms, windows, metrics) are written into the text. The definitions are docs/SCORING.md's:
followers(t) is the last daily point in (t - staleness, t]; presence is a range test on the stored
presence intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from services.common.names import WINDOWS, Category, Platform, Window

METRICS = ("growth_abs", "growth_pct", "per_1000_inhabitants", "followers")


@dataclass(frozen=True)
class Scope:
    """Which entities a figure counts: a category, optionally a panel and a territory."""

    category: Category
    panel: str | None = None
    region: str | None = None
    departement: str | None = None

    def entity_filter(self, db: str) -> tuple[str, dict[str, Any]]:
        """SQL selecting the entity ids in scope, and its parameters."""
        conditions = ["category = {category:String}"]
        params: dict[str, Any] = {"category": self.category.value}
        if self.region:
            conditions.append("region = {region:String}")
            params["region"] = self.region
        if self.departement:
            conditions.append("departement = {departement:String}")
            params["departement"] = self.departement
        sql = f"SELECT entity_id FROM {db}.entities FINAL WHERE {' AND '.join(conditions)}"
        if self.panel:
            sql += (
                f" AND entity_id IN (SELECT entity_id FROM {db}.panels FINAL "
                "WHERE panel = {panel:String} AND removed = 0)"
            )
            params["panel"] = self.panel
        return sql, params


@dataclass(frozen=True)
class Presence:
    present: int
    total: int

    @property
    def rate(self) -> float | None:
        return None if self.total == 0 else self.present / self.total


def presence(client: Client, db: str, platforms: list[Platform], scope: Scope, at: datetime) -> Presence:
    """Entities of ``scope`` present at ``at`` on every one of ``platforms`` (one platform: presence;
    several: the overlap), out of all entities in scope."""
    in_scope, params = scope.entity_filter(db)
    params.update({"at": at, "platforms": [p.value for p in platforms], "n": len(platforms)})
    sql = f"""
        SELECT
          (SELECT count() FROM ({in_scope})) AS total,
          (SELECT count() FROM (
              SELECT entity_id FROM {db}.presence FINAL
              WHERE platform IN {{platforms:Array(String)}}
                AND arrayExists((s, e) -> s <= {{at:DateTime64(3, 'UTC')}}
                                          AND {{at:DateTime64(3, 'UTC')}} < e, starts, ends)
                AND entity_id IN ({in_scope})
              GROUP BY entity_id
              HAVING uniqExact(platform) = {{n:UInt8}}
          )) AS present
    """
    total, present = client.query(sql, parameters=params).result_rows[0]
    return Presence(int(present), int(total))


@dataclass(frozen=True)
class RankedEntity:
    rank: int
    entity_id: str
    name: str
    value: float
    followers: int
    followers_before: int | None


def rankings_at(
    client: Client,
    db: str,
    platform: Platform,
    scope: Scope,
    window: Window,
    metric: str,
    at: datetime,
    staleness: timedelta,
    limit: int,
) -> list[RankedEntity]:
    """Entity rankings as of ``at``, from the daily points (docs/SCORING.md, "Growth over a window")."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    in_scope, params = scope.entity_filter(db)
    params.update(
        {
            "platform": platform.value,
            "at": at,
            "before": at - WINDOWS[window],
            "staleness": int(staleness.total_seconds() * 1000),
            "limit": limit,
        }
    )
    value = {
        "growth_abs": "toFloat64(f_now) - toFloat64(f_before)",
        "growth_pct": "if(f_before = 0, NULL, 100 * (toFloat64(f_now) - toFloat64(f_before)) / f_before)",
        "per_1000_inhabitants": "if(population > 0, 1000 * f_now / population, NULL)",
        "followers": "toFloat64(f_now)",
    }[metric]
    needs_before = metric in ("growth_abs", "growth_pct")
    sql = f"""
        WITH points AS (
            SELECT account_id, entity_id, observed_at, followers
            FROM {db}.account_daily FINAL
            WHERE platform = {{platform:String}}
              AND observed_at > {{before:DateTime64(3, 'UTC')}} - toIntervalMillisecond({{staleness:UInt64}})
              AND observed_at <= {{at:DateTime64(3, 'UTC')}}
              AND entity_id IN ({in_scope})
        ),
        now AS (
            SELECT entity_id, sum(f) AS f FROM (
                SELECT account_id, argMax(entity_id, observed_at) AS entity_id,
                       argMax(followers, observed_at) AS f
                FROM points
                WHERE observed_at > {{at:DateTime64(3, 'UTC')}} - toIntervalMillisecond({{staleness:UInt64}})
                GROUP BY account_id
            ) GROUP BY entity_id
        ),
        before AS (
            SELECT entity_id, sum(f) AS f FROM (
                SELECT account_id, argMax(entity_id, observed_at) AS entity_id,
                       argMax(followers, observed_at) AS f
                FROM points
                WHERE observed_at <= {{before:DateTime64(3, 'UTC')}}
                GROUP BY account_id
            ) GROUP BY entity_id
        )
        SELECT entity_id, name, value, f_now, f_before FROM (
            SELECT now.entity_id AS entity_id, e.name AS name, now.f AS f_now,
                   {"before.f" if needs_before else "NULL"} AS f_before, e.population AS population,
                   {value} AS value
            FROM now
            {"INNER JOIN before ON before.entity_id = now.entity_id" if needs_before else ""}
            INNER JOIN (SELECT entity_id, name, population FROM {db}.entities FINAL) AS e
                ON e.entity_id = now.entity_id
        )
        WHERE value IS NOT NULL
        ORDER BY value DESC, entity_id
        LIMIT {{limit:UInt32}}
    """
    rows = client.query(sql, parameters=params).result_rows
    return [
        RankedEntity(i + 1, str(r[0]), str(r[1]), float(r[2]), int(r[3]), None if r[4] is None else int(r[4]))
        for i, r in enumerate(rows)
    ]
