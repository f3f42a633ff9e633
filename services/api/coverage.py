"""Coverage: how much of the world a figure sees (``GET /v1/coverage``, and the ``coverage`` object of the
presence and ranking answers).

An account is *known* when it is registered, not deleted and neither rejected nor gone, or when barometre
observes it without it being registered (snapshots pushed or imported with an entity_id: origin
``unregistered``; a registered account that is deleted, rejected or gone stays out even if observed).
A known account is, as of an instant ``t``:

* *observed*: it has a point in the staleness window ``(t - staleness, t]`` (the accounts live figures
  count; live: ``account_latest.observed_at``; as of ``t``: a daily point of ``account_daily``);
* *stale*: it was observed at or before ``t`` (``account_latest.first_seen <= t``), but not in the window;
* *never observed*: otherwise.

An entity is observed on a platform when one of its known accounts there is observed, stale when it has
observed accounts there but none within the window, never observed when it has known accounts there but
none ever observed, without account when it has none. Across several platforms (the overlap) an entity
is as covered as on its least covered platform. The registry (accounts, entities, panels) is read as it
is now; only observations are read as of ``t``. Poll failures (``poll_state``) are the poller's current
state: they are given for live answers only.

Every count of an answer comes from one query over the accounts in scope (no query per platform, entity or
account); failures and the provenance of unregistered accounts take one more small query each, only when
there are any. Every function is synchronous and takes the client it should use.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from clickhouse_connect.driver.client import Client

from services.api.queries import DATETIME, Scope
from services.common.names import AccountOrigin, AccountState, Category, Platform, SourceKind, Table

# How an account came in (AccountOrigin), or "unregistered": observed without being registered. The
# order is the order of answers.
Origin = Literal["simulator", "import", "push", "poll", "discover", "unregistered"]
ORIGINS: tuple[Origin, ...] = get_args(Origin)
UNREGISTERED: Origin = "unregistered"
# Registered accounts that are not (or no longer) the entity's account, whatever their snapshots say.
_EXCLUDED_STATES = [AccountState.REJECTED.value, AccountState.GONE.value]
# How many failure reasons, and examples of each, an answer lists.
TOP_REASONS = 5
EXAMPLES_PER_REASON = 3
_ALL = "*"  # the origin key of the counts over every origin, in the query below


@dataclass(frozen=True)
class Counts:
    """Entities and accounts of one platform and category (of one origin, or of all)."""

    with_account: int = 0  # entities with a known account
    observed: int = 0
    stale: int = 0
    never_observed: int = 0
    accounts: int = 0  # known accounts
    accounts_observed: int = 0
    accounts_stale: int = 0
    accounts_never_observed: int = 0
    accounts_failing: int = 0


@dataclass(frozen=True)
class FailureExample:
    account_id: str
    entity_id: str
    at: datetime | None  # the last attempt
    detail: str
    failures: int  # attempts in a row that failed


@dataclass(frozen=True)
class FailureReason:
    reason: str
    accounts: int
    examples: list[FailureExample]


@dataclass(frozen=True)
class Row:
    """The coverage of one platform and one category."""

    platform: Platform
    category: Category
    entities: int  # in scope
    known: Counts
    by_origin: dict[Origin, Counts]
    failures: list[FailureReason] | None  # None: not known (an answer as of a past instant)

    @property
    def without_account(self) -> int:
        return self.entities - self.known.with_account


@dataclass(frozen=True)
class Coverage:
    rows: list[Row]
    simulated: bool
    sources: list[Origin] = field(default_factory=list)  # origins of the known accounts in scope


@dataclass(frozen=True)
class Summary:
    """The coverage of one figure: entities in its scope observed, stale (only), missing."""

    observed: int
    stale: int
    missing: int
    simulated: bool


def _known_accounts(
    db: str,
    platforms: Sequence[Platform] | None,
    scope: Scope,
    at: datetime | None,
    now: datetime,
    staleness: timedelta,
    *,
    failing: bool,
) -> tuple[str, dict[str, Any]]:
    """SQL of the known accounts whose entity is in ``scope`` (on ``platforms``; None: every one), one row
    each: a_id, a_platform, a_entity, e_category, a_origin, a_fresh, a_seen, a_failing; and parameters."""
    entities, params = scope.entities(db, "entity_id AS e_id, category AS e_category")
    params.update(
        {
            "staleness": int(staleness.total_seconds() * 1000),
            "excluded": _EXCLUDED_STATES,
            "unregistered": UNREGISTERED,
        }
    )
    on_platform = ""
    if platforms is not None:
        on_platform = "WHERE platform IN {platforms:Array(String)}"
        params["platforms"] = [p.value for p in platforms]
    if at is None:
        params["now"] = now
        observed = f"""
            SELECT account_id AS o_id, platform AS o_platform, entity_id AS o_entity,
                   observed_at > {{now:{DATETIME}}} - toIntervalMillisecond({{staleness:UInt64}}) AS o_fresh,
                   true AS o_seen
            FROM {db}.{Table.ACCOUNT_LATEST} FINAL {on_platform}"""
    else:
        params["at"] = at
        # The window of the daily points, as the other "as of" queries read it (queries._daily_points):
        # the PREWHERE on the key's day spares FINAL the other days.
        since = f"{{at:{DATETIME}}} - toIntervalMillisecond({{staleness:UInt64}})"
        day_platform = "platform IN {platforms:Array(String)} AND " if platforms is not None else ""
        observed = f"""
            SELECT l.account_id AS o_id, l.platform AS o_platform, l.entity_id AS o_entity,
                   d.d_id != '' AS o_fresh, l.first_seen <= {{at:{DATETIME}}} AS o_seen
            FROM (SELECT account_id, platform, entity_id, first_seen
                  FROM {db}.{Table.ACCOUNT_LATEST} FINAL {on_platform}) AS l
            LEFT JOIN (
                SELECT DISTINCT account_id AS d_id FROM {db}.{Table.ACCOUNT_DAILY} FINAL
                PREWHERE {day_platform}day >= toDate({since}) AND day <= toDate({{at:{DATETIME}}})
                WHERE observed_at > {since} AND observed_at <= {{at:{DATETIME}}}
            ) AS d ON d.d_id = l.account_id"""
    failing_sql = "false"
    if failing and at is None:
        failing_sql = f"a_id IN (SELECT account_id FROM {db}.{Table.POLL_STATE} FINAL WHERE failures > 0)"
    # Aliases differ from column names: ClickHouse would otherwise read them in WHERE and HAVING.
    sql = f"""
        SELECT a_id, a_platform, a_entity, e_category, a_origin, a_fresh, a_seen, {failing_sql} AS a_failing
        FROM (
            SELECT if(r_id != '', r_id, o_id) AS a_id,
                   if(r_id != '', r_platform, o_platform) AS a_platform,
                   if(r_id != '', r_entity, o_entity) AS a_entity,
                   if(r_id != '', r_origin, {{unregistered:String}}) AS a_origin,
                   o_fresh AND o_seen AS a_fresh, o_seen AS a_seen
            FROM (
                SELECT account_id AS r_id, argMax(platform, version) AS r_platform,
                       argMax(entity_id, version) AS r_entity, argMax(origin, version) AS r_origin,
                       argMax(deleted, version) = 0
                         AND argMax(state, version) NOT IN {{excluded:Array(String)}} AS r_known
                FROM {db}.{Table.ACCOUNTS} {on_platform}
                GROUP BY account_id
            ) AS r
            FULL OUTER JOIN ({observed}) AS o ON o.o_id = r.r_id
            WHERE (r_id != '' AND r_known) OR (r_id = '' AND o_seen)
        ) AS a
        INNER JOIN ({entities}) AS e ON e.e_id = a.a_entity
    """
    return sql, params


def _simulated_unregistered(
    client: Client, db: str, platforms: Sequence[Platform] | None, scope: Scope, at: datetime | None
) -> bool:
    """Whether a snapshot from the simulator, observed up to ``at`` (None: now), belongs to an
    unregistered account in scope (registered accounts carry their origin; these only their snapshots).

    A lookup by the snapshots table's key (account_id) that stops at the first such snapshot."""
    in_scope, params = scope.entity_filter(db)
    params["source"] = SourceKind.SIMULATOR.value
    conditions = [
        f"entity_id IN ({in_scope})",
        f"account_id NOT IN (SELECT account_id FROM {db}.{Table.ACCOUNTS})",
    ]
    if platforms is not None:
        conditions.append("platform IN {platforms:Array(String)}")
        params["platforms"] = [p.value for p in platforms]
    until = ""
    if at is not None:
        conditions.append(f"first_seen <= {{at:{DATETIME}}}")
        until = f" AND observed_at <= {{at:{DATETIME}}}"
        params["at"] = at
    sql = f"""
        SELECT count() FROM (
            SELECT 1 FROM {db}.{Table.SNAPSHOTS}
            WHERE account_id IN (
                SELECT account_id FROM {db}.{Table.ACCOUNT_LATEST} FINAL WHERE {" AND ".join(conditions)}
            ) AND source = {{source:String}}{until}
            LIMIT 1
        )
    """
    return int(client.query(sql, parameters=params).result_rows[0][0]) > 0


def summary(
    client: Client,
    db: str,
    platforms: Sequence[Platform],
    scope: Scope,
    at: datetime | None,
    now: datetime,
    staleness: timedelta,
) -> Summary:
    """The coverage of a figure over ``platforms`` (one: presence, a ranking; several: the overlap) for
    the entities in ``scope``, live (``at`` None, as of ``now``) or as of ``at``."""
    accounts, params = _known_accounts(db, platforms, scope, at, now, staleness, failing=False)
    in_scope, scope_params = scope.entity_filter(db)
    params.update(scope_params)
    params["n"] = len(platforms)
    sql = f"""
        SELECT
          (SELECT count() FROM ({in_scope})) AS total,
          countIf(k = {{n:UInt8}}) AS observed,
          countIf(k < {{n:UInt8}} AND s = {{n:UInt8}}) AS stale,
          max(sim) AS simulated,
          max(unregistered) AS unregistered
        FROM (
            SELECT a_entity, uniqExactIf(a_platform, a_fresh) AS k, uniqExactIf(a_platform, a_seen) AS s,
                   max(a_origin = {{simulator:String}}) AS sim,
                   max(a_origin = {{unregistered:String}}) AS unregistered
            FROM ({accounts})
            GROUP BY a_entity
        )
    """
    params["simulator"] = AccountOrigin.SIMULATOR.value
    total, observed, stale, simulated, unregistered = client.query(sql, parameters=params).result_rows[0]
    simulated = bool(simulated)
    if not simulated and unregistered:
        simulated = _simulated_unregistered(client, db, platforms, scope, at)
    observed, stale = int(observed), int(stale)
    return Summary(observed, stale, int(total) - observed - stale, simulated)


def coverage(
    client: Client,
    db: str,
    platform: Platform | None,
    category: Category | None,
    panel: str | None,
    at: datetime | None,
    now: datetime,
    staleness: timedelta,
) -> Coverage:
    """The coverage of every platform (or ``platform``) and category (or ``category``), of the panel (or
    the whole registry), live (``at`` None) or as of ``at``."""
    scope = Scope(category, panel)
    platforms = None if platform is None else [platform]
    accounts, params = _known_accounts(db, platforms, scope, at, now, staleness, failing=True)
    totals, scope_params = scope.entities(db, "category AS t_category")
    params.update(scope_params)
    params["all"] = _ALL
    # Per entity, platform and origin (and over all origins: the '*' copy of each account), then per
    # platform, category and origin. The registry's totals per category ride along (t = 1).
    sql = f"""
        SELECT 0 AS t, a_platform, e_category, o,
               count(), countIf(n_fresh > 0), countIf(n_fresh = 0 AND n_seen > 0), countIf(n_seen = 0),
               sum(n), sum(n_fresh), sum(n_seen - n_fresh), sum(n - n_seen), sum(n_failing)
        FROM (
            SELECT a_platform, e_category, a_entity, o, count() AS n, countIf(a_fresh) AS n_fresh,
                   countIf(a_seen) AS n_seen, countIf(a_failing) AS n_failing
            FROM (SELECT *, arrayJoin([a_origin, {{all:String}}]) AS o FROM ({accounts}))
            GROUP BY a_platform, e_category, a_entity, o
        )
        GROUP BY a_platform, e_category, o
        UNION ALL
        SELECT 1, '', t_category, '', count(), 0, 0, 0, 0, 0, 0, 0, 0
        FROM ({totals})
        GROUP BY t_category
    """
    result = client.query(sql, parameters=params).result_rows
    in_scope: dict[str, int] = {}
    counts: dict[tuple[str, str], dict[str, Counts]] = defaultdict(dict)
    for r in result:
        if r[0] == 1:
            in_scope[str(r[2])] = int(r[4])
        else:
            counts[(str(r[1]), str(r[2]))][str(r[3])] = Counts(*(int(v) for v in r[4:13]))
    origins = {o for by in counts.values() for o in by if o != _ALL}
    simulated = AccountOrigin.SIMULATOR.value in origins
    if not simulated and UNREGISTERED in origins:
        simulated = _simulated_unregistered(client, db, platforms, scope, at)
    failing = any(c.accounts_failing for by in counts.values() for c in by.values())
    reasons = _failures(client, db, platforms, scope) if at is None and failing else {}
    rows = []
    for p in platforms or list(Platform):
        for c in [category] if category is not None else list(Category):
            by = counts.get((p.value, c.value), {})
            rows.append(
                Row(
                    platform=p,
                    category=c,
                    entities=in_scope.get(c.value, 0),
                    known=by.get(_ALL, Counts()),
                    by_origin={o: by[o] for o in ORIGINS if o in by},
                    failures=None if at is not None else reasons.get((p.value, c.value), []),
                )
            )
    return Coverage(rows, simulated, [o for o in ORIGINS if o in origins])


def _failures(
    client: Client, db: str, platforms: Sequence[Platform] | None, scope: Scope
) -> dict[tuple[str, str], list[FailureReason]]:
    """Per platform and category, the reasons of the known accounts in scope whose last poll attempts
    failed (most accounts first, at most TOP_REASONS) with the latest few examples of each.

    Starts from the failing accounts (``poll_state``, usually few) and looks only them up in the registry."""
    entities, params = scope.entities(db, "entity_id AS e_id, category AS e_category")
    params.update({"excluded": _EXCLUDED_STATES, "k": EXAMPLES_PER_REASON})
    on_platform = ""
    if platforms is not None:
        on_platform = " AND platform IN {platforms:Array(String)}"
        params["platforms"] = [p.value for p in platforms]
    sql = f"""
        SELECT f_platform, e_category, f_reason, count(),
               groupArraySorted({{k:UInt32}})(
                   (-toUnixTimestamp64Milli(ifNull(f_at, toDateTime64(0, 3, 'UTC'))), f_id, r_entity, f_at,
                    f_error, f_failures))
        FROM (
            SELECT account_id AS f_id, platform AS f_platform, last_reason AS f_reason, last_error AS f_error,
                   last_attempt_at AS f_at, failures AS f_failures
            FROM {db}.{Table.POLL_STATE} FINAL WHERE failures > 0{on_platform}
        ) AS f
        INNER JOIN (
            SELECT account_id AS r_id, argMax(entity_id, version) AS r_entity
            FROM {db}.{Table.ACCOUNTS}
            WHERE account_id IN (
                SELECT account_id FROM {db}.{Table.POLL_STATE} FINAL WHERE failures > 0{on_platform}
            )
            GROUP BY account_id
            HAVING argMax(deleted, version) = 0 AND argMax(state, version) NOT IN {{excluded:Array(String)}}
        ) AS r ON r.r_id = f.f_id
        INNER JOIN ({entities}) AS e ON e.e_id = r.r_entity
        GROUP BY f_platform, e_category, f_reason
    """
    out: dict[tuple[str, str], list[FailureReason]] = defaultdict(list)
    for p, c, reason, n, examples in client.query(sql, parameters=params).result_rows:
        out[(str(p), str(c))].append(
            FailureReason(
                str(reason) or "unknown",
                int(n),
                [FailureExample(str(e[1]), str(e[2]), e[3], str(e[4]), int(e[5])) for e in examples],
            )
        )
    for key, reasons in out.items():
        out[key] = sorted(reasons, key=lambda r: (-r.accounts, r.reason))[:TOP_REASONS]
    return out
