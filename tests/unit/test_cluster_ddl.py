"""The cluster DDL (services/common/migrations/cluster.py): what `barometre migrate` runs when
BAROMETRE_CLICKHOUSE_CLUSTER is set, checked statement by statement against the expected text of every
migration (tests/unit/cluster_ddl/<id>.<up|down>.sql), against the rules it must keep whatever the
text, and parsed by ClickHouse's own parser on the real endpoint.

A new migration fails `test_every_migration_has_its_expected_cluster_ddl` until its expected file is
written: print it with `python -m tests.unit.test_cluster_ddl` (cluster name "barometre"), read it, and
commit it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from services.common import migrations
from services.common.migrations.cluster import (
    EVERYWHERE,
    SHARDED,
    ClusterDDLError,
    cluster_script,
    cluster_statements,
)
from services.common.names import Table

EXPECTED = Path(__file__).resolve().parent / "cluster_ddl"
CLUSTER = "barometre"


def _render(statements: list[str]) -> str:
    return "".join(s + ";\n\n" for s in statements).rstrip() + "\n"


def _expected_files() -> dict[str, str]:
    out = {}
    for mig in migrations.discover():
        for section in ("up", "down"):
            out[f"{mig.id}.{section}.sql"] = _render(cluster_script(getattr(mig, section), CLUSTER))
    return out


@pytest.mark.parametrize("mig", migrations.discover(), ids=lambda m: m.id)
def test_every_migration_has_its_expected_cluster_ddl(mig: migrations.Migration) -> None:
    for section in ("up", "down"):
        path = EXPECTED / f"{mig.id}.{section}.sql"
        assert path.exists(), f"{path.name} missing: python -m tests.unit.test_cluster_ddl prints it"
        got = _render(cluster_script(getattr(mig, section), CLUSTER))
        assert got == path.read_text(encoding="utf-8"), f"{path.name} differs"


def test_no_expected_file_is_left_over() -> None:
    assert {p.name for p in EXPECTED.glob("*.sql")} == set(_expected_files())


def _all(section: str) -> list[str]:
    return [s for mig in migrations.discover() for s in cluster_script(getattr(mig, section), CLUSTER)]


def test_every_statement_runs_on_the_cluster() -> None:
    for statement in _all("up") + _all("down"):
        assert f" ON CLUSTER '{CLUSTER}'" in statement, statement[:80]


def test_every_table_is_placed_and_every_place_is_a_table() -> None:
    """Each table of ``Table`` is either sharded or on every node, never both, and the sets name no
    table that does not exist."""
    tables = {t.value for t in Table}
    assert set(SHARDED) | EVERYWHERE == tables
    assert not set(SHARDED) & EVERYWHERE


def test_sharded_tables_are_local_replicated_tables_behind_a_distributed_one() -> None:
    up = _all("up")
    for name, key in SHARDED.items():
        assert key == "cityHash64(entity_id)"  # an entity's accounts on one shard
        local = [s for s in up if s.startswith(f"CREATE TABLE IF NOT EXISTS {{db}}.{name}_local ")]
        dist = [s for s in up if s.startswith(f"CREATE TABLE IF NOT EXISTS {{db}}.{name} ")]
        assert len(local) == 1 and len(dist) == 1, name
        assert "ENGINE = Replicated" in local[0]
        assert "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'" in local[0]
        # The sharding key's column exists in the local table.
        assert re.search(r"^\s+entity_id String,$", local[0], re.MULTILINE), name
        assert dist[0].endswith(
            f"AS {{db}}.{name}_local\nENGINE = Distributed('{CLUSTER}', {{db}}, '{name}_local', {key})"
        )
        # The local table comes first: the Distributed table copies its columns.
        assert up.index(local[0]) < up.index(dist[0])


def test_small_tables_are_replicated_on_every_node_without_a_shard_in_their_path() -> None:
    for statement in _all("up"):
        m = re.match(r"CREATE TABLE IF NOT EXISTS \{db\}\.(\w+) ", statement)
        if m and m[1] in EVERYWHERE:
            assert "'/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}'" in statement
            assert "Distributed" not in statement


def test_engine_arguments_follow_the_keeper_path_and_replica() -> None:
    [local, _] = cluster_statements(
        "CREATE TABLE IF NOT EXISTS {db}.presence (a String) ENGINE = ReplacingMergeTree(version) ORDER BY a",
        "c1",
    )
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)"
        in local
    )
    [plain] = cluster_statements(
        "CREATE TABLE IF NOT EXISTS {db}.poll_failures (a String) ENGINE = MergeTree ORDER BY a", "c1"
    )
    assert (
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}')"
        in plain
    )


def test_column_alters_reach_the_local_and_the_distributed_table() -> None:
    got = cluster_statements("ALTER TABLE {db}.account_latest ADD COLUMN IF NOT EXISTS x UInt8", "c1")
    assert got == [
        "ALTER TABLE {db}.account_latest_local ON CLUSTER 'c1' ADD COLUMN IF NOT EXISTS x UInt8",
        "ALTER TABLE {db}.account_latest ON CLUSTER 'c1' ADD COLUMN IF NOT EXISTS x UInt8",
    ]
    with pytest.raises(ClusterDDLError, match="only column ALTERs"):
        cluster_statements("ALTER TABLE {db}.snapshots DELETE WHERE 1", "c1")


def test_materialized_views_write_and_read_the_local_tables() -> None:
    [view] = cluster_statements(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.mv TO {db}.account_daily AS "
        "SELECT * FROM {db}.snapshots JOIN {db}.entities USING entity_id",
        "c1",
    )
    assert view == (
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.mv ON CLUSTER 'c1' TO {db}.account_daily_local AS "
        "SELECT * FROM {db}.snapshots_local JOIN {db}.entities USING entity_id"
    )


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (
            "CREATE TABLE IF NOT EXISTS {db}.newthing (a String) ENGINE = MergeTree ORDER BY a",
            "neither sharded",
        ),
        (
            "CREATE TABLE IF NOT EXISTS {db}.entities (a String) ENGINE = ReplicatedMergeTree ORDER BY a",
            "already",
        ),
        ("INSERT INTO {db}.entities VALUES ('x')", "knows CREATE TABLE"),
        ("CREATE TABLE {db}.entities (a String) ENGINE = Memory", "knows CREATE TABLE"),
    ],
)
def test_statements_it_cannot_place_are_refused(statement: str, message: str) -> None:
    with pytest.raises(ClusterDDLError, match=message):
        cluster_statements(statement, "c1")


@pytest.mark.parametrize("name", ["", "a b", "x'; DROP TABLE t; --", "c" * 101])
def test_cluster_names_that_cannot_be_quoted_are_refused(name: str) -> None:
    with pytest.raises(ClusterDDLError, match="invalid cluster name"):
        cluster_statements("DROP TABLE IF EXISTS {db}.entities", name)


@pytest.mark.clickhouse
def test_clickhouse_parses_every_generated_statement(ch_client) -> None:  # type: ignore[no-untyped-def]
    """ClickHouse's own parser (``formatQuery``) accepts every statement (ON CLUSTER, the engines'
    arguments, Distributed, SYNC); running them needs a cluster with Keeper (docs/OPERATIONS.md)."""
    for statement in _all("up") + _all("down"):
        sql = statement.replace("{db}", "`barometre`")
        formatted = ch_client.command("SELECT formatQuery({q:String})", parameters={"q": sql})
        assert f"ON CLUSTER {CLUSTER}" in str(formatted), sql[:80]


if __name__ == "__main__":
    for file_name, text in _expected_files().items():
        sys.stdout.write(f"-- {file_name}\n{text}\n")


def test_the_cluster_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from services.common.settings import Settings

    assert Settings().clickhouse_cluster == ""
    monkeypatch.setenv("BAROMETRE_CLICKHOUSE_CLUSTER", "barometre")
    assert Settings().clickhouse_cluster == "barometre"
    monkeypatch.setenv("BAROMETRE_CLICKHOUSE_CLUSTER", "x'; DROP")
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.clickhouse
def test_clients_of_a_cluster_insert_synchronously_and_ship_subqueries(clickhouse_url: str) -> None:
    """On a cluster every client gets CLUSTER_SETTINGS; on one server, none of them."""
    from services.common.clickhouse import CLUSTER_SETTINGS, make_client
    from services.common.settings import Settings

    assert CLUSTER_SETTINGS == {"distributed_foreground_insert": 1, "distributed_product_mode": "global"}
    single = make_client(Settings(clickhouse_url=clickhouse_url), database=None)
    clustered = make_client(Settings(clickhouse_url=clickhouse_url, clickhouse_cluster="c"), database=None)
    try:
        assert single.get_client_setting("distributed_product_mode") is None
        assert clustered.get_client_setting("distributed_product_mode") == "global"
        assert str(clustered.get_client_setting("distributed_foreground_insert")) == "1"
    finally:
        single.close()
        clustered.close()


@pytest.mark.clickhouse
def test_on_a_cluster_migrate_may_run_on_cluster_statements(ch_client) -> None:  # type: ignore[no-untyped-def]
    """ON CLUSTER needs the CLUSTER privilege: migrate's user gets it on a cluster, and only there."""
    from infra.clickhouse.access import grants, statements

    assert grants("barometre", cluster=True)["migrate"] == "ALL ON `barometre`.*, CLUSTER ON *.*"
    assert "CLUSTER" not in grants("barometre")["migrate"]
    assert {r: g for r, g in grants("barometre", cluster=True).items() if r != "migrate"} == {
        r: g for r, g in grants("barometre").items() if r != "migrate"
    }
    [grant] = [s for s in statements("barometre", {"migrate": "pw"}, cluster=True) if s.startswith("GRANT")]
    formatted = str(ch_client.command("SELECT formatQuery({q:String})", parameters={"q": grant}))
    assert "CLUSTER ON *.*" in formatted
