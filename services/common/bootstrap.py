"""Bring a ClickHouse database to the state the code expects: migrations, then the shipped registry."""

from __future__ import annotations

from dataclasses import dataclass

from services.common import migrations, registry
from services.common.clickhouse import make_client
from services.common.settings import Settings


@dataclass(frozen=True)
class Prepared:
    """What :func:`prepare_database` did."""

    applied: list[str]
    reference_rows: int

    def summary(self) -> str:
        parts = ["migrations: " + (", ".join(self.applied) if self.applied else "up to date")]
        if self.reference_rows:
            parts.append(f"reference registry: {self.reference_rows} entities loaded")
        return "; ".join(parts)


def prepare_database(settings: Settings) -> Prepared:
    """Apply pending migrations and load the shipped registry if needed (idempotent)."""
    db = settings.clickhouse_database
    client = make_client(settings, database=None)
    try:
        applied = migrations.migrate(client, db, cluster=settings.clickhouse_cluster)
        rows = registry.load_reference(client, db)
    finally:
        client.close()
    return Prepared(applied, rows)
