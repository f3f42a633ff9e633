"""Numbered, append-only ClickHouse migrations and the runner that applies them.

Each migration is a file ``NNNN_name.sql`` in this folder with two sections::

    -- migrate:up
    CREATE TABLE ... ;
    -- migrate:down
    DROP TABLE ... ;

Statements are separated by a ``;`` at the end of a line. ``{db}`` stands for the application database.
A migration is never edited once merged: the runner records each applied file's checksum in
``<db>.schema_migrations`` and refuses to go on if an applied file has changed, so a fix is a new file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clickhouse_connect.driver.client import Client

from services.common.migrations.cluster import check_cluster, cluster_script
from services.common.names import Table

MIGRATIONS_DIR = Path(__file__).resolve().parent
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_DATABASE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class MigrationError(RuntimeError):
    """The migrations on disk and those recorded in the database disagree, or one failed."""


@dataclass(frozen=True)
class Migration:
    """One migration file, parsed."""

    number: int
    name: str
    up: tuple[str, ...]
    down: tuple[str, ...]
    checksum: str

    @property
    def id(self) -> str:
        return f"{self.number:04d}_{self.name}"


def _statements(text: str) -> tuple[str, ...]:
    parts = re.split(r";\s*$", text, flags=re.MULTILINE)
    out = []
    for part in parts:
        # Comment lines say why; they are not sent to the server.
        lines = [ln for ln in part.splitlines() if not ln.strip().startswith("--")]
        stmt = "\n".join(lines).strip()
        if stmt:
            out.append(stmt)
    return tuple(out)


def parse(path: Path) -> Migration:
    """Parse one migration file; raises MigrationError when it does not follow the format."""
    m = _NAME.match(path.name)
    if not m:
        raise MigrationError(f"{path.name}: migration files are named NNNN_lowercase_name.sql")
    text = path.read_text(encoding="utf-8")
    if "-- migrate:up" not in text or "-- migrate:down" not in text:
        raise MigrationError(f"{path.name}: needs a '-- migrate:up' and a '-- migrate:down' section")
    before_down, down = text.split("-- migrate:down", 1)
    up = before_down.split("-- migrate:up", 1)[1]
    up_statements = _statements(up)
    if not up_statements:
        raise MigrationError(f"{path.name}: the up section has no statement")
    return Migration(
        number=int(m.group(1)),
        name=m.group(2),
        up=up_statements,
        down=_statements(down),
        checksum=hashlib.sha256(text.encode()).hexdigest(),
    )


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration in ``directory``, in order; numbers must be unique."""
    migrations = sorted((parse(p) for p in directory.glob("*.sql")), key=lambda mig: mig.number)
    numbers = [mig.number for mig in migrations]
    if len(numbers) != len(set(numbers)):
        raise MigrationError(f"duplicate migration numbers in {directory}")
    return migrations


_ENGINE = re.compile(r"\bENGINE\s*=\s*(?!Replicated)(\w*MergeTree)\b", re.IGNORECASE)


def replicated(statement: str) -> str:
    """``statement`` with its MergeTree-family engines made Replicated (``ReplacingMergeTree(version)`` →
    ``ReplicatedReplacingMergeTree(version)``), for a database with the Replicated engine: there the
    replica path and name come from the server's ``default_replica_path``/``default_replica_name``."""
    return _ENGINE.sub(lambda m: f"ENGINE = Replicated{m.group(1)}", statement)


def _is_replicated(client: Client, database: str) -> bool:
    engine = client.command(
        "SELECT engine FROM system.databases WHERE name = {db:String}", parameters={"db": database}
    )
    return str(engine) == "Replicated"


def _check_database(database: str) -> None:
    if not _DATABASE.match(database):
        raise MigrationError(f"invalid database name {database!r}")


# One row per applied migration; ReplacingMergeTree keyed by id so a re-recorded row replaces the old.
_LOG_TABLE = f"""CREATE TABLE IF NOT EXISTS {{db}}.{Table.SCHEMA_MIGRATIONS} (
            id String,
            checksum String,
            applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
        ) ENGINE = ReplacingMergeTree(applied_at) ORDER BY id"""


def _ensure_log(client: Client, database: str, cluster: str = "") -> None:
    if cluster:
        client.command(f"CREATE DATABASE IF NOT EXISTS `{database}` ON CLUSTER '{check_cluster(cluster)}'")
        for statement in cluster_script([_LOG_TABLE], cluster):
            client.command(statement.replace("{db}", f"`{database}`"))
        return
    client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    client.command(_LOG_TABLE.replace("{db}", f"`{database}`"))


def _rewrite(client: Client, database: str, cluster: str) -> Callable[[str], list[str]]:
    """How each statement of a migration is run: as written on one server; made Replicated in a
    Replicated database; ``ON CLUSTER`` local tables plus Distributed ones on a cluster (cluster.py)."""
    replicated_db = _is_replicated(client, database)
    if cluster:
        if replicated_db:
            raise MigrationError(
                f"{database} is a Replicated database: it replicates DDL itself, and ON CLUSTER statements "
                "are refused there; use either BAROMETRE_CLICKHOUSE_CLUSTER or a Replicated database"
            )
        return lambda sql: cluster_script([sql], cluster)
    if replicated_db:
        return lambda sql: [replicated(sql)]
    return lambda sql: [sql]


def applied(client: Client, database: str, cluster: str = "") -> dict[str, str]:
    """The migrations recorded as applied in ``database``: id → checksum."""
    _check_database(database)
    _ensure_log(client, database, cluster)
    query = f"SELECT id, checksum FROM `{database}`.{Table.SCHEMA_MIGRATIONS} FINAL"
    rows = client.query(query).result_rows
    return {str(r[0]): str(r[1]) for r in rows}


def migrate(client: Client, database: str, directory: Path = MIGRATIONS_DIR, cluster: str = "") -> list[str]:
    """Apply every pending migration in order; return the ids applied now. With ``cluster`` (a name of
    the servers' ``remote_servers``), every statement runs ON CLUSTER, sharded tables as local
    Replicated tables plus Distributed ones (services/common/migrations/cluster.py)."""
    _check_database(database)
    done = applied(client, database, cluster)
    known = {mig.id: mig for mig in discover(directory)}
    for mig_id, checksum in done.items():
        if mig_id not in known:
            raise MigrationError(f"{mig_id} is applied in {database} but its file is missing")
        if known[mig_id].checksum != checksum:
            raise MigrationError(
                f"{mig_id} was edited after it was applied; migrations are append-only, add a new one"
            )
    now: list[str] = []
    # A database created beforehand with the Replicated engine (docs/DEVELOPING.md) gets replicated
    # tables from the same files; a cluster name gets ON CLUSTER local + Distributed tables.
    rewrite = _rewrite(client, database, cluster)
    for mig in known.values():
        if mig.id in done:
            continue
        for statement in mig.up:
            try:
                for sql in rewrite(statement):
                    client.command(sql.replace("{db}", f"`{database}`"))
            except Exception as exc:
                raise MigrationError(f"{mig.id} failed: {exc}") from exc
        client.insert(
            f"`{database}`.{Table.SCHEMA_MIGRATIONS}",
            [[mig.id, mig.checksum]],
            column_names=["id", "checksum"],
        )
        now.append(mig.id)
    return now


def rollback(
    client: Client, database: str, to: int, directory: Path = MIGRATIONS_DIR, cluster: str = ""
) -> list[str]:
    """Undo applied migrations numbered above ``to``, newest first; return the ids undone."""
    _check_database(database)
    done = applied(client, database, cluster)
    undone: list[str] = []
    for mig in reversed(discover(directory)):
        if mig.number <= to or mig.id not in done:
            continue
        for statement in mig.down:
            for sql in cluster_script([statement], cluster) if cluster else [statement]:
                client.command(sql.replace("{db}", f"`{database}`"))
        client.command(
            f"DELETE FROM `{database}`.{Table.SCHEMA_MIGRATIONS} WHERE id = %(id)s",
            parameters={"id": mig.id},
        )
        undone.append(mig.id)
    return undone
