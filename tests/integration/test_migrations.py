"""The migration runner against the real ClickHouse endpoint."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from services.common import migrations

pytestmark = pytest.mark.clickhouse


@pytest.fixture
def database(ch_client):  # type: ignore[no-untyped-def]
    name = f"mig_{uuid.uuid4().hex[:10]}"
    yield name
    ch_client.command(f"DROP DATABASE IF EXISTS {name}")


def test_migrate_applies_once_and_records(ch_client, database: str) -> None:  # type: ignore[no-untyped-def]
    first = migrations.migrate(ch_client, database)
    assert first == [m.id for m in migrations.discover()]
    assert migrations.migrate(ch_client, database) == []
    assert set(migrations.applied(ch_client, database)) == set(first)
    tables = {r[0] for r in ch_client.query(f"SHOW TABLES FROM {database}").result_rows}
    assert {"schema_migrations", "entities"} <= tables


def test_edited_migration_is_refused(ch_client, database: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for path in migrations.MIGRATIONS_DIR.glob("*.sql"):
        shutil.copy(path, tmp_path / path.name)
    migrations.migrate(ch_client, database, tmp_path)
    first = sorted(tmp_path.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(migrations.MigrationError, match="edited after it was applied"):
        migrations.migrate(ch_client, database, tmp_path)


def test_new_migration_applies_and_rolls_back(ch_client, database: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for path in migrations.MIGRATIONS_DIR.glob("*.sql"):
        shutil.copy(path, tmp_path / path.name)
    migrations.migrate(ch_client, database, tmp_path)
    n = len(migrations.discover(tmp_path)) + 1
    (tmp_path / f"{n:04d}_extra.sql").write_text(
        "-- migrate:up\nCREATE TABLE {db}.extra (x UInt8) ENGINE = MergeTree ORDER BY x;\n"
        "-- migrate:down\nDROP TABLE {db}.extra;\n"
    )
    assert migrations.migrate(ch_client, database, tmp_path) == [f"{n:04d}_extra"]
    assert ch_client.command(f"EXISTS TABLE {database}.extra") == 1
    assert migrations.rollback(ch_client, database, n - 1, tmp_path) == [f"{n:04d}_extra"]
    assert ch_client.command(f"EXISTS TABLE {database}.extra") == 0
    assert f"{n:04d}_extra" not in migrations.applied(ch_client, database)


def test_failing_migration_names_itself(ch_client, database: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "0001_broken.sql").write_text(
        "-- migrate:up\nCREATE TABLE {db}.t (x Nope) ENGINE = Memory;\n-- migrate:down\n"
    )
    with pytest.raises(migrations.MigrationError, match="0001_broken failed"):
        migrations.migrate(ch_client, database, tmp_path)
    assert "0001_broken" not in migrations.applied(ch_client, database)
