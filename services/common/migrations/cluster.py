"""The migrations' statements for a ClickHouse cluster (``BAROMETRE_CLICKHOUSE_CLUSTER``), derived from
the single-server statements by a pure transformation: the ``.sql`` files stay the one source of truth.

Two kinds of tables (docs/OPERATIONS.md, "A ClickHouse cluster"):

- **sharded** (:data:`SHARDED`: the scoring worker's per-account tables, millions of rows): a local
  table ``<name>_local`` on every node, ``Replicated…MergeTree`` with the Keeper path
  ``/clickhouse/tables/{shard}/{database}/{table}`` (the replicas of one shard share it), and under the
  public name a ``Distributed`` table over it, sharded by ``cityHash64(entity_id)``: every row of an
  entity, and so every account of it, is on one shard. The services read and write the public name.
- **everywhere** (:data:`EVERYWHERE`: the registry, tokens, alerts, webhooks, the poller's state:
  thousands to a few hundred thousand rows): one ``Replicated…MergeTree`` under the public name whose
  Keeper path has no ``{shard}`` (``/clickhouse/tables/all/{database}/{table}``), so every node of every
  shard holds every row. Subqueries over them (``entity_id IN (SELECT … FROM entities)``) then run
  locally on each shard with the whole table, and no query needs ``GLOBAL`` for them.

Every statement runs ``ON CLUSTER '<cluster>'``. A table the two sets do not name makes
:func:`cluster_statements` raise, so a new migration cannot silently create a table that lives on one
node only: its author chooses (and ``tests/unit/test_cluster_ddl.py`` fails until then).
"""

from __future__ import annotations

import re

# Sharding key of each sharded table: an entity's rows on one shard (the rule: an entity's
# accounts together). Every one of these tables has entity_id.
SHARDED: dict[str, str] = {
    "snapshots": "cityHash64(entity_id)",
    "account_daily": "cityHash64(entity_id)",
    "account_latest": "cityHash64(entity_id)",
    "presence": "cityHash64(entity_id)",
    "entity_latest": "cityHash64(entity_id)",
}
# Small tables, a full copy on every node.
EVERYWHERE: frozenset[str] = frozenset(
    {
        "schema_migrations",
        "entities",
        "accounts",
        "panels",
        "api_tokens",
        "alerts",
        "alert_acks",
        "incidents",
        "silences",
        "webhook_subscriptions",
        "webhook_deliveries",
        "account_sources",
        "poll_state",
        "poll_failures",
    }
)
LOCAL_SUFFIX = "_local"
# ClickHouse expands the macros per node: {shard} and {replica} from the server's <macros>, {database}
# and {table} from the statement.
SHARD_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
EVERYWHERE_PATH = "/clickhouse/tables/all/{database}/{table}"
REPLICA = "{replica}"
# In the one replication group of an "everywhere" table, replica names must be unique across shards:
# with per-shard replica macros (r1, r2 on each shard) {replica} alone would collide.
EVERYWHERE_REPLICA = "{shard}-{replica}"

_CLUSTER = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_CREATE = re.compile(
    r"^CREATE TABLE IF NOT EXISTS (?P<db>\S+)\.(?P<name>\w+)\s*\((?P<body>.*)\)\s*"
    r"ENGINE\s*=\s*(?P<engine>\w*MergeTree)(?:\((?P<args>[^)]*)\))?(?P<rest>.*)$",
    re.DOTALL,
)
_ALTER = re.compile(r"^ALTER TABLE (?P<db>\S+)\.(?P<name>\w+) (?P<rest>.*)$", re.DOTALL)
_DROP = re.compile(r"^DROP TABLE IF EXISTS (?P<db>\S+)\.(?P<name>\w+)$")
_DROP_VIEW = re.compile(r"^DROP VIEW IF EXISTS \S+\.\w+$")
_VIEW = re.compile(
    r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (?P<db>\S+)\.(?P<name>\w+) TO (?P<tdb>\S+)\.(?P<target>\w+)"
    r"(?P<rest>.*)$",
    re.DOTALL,
)
# ALTERs a Distributed table takes as well (its columns must follow its local table's).
_COLUMN_ALTER = re.compile(r"^(ADD|DROP|MODIFY|RENAME|COMMENT) COLUMN\b")


class ClusterDDLError(ValueError):
    """A statement the cluster transformation does not know how to place on the cluster."""


def check_cluster(cluster: str) -> str:
    """``cluster`` if it is a name we can quote into SQL, else ClusterDDLError."""
    if not _CLUSTER.match(cluster):
        raise ClusterDDLError(f"invalid cluster name {cluster!r} (letters, digits, '_', '.', '-')")
    return cluster


def _engine(engine: str, args: str | None, path: str, replica: str) -> str:
    if engine.startswith("Replicated"):
        raise ClusterDDLError(f"engine {engine} is already Replicated: write single-server engines")
    extra = f", {args.strip()}" if args and args.strip() else ""
    return f"Replicated{engine}('{path}', '{replica}'{extra})"


def _kind(name: str) -> str:
    base = name.removesuffix(LOCAL_SUFFIX) if name.endswith(LOCAL_SUFFIX) else name
    if base in SHARDED:
        return "sharded"
    if base in EVERYWHERE:
        return "everywhere"
    raise ClusterDDLError(
        f"table {name!r} is neither sharded nor on every node: add it to SHARDED (with a sharding key) "
        "or EVERYWHERE in services/common/migrations/cluster.py"
    )


def cluster_statements(statement: str, cluster: str) -> list[str]:
    """The statements that do on ``cluster`` what ``statement`` does on one server (``{db}``
    placeholders are kept). Raises ClusterDDLError for a statement it cannot place."""
    on = f"ON CLUSTER '{check_cluster(cluster)}'"
    text = statement.strip()
    if m := _CREATE.match(text):
        db, name, body, rest = m["db"], m["name"], m["body"], m["rest"].rstrip()
        if _kind(name) == "everywhere":
            engine = _engine(m["engine"], m["args"], EVERYWHERE_PATH, EVERYWHERE_REPLICA)
            return [f"CREATE TABLE IF NOT EXISTS {db}.{name} {on} ({body})\nENGINE = {engine}{rest}"]
        local = f"{name}{LOCAL_SUFFIX}"
        engine = _engine(m["engine"], m["args"], SHARD_PATH, REPLICA)
        return [
            f"CREATE TABLE IF NOT EXISTS {db}.{local} {on} ({body})\nENGINE = {engine}{rest}",
            f"CREATE TABLE IF NOT EXISTS {db}.{name} {on} AS {db}.{local}\n"
            f"ENGINE = Distributed('{cluster}', {db}, '{local}', {SHARDED[name]})",
        ]
    if m := _VIEW.match(text):
        # A view on every node, fed by the inserts into the local tables (a Distributed table forwards
        # its rows to them), writing into the local table of a sharded target: each shard's rows stay on
        # it. It must read the source table it names (FROM a sharded table: its local table).
        target, rest = m["target"], m["rest"]
        if _kind(target) == "sharded":
            target += LOCAL_SUFFIX
        rest = re.sub(
            r"\bFROM (\S+)\.(\w+)\b",
            lambda f: f"FROM {f[1]}.{f[2]}{LOCAL_SUFFIX if _kind(f[2]) == 'sharded' else ''}",
            rest,
        )
        return [
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {m['db']}.{m['name']} {on} TO {m['tdb']}.{target}{rest}"
        ]
    if m := _ALTER.match(text):
        db, name, rest = m["db"], m["name"], m["rest"]
        if _kind(name) == "everywhere":
            return [f"ALTER TABLE {db}.{name} {on} {rest}"]
        if not _COLUMN_ALTER.match(rest.strip()):
            raise ClusterDDLError(f"only column ALTERs of a sharded table are supported: {text[:80]!r}")
        return [
            f"ALTER TABLE {db}.{name}{LOCAL_SUFFIX} {on} {rest}",
            f"ALTER TABLE {db}.{name} {on} {rest}",
        ]
    if m := _DROP_VIEW.match(text):
        return [f"{text} {on} SYNC"]
    if m := _DROP.match(text):
        db, name = m["db"], m["name"]
        if _kind(name) == "everywhere":
            return [f"DROP TABLE IF EXISTS {db}.{name} {on} SYNC"]
        return [
            f"DROP TABLE IF EXISTS {db}.{name} {on} SYNC",
            f"DROP TABLE IF EXISTS {db}.{name}{LOCAL_SUFFIX} {on} SYNC",
        ]
    raise ClusterDDLError(
        "the cluster transformation knows CREATE TABLE IF NOT EXISTS … ENGINE = …MergeTree, "
        "CREATE MATERIALIZED VIEW IF NOT EXISTS … TO …, ALTER TABLE, DROP TABLE|VIEW IF EXISTS; "
        f"not: {text[:80]!r}"
    )


def cluster_script(statements: tuple[str, ...] | list[str], cluster: str) -> list[str]:
    """Every statement of a migration section, transformed, in order."""
    return [out for statement in statements for out in cluster_statements(statement, cluster)]
