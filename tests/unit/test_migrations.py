"""The migration files and their parser, without a server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.common import migrations
from services.common.names import Table


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parse_splits_sections_and_statements(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "0007_things.sql",
        "-- why the ORDER BY\n-- migrate:up\nCREATE TABLE {db}.a (x UInt8)\nENGINE = Memory;\n"
        "-- a comment\nCREATE TABLE {db}.b (x UInt8) ENGINE = Memory;\n"
        "-- migrate:down\nDROP TABLE {db}.b;\nDROP TABLE {db}.a;\n",
    )
    mig = migrations.parse(path)
    assert mig.id == "0007_things"
    assert mig.up == (
        "CREATE TABLE {db}.a (x UInt8)\nENGINE = Memory",
        "CREATE TABLE {db}.b (x UInt8) ENGINE = Memory",
    )
    assert mig.down == ("DROP TABLE {db}.b", "DROP TABLE {db}.a")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("7_bad.sql", "-- migrate:up\nSELECT 1;\n-- migrate:down\n", "named NNNN"),
        ("0001_x.sql", "SELECT 1;\n", "needs a '-- migrate:up'"),
        ("0001_x.sql", "-- migrate:up\n-- nothing\n-- migrate:down\n", "no statement"),
    ],
)
def test_parse_refuses_malformed_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(migrations.MigrationError, match=message):
        migrations.parse(write(tmp_path, name, text))


def test_duplicate_numbers_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "0001_a.sql", "-- migrate:up\nSELECT 1;\n-- migrate:down\n")
    write(tmp_path, "0001_b.sql", "-- migrate:up\nSELECT 2;\n-- migrate:down\n")
    with pytest.raises(migrations.MigrationError, match="duplicate"):
        migrations.discover(tmp_path)


def test_shipped_migrations_parse_and_are_numbered_in_order() -> None:
    found = migrations.discover()
    assert found, "the project ships migrations"
    assert [m.number for m in found] == list(range(1, len(found) + 1))
    for mig in found:
        assert mig.down, f"{mig.id} has no down step"


def test_engines_become_replicated_for_a_replicated_database() -> None:
    sql = "CREATE TABLE t (x UInt8) ENGINE = ReplacingMergeTree(version) ORDER BY x"
    assert migrations.replicated(sql) == (
        "CREATE TABLE t (x UInt8) ENGINE = ReplicatedReplacingMergeTree(version) ORDER BY x"
    )
    assert migrations.replicated("ENGINE=MergeTree ORDER BY x") == "ENGINE = ReplicatedMergeTree ORDER BY x"
    already = "ENGINE = ReplicatedMergeTree ORDER BY x"
    assert migrations.replicated(already) == already
    assert migrations.replicated("ENGINE = Memory") == "ENGINE = Memory"


def test_every_shipped_table_can_be_replicated() -> None:
    for mig in migrations.discover():
        for statement in mig.up:
            if "ENGINE" in statement and "MergeTree" in statement:
                assert "ENGINE = Replicated" in migrations.replicated(statement), mig.id


def test_every_table_the_migrations_create_is_named_once_in_the_enum() -> None:
    """``Table`` names exactly the tables the migrations leave behind, plus the runner's own log."""
    created: set[str] = set()
    for mig in migrations.discover():
        for statement in mig.up:
            for verb, name in re.findall(
                r"\b(CREATE TABLE|DROP TABLE)(?: IF (?:NOT )?EXISTS)? \{db\}\.(\w+)", statement
            ):
                (created.add if verb == "CREATE TABLE" else created.discard)(name)
    assert created, "no CREATE TABLE found: has the migrations' syntax changed?"
    assert created == {t.value for t in Table} - {Table.SCHEMA_MIGRATIONS}
