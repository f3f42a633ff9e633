"""The ClickHouse queries behind the API: presence, rankings, scores, entities and account history,
live and as of any instant.

Every value reaches SQL as a bound parameter; only identifiers from settings and allow-listed names
(window columns, metric expressions) are written into the text. The definitions are docs/SCORING.md's:
followers(t) is the last daily point in (t - staleness, t]; presence is a range test on the stored
presence intervals.

Live figures (no ``at``) come from the tables the scoring worker keeps current: ``entity_latest`` (one
row per entity and platform, the live sums) and ``account_latest`` (one row per account, its latest
point and its window baselines), reading only the columns a ranking needs. Figures as of an instant
come from the daily points (``account_daily``). Every function here is synchronous and takes the
client it should use; the routes run them in worker threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from clickhouse_connect.driver.client import Client

from services.api.strata import Stratum
from services.common.names import WINDOWS, Category, Platform, Table, Window

DATETIME = "DateTime64(3, 'UTC')"


class Metric(StrEnum):
    """What a ranking orders by (CONTRACT.md, rankings)."""

    GROWTH_ABS = "growth_abs"
    GROWTH_PCT = "growth_pct"
    PER_1000_INHABITANTS = "per_1000_inhabitants"
    FOLLOWERS = "followers"

    @property
    def needs_before(self) -> bool:
        """Whether the metric compares with the followers one window earlier."""
        return self in (Metric.GROWTH_ABS, Metric.GROWTH_PCT)


METRICS = tuple(m.value for m in Metric)


class RankBy(StrEnum):
    """What a ranking ranks: entities (their accounts on the platform summed) or single accounts."""

    ENTITY = "entity"
    ACCOUNT = "account"


# The value of each metric from f_now, f_before (Nullable when unknown) and the entity's population.
# A NULL value leaves the row out of the ranking (SCORING.md: no value at both ends, no population).
_VALUE_SQL = {
    Metric.GROWTH_ABS: "toFloat64(f_now) - toFloat64(f_before)",
    Metric.GROWTH_PCT: "if(f_before = 0, NULL, 100 * (toFloat64(f_now) - toFloat64(f_before)) / f_before)",
    Metric.PER_1000_INHABITANTS: "if(population > 0, 1000 * f_now / population, NULL)",
    Metric.FOLLOWERS: "toFloat64(f_now)",
}


@dataclass(frozen=True)
class MinBase:
    """The least base of a relative ranking (docs/SCORING.md, "Minimum base"): ``growth_pct`` ranks
    only rows with at least ``followers`` at the window's start and, when the population is known, at
    least ``population`` inhabitants; ``per_1000_inhabitants`` only entities of at least ``population``
    inhabitants. 0 is no minimum; the other metrics have none."""

    followers: int = 0
    population: int = 0

    def applied(self, metric: Metric) -> tuple[int | None, int | None]:
        """(followers, population) minimums that ``metric`` applies; None where it applies none."""
        if metric is Metric.GROWTH_PCT:
            return self.followers, self.population
        if metric is Metric.PER_1000_INHABITANTS:
            return None, self.population
        return None, None

    def condition(self, metric: Metric) -> tuple[str, dict[str, Any]]:
        """SQL on the ranking's ``f_before`` and ``population`` columns, and its parameters."""
        followers, population = self.applied(metric)
        conditions, params = ["1"], {}
        if followers:
            conditions.append("f_before >= {min_followers:UInt64}")
            params["min_followers"] = followers
        if population and metric is Metric.GROWTH_PCT:
            conditions.append("(population IS NULL OR population >= {min_population:UInt32})")
            params["min_population"] = population
        elif population:
            conditions.append("population >= {min_population:UInt32}")
            params["min_population"] = population
        return " AND ".join(conditions), params


NO_MIN_BASE = MinBase()
# The baseline column of each window in entity_latest and account_latest (migration 0003).
_BEFORE_COLUMN = {w: f"before_{w.value}" for w in Window}


@dataclass(frozen=True)
class Scope:
    """Which entities a figure counts: optionally a category, a named panel and a territory.

    Without a panel, the panel of a category is every entity of that category in the registry
    (CONTRACT.md, "Panel"); without a category either, every entity of the registry.
    """

    category: Category | None = None
    panel: str | None = None
    region: str | None = None
    departement: str | None = None
    stratum: Stratum | None = None  # a population band or an EPCI nature (services/api/strata.py)

    def conditions(self, db: str) -> tuple[list[str], dict[str, Any]]:
        """Conditions on the ``entities`` table (column names unqualified), and their parameters."""
        conditions: list[str] = []
        params: dict[str, Any] = {}
        if self.category is not None:
            conditions.append("category = {category:String}")
            params["category"] = self.category.value
        if self.region:
            conditions.append("region = {region:String}")
            params["region"] = self.region
        if self.departement:
            conditions.append("departement = {departement:String}")
            params["departement"] = self.departement
        if self.stratum is not None:
            condition, values = self.stratum.condition()
            conditions.append(condition)
            params.update(values)
        if self.panel:
            conditions.append(
                f"entity_id IN (SELECT entity_id FROM {db}.{Table.PANELS} FINAL "
                "WHERE panel = {panel:String} AND removed = 0)"
            )
            params["panel"] = self.panel
        return conditions, params

    def entity_filter(self, db: str) -> tuple[str, dict[str, Any]]:
        """SQL selecting the entity ids in scope, and its parameters."""
        conditions, params = self.conditions(db)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return f"SELECT entity_id FROM {db}.{Table.ENTITIES} FINAL{where}", params

    def entities(self, db: str, columns: str = "entity_id, name, population") -> tuple[str, dict[str, Any]]:
        """SQL selecting ``columns`` of the entities in scope, and its parameters."""
        conditions, params = self.conditions(db)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return f"SELECT {columns} FROM {db}.{Table.ENTITIES} FINAL{where}", params


def panel_exists(client: Client, db: str, panel: str) -> bool:
    """Whether ``panel`` has at least one member."""
    found = client.query(
        f"SELECT count() FROM {db}.{Table.PANELS} FINAL WHERE panel = {{panel:String}} AND removed = 0",
        parameters={"panel": panel},
    ).result_rows[0][0]
    return int(found) > 0


def panel_names(client: Client, db: str, limit: int = 50) -> list[str]:
    """Names of the panels that have members (for error messages)."""
    rows = client.query(
        f"SELECT DISTINCT panel FROM {db}.{Table.PANELS} FINAL WHERE removed = 0 "
        "ORDER BY panel LIMIT {n:UInt32}",
        parameters={"n": limit},
    ).result_rows
    return [str(r[0]) for r in rows]


# --- Presence.


@dataclass(frozen=True)
class Presence:
    present: int
    total: int
    # False before barometre observed the platform in scope at all: the rate is then unknown, not 0.
    observed: bool = True

    @property
    def rate(self) -> float | None:
        return None if self.total == 0 or not self.observed else self.present / self.total


def presence(client: Client, db: str, platforms: list[Platform], scope: Scope, at: datetime) -> Presence:
    """Entities of ``scope`` present at ``at`` on every one of ``platforms`` (one platform: presence;
    several: the overlap), out of all entities in scope."""
    in_scope, params = scope.entity_filter(db)
    params.update({"at": at, "platforms": [p.value for p in platforms], "n": len(platforms)})
    sql = f"""
        SELECT
          (SELECT count() FROM ({in_scope})) AS total,
          (SELECT count() FROM (
              SELECT entity_id FROM {db}.{Table.PRESENCE} FINAL
              WHERE platform IN {{platforms:Array(String)}}
                AND arrayExists((s, e) -> s <= {{at:{DATETIME}}} AND {{at:{DATETIME}}} < e, starts, ends)
                AND entity_id IN ({in_scope})
              GROUP BY entity_id
              HAVING uniqExact(platform) = {{n:UInt8}}
          )) AS present
    """
    total, present = client.query(sql, parameters=params).result_rows[0]
    return Presence(int(present), int(total))


def presence_series(
    client: Client, db: str, platform: Platform, scope: Scope, instants: Sequence[datetime]
) -> list[Presence]:
    """Presence on ``platform`` at each of ``instants``, in one query: every account's intervals are
    tested against all the instants at once (``arrayFilter``), then entities are counted per instant.

    An instant before the first presence interval of any account in scope on the platform (the first
    active snapshot barometre has of them) is not observed: its rate is unknown, not 0."""
    in_scope, params = scope.entity_filter(db)
    params.update({"platform": platform.value, "instants": list(instants)})
    sql = f"""
        SELECT
          (SELECT count() FROM ({in_scope})) AS total,
          (SELECT groupArray((t, n)) FROM (
              SELECT t, uniqExact(entity_id) AS n FROM (
                  SELECT entity_id,
                         arrayJoin(arrayFilter(
                             x -> arrayExists((s, e) -> s <= x AND x < e, starts, ends),
                             {{instants:Array({DATETIME})}})) AS t
                  FROM {db}.{Table.PRESENCE} FINAL
                  WHERE platform = {{platform:String}} AND entity_id IN ({in_scope})
              )
              GROUP BY t
          )) AS counts,
          (SELECT minOrNull(starts[1]) FROM {db}.{Table.PRESENCE} FINAL
           WHERE platform = {{platform:String}} AND notEmpty(starts) AND entity_id IN ({in_scope})
          ) AS first_seen
    """
    total, counts, first_seen = client.query(sql, parameters=params).result_rows[0]
    by_instant = {_ms(t): int(n) for t, n in counts}
    first = None if first_seen is None else _ms(first_seen)
    return [
        Presence(by_instant.get(_ms(t), 0), int(total), first is not None and _ms(t) >= first)
        for t in instants
    ]


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# --- Rankings.


@dataclass(frozen=True)
class Ranked:
    """One row of a ranking; ``account_id`` and ``handle`` are set when accounts are ranked."""

    rank: int
    entity_id: str
    name: str
    value: float
    followers: int
    followers_before: int | None
    account_id: str | None = None
    handle: str | None = None


def _ranked(rows: Sequence[Sequence[Any]], by: RankBy) -> list[Ranked]:
    out = []
    for i, r in enumerate(rows):
        before = None if r[6] is None else int(r[6])
        if by is RankBy.ACCOUNT:
            out.append(Ranked(i + 1, str(r[2]), str(r[3]), float(r[4]), int(r[5]), before, str(r[0]), r[1]))
        else:
            out.append(Ranked(i + 1, str(r[2]), str(r[3]), float(r[4]), int(r[5]), before))
    return out


def rankings_live(
    client: Client,
    db: str,
    platform: Platform,
    scope: Scope,
    window: Window,
    metric: Metric | str,
    now: datetime,
    staleness: timedelta,
    limit: int,
    *,
    by: RankBy = RankBy.ENTITY,
    min_base: MinBase = NO_MIN_BASE,
) -> list[Ranked]:
    """Rankings now (SCORING.md, "Live"): each account at its latest point, compared with the point in
    force one window before it; accounts whose latest point is older than the staleness are left out,
    and rows below ``min_base`` out of relative rankings.

    By entity, from ``entity_latest`` (rows with fresh accounts only); by account, from
    ``account_latest``. Both read only the columns the metric needs.
    """
    metric = Metric(metric)
    entities, params = scope.entities(db)
    base, base_params = min_base.condition(metric)
    params.update(base_params)
    params.update(
        {
            "platform": platform.value,
            "now": now,
            "staleness": int(staleness.total_seconds() * 1000),
            "limit": limit,
        }
    )
    before = _BEFORE_COLUMN[window] if metric.needs_before else "CAST(NULL AS Nullable(UInt64))"
    fresh = f"observed_at > {{now:{DATETIME}}} - toIntervalMillisecond({{staleness:UInt64}})"
    if by is RankBy.ACCOUNT:
        source = f"""
            SELECT account_id, handle, entity_id, followers AS f_now, {before} AS f_before
            FROM {db}.{Table.ACCOUNT_LATEST} FINAL
            WHERE platform = {{platform:String}} AND {fresh}"""
        key, handle = "l.account_id", "l.handle"
    else:
        category = ""
        if scope.category is not None:
            category = " AND category = {category:String}"  # the table's key prefix: fewer rows read
        source = f"""
            SELECT entity_id, followers AS f_now, {before} AS f_before
            FROM {db}.{Table.ENTITY_LATEST} FINAL
            WHERE platform = {{platform:String}}{category} AND accounts > 0 AND {fresh}"""
        key, handle = "l.entity_id", "CAST(NULL AS Nullable(String))"
    sql = f"""
        SELECT key, handle, entity_id, name, value, f_now, f_before FROM (
            SELECT {key} AS key, {handle} AS handle, l.entity_id AS entity_id, e.name AS name,
                   l.f_now AS f_now, l.f_before AS f_before, e.population AS population,
                   {_VALUE_SQL[metric]} AS value
            FROM ({source}) AS l
            INNER JOIN ({entities}) AS e ON e.entity_id = l.entity_id
        )
        WHERE value IS NOT NULL AND {base}
        ORDER BY value DESC, key
        LIMIT {{limit:UInt32}}
    """
    return _ranked(client.query(sql, parameters=params).result_rows, by)


def _daily_points(db: str, lower: str, platform_condition: str = "") -> str:
    """FROM, PREWHERE and WHERE of a read of the daily points (``account_daily`` FINAL) that the points in
    force at the instant parameters ``lower`` and ``at`` can be: observed in (lower - staleness, at].

    The PREWHERE tests only columns that every version of an (account_id, day) row shares (the platform,
    the day of the key), so it is exact before FINAL and spares FINAL the merging of other days' rows
    (the figures: docs/DEVELOPING.md, "Benchmarks"); conditions on other columns stay in WHERE, after
    FINAL. Reading the raw rows without FINAL and picking each day's latest row in the aggregation is
    slower: the extra conditional aggregates cost more than FINAL's merge."""
    since = f"{{{lower}:{DATETIME}}} - toIntervalMillisecond({{staleness:UInt64}})"
    return (
        f"FROM {db}.{Table.ACCOUNT_DAILY} FINAL "
        f"PREWHERE {platform_condition}day >= toDate({since}) AND day <= toDate({{at:{DATETIME}}}) "
        f"WHERE observed_at > {since} AND observed_at <= {{at:{DATETIME}}}"
    )


def rankings_at(
    client: Client,
    db: str,
    platform: Platform,
    scope: Scope,
    window: Window,
    metric: Metric | str,
    at: datetime,
    staleness: timedelta,
    limit: int,
    *,
    by: RankBy = RankBy.ENTITY,
    min_base: MinBase = NO_MIN_BASE,
) -> list[Ranked]:
    """Rankings as of ``at``, from the daily points (docs/SCORING.md, "Growth over a window"); rows
    below ``min_base`` are left out of relative rankings."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    metric = Metric(metric)
    in_scope, params = scope.entity_filter(db)
    base, base_params = min_base.condition(metric)
    params.update(base_params)
    params.update(
        {
            "platform": platform.value,
            "at": at,
            "before": at - WINDOWS[window],
            "staleness": int(staleness.total_seconds() * 1000),
            "limit": limit,
        }
    )
    lower = "before" if metric.needs_before else "at"
    # Each account's point in force at ``at`` (its latest point of (at - staleness, at]) and at
    # ``before`` (of (before - staleness, before]), in one pass over its points.
    # (Aliases differ from column names: ClickHouse would otherwise read them in WHERE.)
    fresh = f"observed_at > {{at:{DATETIME}}} - toIntervalMillisecond({{staleness:UInt64}})"
    old = f"observed_at <= {{before:{DATETIME}}}"
    before = (
        f"countIf({old}) > 0 AS a_has_before, argMaxIf(followers, observed_at, {old}) AS a_before"
        if metric.needs_before
        else "0 AS a_has_before, toUInt64(0) AS a_before"
    )
    accounts = f"""
        SELECT account_id AS k, argMax(entity_id, observed_at) AS owner,
               countIf({fresh}) > 0 AS a_has_now, argMaxIf(followers, observed_at, {fresh}) AS a_now,
               {before}
        {_daily_points(db, lower, "platform = {platform:String} AND ")}
          AND entity_id IN ({in_scope})
        GROUP BY account_id"""
    if by is RankBy.ENTITY:
        # An entity's followers at an instant: the sum over its accounts that have a value then.
        accounts = f"""
            SELECT owner AS k, owner,
                   countIf(a_has_now) > 0 AS has_now, sumIf(a_now, a_has_now) AS f_now,
                   countIf(a_has_before) > 0 AS has_before, sumIf(a_before, a_has_before) AS f_before
            FROM ({accounts}) GROUP BY owner"""
    else:
        accounts = f"""
            SELECT k, owner, a_has_now AS has_now, a_now AS f_now, a_has_before AS has_before,
                   a_before AS f_before
            FROM ({accounts})"""
    condition = "has_now AND has_before" if metric.needs_before else "has_now"
    f_before = "a.f_before" if metric.needs_before else "CAST(NULL AS Nullable(UInt64))"
    sql = f"""
        SELECT key, CAST(NULL AS Nullable(String)) AS handle, entity_id, name, value, f_now, f_before FROM (
            SELECT a.k AS key, a.owner AS entity_id, e.name AS name, a.f_now AS f_now,
                   {f_before} AS f_before, e.population AS population, {_VALUE_SQL[metric]} AS value
            FROM ({accounts}) AS a
            INNER JOIN (SELECT entity_id, name, population FROM {db}.{Table.ENTITIES} FINAL) AS e
                ON e.entity_id = a.owner
            WHERE {condition}
        )
        WHERE value IS NOT NULL AND {base}
        ORDER BY value DESC, key
        LIMIT {{limit:UInt32}}
    """
    ranked = _ranked(client.query(sql, parameters=params).result_rows, by)
    if by is RankBy.ACCOUNT and ranked:
        handles = account_handles(client, db, platform, [r.account_id or "" for r in ranked])
        ranked = [replace(r, handle=handles.get(r.account_id or "")) for r in ranked]
    return ranked


def account_handles(client: Client, db: str, platform: Platform, account_ids: list[str]) -> dict[str, str]:
    """The latest known handle of each of ``account_ids`` (a key lookup in ``account_latest``)."""
    rows = client.query(
        f"SELECT account_id, handle FROM {db}.{Table.ACCOUNT_LATEST} FINAL "
        "WHERE platform = {platform:String} AND account_id IN {ids:Array(String)}",
        parameters={"platform": platform.value, "ids": account_ids},
    ).result_rows
    return {str(r[0]): str(r[1]) for r in rows if r[1] is not None}


# --- Scores.


@dataclass(frozen=True)
class ScoreSummary:
    """The average good-practice score of the accounts in scope that have one, and how many they are."""

    average: float | None
    count: int


def scores(
    client: Client,
    db: str,
    platform: Platform | None,
    scope: Scope,
    at: datetime | None,
    now: datetime,
    staleness: timedelta,
) -> ScoreSummary:
    """Live (``at`` None): the scores in ``account_latest`` of accounts observed within the staleness
    window of ``now``. As of ``at``: each account's score at its point in force at ``at`` (the score
    column of ``account_daily``)."""
    in_scope, params = scope.entity_filter(db)
    params["staleness"] = int(staleness.total_seconds() * 1000)
    on_platform = ""
    if platform is not None:
        on_platform = "platform = {platform:String} AND "
        params["platform"] = platform.value
    if at is None:
        params["now"] = now
        sql = f"""
            SELECT count(), avg(score) FROM {db}.{Table.ACCOUNT_LATEST} FINAL
            WHERE {on_platform}observed_at > {{now:{DATETIME}}} - toIntervalMillisecond({{staleness:UInt64}})
              AND score IS NOT NULL AND entity_id IN ({in_scope})
        """
    else:
        params["at"] = at
        # tuple(): argMax skips NULL values, and a point without a score must hide an older one that
        # had a score, not let it through.
        sql = f"""
            SELECT count(), avg(s) FROM (
                SELECT account_id, argMax(tuple(score), observed_at).1 AS s
                {_daily_points(db, "at", on_platform)}
                  AND entity_id IN ({in_scope})
                GROUP BY account_id
            ) WHERE s IS NOT NULL
        """
    count, average = client.query(sql, parameters=params).result_rows[0]
    return ScoreSummary(None if not count else float(average), int(count))


# --- Entities and accounts.


@dataclass(frozen=True)
class EntityRow:
    entity_id: str
    name: str
    category: str
    population: int | None
    departement: str | None
    region: str | None
    source: str


def entity(client: Client, db: str, entity_id: str) -> EntityRow | None:
    """The registry row of ``entity_id`` (shipped or imported), None when unknown."""
    rows = client.query(
        f"SELECT entity_id, name, category, population, departement, region, source "
        f"FROM {db}.{Table.ENTITIES} FINAL WHERE entity_id = {{id:String}}",
        parameters={"id": entity_id},
    ).result_rows
    if not rows:
        return None
    r = rows[0]
    return EntityRow(str(r[0]), str(r[1]), str(r[2]), r[3], r[4], r[5], str(r[6]))


@dataclass(frozen=True)
class AccountFigures:
    """One account of an entity with its latest figures (None for a registered account never observed)."""

    account_id: str
    platform: str
    handle: str | None
    registered: bool
    observed_at: datetime | None = None
    followers: int | None = None
    status: str | None = None
    fresh: bool = False
    present: bool = False
    score: float | None = None
    score_formula: str | None = None
    posts_30d: int | None = None
    before: dict[Window, int | None] | None = None


def entity_accounts(
    client: Client, db: str, entity_id: str, now: datetime, staleness: timedelta
) -> list[AccountFigures]:
    """Every account of ``entity_id``: observed ones (``account_latest``, with presence at ``now``) and
    registered ones never observed yet; sorted by platform, then account id."""
    params = {"id": entity_id, "now": now, "staleness": int(staleness.total_seconds() * 1000)}
    windows = ", ".join(f"a.{c}" for c in _BEFORE_COLUMN.values())
    # Candidates first (any row naming the entity, a cheap scan of one column), then the tables read
    # with FINAL through their key (platform, account_id): exact even if an account changed owner.
    candidates = (
        f"SELECT platform, account_id FROM {db}.{Table.ACCOUNT_LATEST} WHERE entity_id = {{id:String}}"
    )
    observed = client.query(
        f"""
        SELECT a.account_id, a.platform, a.handle, a.observed_at, a.followers, a.status, a.score,
               a.score_formula, a.posts_30d, {windows},
               a.observed_at > {{now:{DATETIME}}} - toIntervalMillisecond({{staleness:UInt64}}) AS fresh,
               arrayExists((s, e) -> s <= {{now:{DATETIME}}} AND {{now:{DATETIME}}} < e, p.starts, p.ends)
        FROM (
            SELECT account_id, platform, handle, observed_at, followers, status, score, score_formula,
                   posts_30d, {", ".join(_BEFORE_COLUMN.values())}
            FROM {db}.{Table.ACCOUNT_LATEST} FINAL
            WHERE (platform, account_id) IN ({candidates}) AND entity_id = {{id:String}}
        ) AS a
        LEFT JOIN (
            SELECT account_id, starts, ends FROM {db}.{Table.PRESENCE} FINAL
            WHERE (platform, account_id) IN ({candidates})
        ) AS p ON p.account_id = a.account_id
        """,
        parameters=params,
    ).result_rows
    registered = client.query(
        f"""
        SELECT account_id, argMax(platform, version), argMax(handle, version) FROM {db}.{Table.ACCOUNTS}
        WHERE account_id IN (SELECT account_id FROM {db}.{Table.ACCOUNTS} WHERE entity_id = {{id:String}})
        GROUP BY account_id
        HAVING argMax(entity_id, version) = {{id:String}} AND argMax(deleted, version) = 0
        """,
        parameters={"id": entity_id},
    ).result_rows
    known = {str(r[0]) for r in registered}
    out: dict[str, AccountFigures] = {}
    n = len(_BEFORE_COLUMN)
    for r in observed:
        before = dict(zip(Window, (None if v is None else int(v) for v in r[9 : 9 + n]), strict=True))
        out[str(r[0])] = AccountFigures(
            account_id=str(r[0]),
            platform=str(r[1]),
            handle=r[2],
            registered=str(r[0]) in known,
            observed_at=r[3],
            followers=int(r[4]),
            status=str(r[5]),
            fresh=bool(r[9 + n]),
            present=bool(r[10 + n]),
            score=None if r[6] is None else float(r[6]),
            score_formula=str(r[7]) or None,
            posts_30d=None if r[8] is None else int(r[8]),
            before=before,
        )
    for account_id, platform, handle in registered:
        if str(account_id) not in out:
            out[str(account_id)] = AccountFigures(str(account_id), str(platform), handle, registered=True)
    return sorted(out.values(), key=lambda a: (a.platform, a.account_id))


@dataclass(frozen=True)
class AccountRow:
    """Who an account is: its platform, owner entity and handle."""

    account_id: str
    platform: str
    entity_id: str
    handle: str | None


def account(client: Client, db: str, account_id: str) -> AccountRow | None:
    """An observed or registered account, None when barometre has never heard of it."""
    platform = account_id.partition(":")[0]
    rows = client.query(
        f"SELECT account_id, platform, entity_id, handle FROM {db}.{Table.ACCOUNT_LATEST} FINAL "
        "WHERE platform = {platform:String} AND account_id = {id:String}",
        parameters={"platform": platform, "id": account_id},
    ).result_rows
    if not rows:
        rows = client.query(
            f"SELECT account_id, argMax(platform, version), argMax(entity_id, version), "
            f"argMax(handle, version) FROM {db}.{Table.ACCOUNTS} "
            "WHERE account_id = {id:String} GROUP BY account_id",
            parameters={"id": account_id},
        ).result_rows
    if not rows:
        return None
    r = rows[0]
    return AccountRow(str(r[0]), str(r[1]), str(r[2]), r[3])


HISTORY_COLUMNS = (
    "observed_at",
    "event_id",
    "followers",
    "following",
    "posts_total",
    "posts_30d",
    "interactions_30d",
    "replies_30d",
    "automated_posts_30d",
    "status",
    "source",
)


def history(
    client: Client, db: str, account_id: str, start: datetime, end: datetime, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """The raw snapshots of ``account_id`` observed in ``[start, end)``, newest first, at most ``limit``;
    and whether there were more."""
    rows = client.query(
        f"SELECT {', '.join(HISTORY_COLUMNS)} FROM {db}.{Table.SNAPSHOTS} FINAL "
        f"WHERE account_id = {{id:String}} AND observed_at >= {{start:{DATETIME}}} "
        f"AND observed_at < {{end:{DATETIME}}} "
        "ORDER BY observed_at DESC, event_id DESC LIMIT {n:UInt32}",
        parameters={"id": account_id, "start": start, "end": end, "n": limit + 1},
    ).result_rows
    items = [dict(zip(HISTORY_COLUMNS, r, strict=True)) for r in rows[:limit]]
    return items, len(rows) > limit
