"""The snapshot's fields are declared once, by the model; every other place derives them or fails.

Places that name the fields of AccountSnapshot: the JSON Schema (tests/unit/test_contract.py checks its
properties and required fields against the model; counts are checked here), ingest's fast path, the
scoring worker's ``snapshots`` columns (and the migration that creates them), the simulator's event
text. The last test adds a field to a copy of the model and shows that each place notices.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import ConfigDict

from services.common import events
from services.common.events import (
    SNAPSHOT_ATTRIBUTES,
    SNAPSHOT_COUNTS,
    SNAPSHOT_FIELDS,
    SNAPSHOT_OMISSIBLE,
    AccountSnapshot,
    Count,
    NotNull,
    Text,
    count_fields,
    omissible_fields,
    published_fields,
)
from services.common.names import Table
from services.ingest import fastpath
from services.ingest.sources import simulator
from services.scoring import processor

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = REPO / "services" / "common" / "migrations"
SCHEMA = REPO / "schemas" / "events" / "account_snapshot.v1.json"

FULL = {
    "schema": "account_snapshot/1",
    "event_id": "e-1",
    "account_id": "facebook:grenoble",
    "platform": "facebook",
    "entity_id": "COM:38185",
    "handle": "Grenoble",
    "observed_at": "2025-01-02T03:04:05.678000Z",
    "followers": 11,
    "following": 12,
    "posts_total": 13,
    "posts_30d": 14,
    "interactions_30d": 15,
    "replies_30d": 16,
    "automated_posts_30d": 17,
    "status": "suspended",
    "source": "push",
}


def test_the_derived_declarations() -> None:
    assert SNAPSHOT_FIELDS[0] == "schema"  # the alias, as published
    assert SNAPSHOT_ATTRIBUTES["schema"] == "schema_version"
    assert list(SNAPSHOT_ATTRIBUTES) == list(SNAPSHOT_FIELDS)
    assert SNAPSHOT_COUNTS == (
        "followers",
        "following",
        "posts_total",
        "posts_30d",
        "interactions_30d",
        "replies_30d",
        "automated_posts_30d",
    )
    assert set(SNAPSHOT_OMISSIBLE) == {"entity_id", "handle", "source", *SNAPSHOT_COUNTS} - {"followers"}
    # FULL sets every field: the tests below mean something only then.
    assert list(FULL) == list(SNAPSHOT_FIELDS)
    assert json.loads(AccountSnapshot.model_validate(FULL).to_event_bytes()) == FULL


def test_the_schema_declares_the_models_counts_as_counts() -> None:
    schema: dict[str, Any] = json.loads(SCHEMA.read_text(encoding="utf-8"))
    counts = [name for name, prop in schema["properties"].items() if prop.get("$ref") == "#/$defs/count"]
    assert tuple(counts) == SNAPSHOT_COUNTS
    absent_allowed = [
        name for name in schema["properties"] if name not in schema["required"] and name in SNAPSHOT_OMISSIBLE
    ]
    assert tuple(absent_allowed) == SNAPSHOT_OMISSIBLE


def test_the_fast_path_takes_the_models_fields() -> None:
    assert fastpath.FIELDS == SNAPSHOT_FIELDS
    assert fastpath.COUNTS == SNAPSHOT_COUNTS
    fastpath.check_covers(SNAPSHOT_FIELDS, SNAPSHOT_COUNTS)
    fields = fastpath.snapshot_fields(FULL, events.parse_timestamp("2026-01-01T00:00:00Z"))
    assert fields is not None and list(fields) == list(SNAPSHOT_FIELDS)


def _created_columns(table: Table) -> list[str]:
    """The columns of ``table`` as the migrations create it (plus any ADD COLUMN of later ones)."""
    columns: list[str] = []
    for path in sorted(MIGRATIONS.glob("*.sql")):
        sql = path.read_text(encoding="utf-8").split("-- migrate:down")[0]
        created = re.search(
            rf"CREATE TABLE IF NOT EXISTS \{{db\}}\.{table.value} \((.*?)\n\) ENGINE", sql, re.DOTALL
        )
        if created:
            for line in created.group(1).splitlines():
                line = line.strip()
                if line and not line.startswith("--"):
                    columns.append(line.split()[0])
        added = rf"ALTER TABLE \{{db\}}\.{table.value}\s+ADD COLUMN(?: IF NOT EXISTS)? (\w+)"
        columns.extend(re.findall(added, sql))
    return columns


def test_the_snapshots_table_has_a_column_for_each_field_but_the_type_tag() -> None:
    assert tuple(f for f in SNAPSHOT_FIELDS if f != "schema") == processor.SNAPSHOT_COLUMNS
    assert _created_columns(Table.SNAPSHOTS) == list(processor.SNAPSHOT_COLUMNS)


def test_a_snapshot_row_holds_each_field_in_its_column() -> None:
    snapshot = AccountSnapshot.model_validate(FULL)
    row = dict(zip(processor.SNAPSHOT_COLUMNS, processor._snapshot_row(snapshot), strict=True))
    expected: dict[str, object] = {k: v for k, v in FULL.items() if k in processor.SNAPSHOT_COLUMNS}
    expected["observed_at"] = 1735787045678
    assert row == expected
    sparse = AccountSnapshot.model_validate(
        {k: FULL[k] for k in ("account_id", "platform", "observed_at", "followers")}
    )
    row = dict(zip(processor.SNAPSHOT_COLUMNS, processor._snapshot_row(sparse), strict=True))
    assert row["entity_id"] == row["source"] == ""
    assert row["status"] == "active"
    assert [row[c] for c in SNAPSHOT_COUNTS[1:]] == [None] * (len(SNAPSHOT_COUNTS) - 1)


def test_the_simulator_says_how_it_writes_each_field() -> None:
    assert list(simulator._WRITES) == list(SNAPSHOT_FIELDS)


# --- A field added to the model: each place that must know it notices.


class _WithViews(AccountSnapshot):
    model_config = ConfigDict(extra="forbid", frozen=True)
    views_30d: Annotated[Count | None, NotNull] = None


class _WithBio(AccountSnapshot):
    model_config = ConfigDict(extra="forbid", frozen=True)
    bio: Annotated[Text | None, NotNull] = None


@pytest.mark.parametrize("model", [_WithViews, _WithBio])
def test_a_new_field_cannot_be_forgotten(model: type[AccountSnapshot]) -> None:
    fields, counts = published_fields(model), count_fields(model)
    new = fields[-1]
    assert new not in SNAPSHOT_FIELDS and new in omissible_fields(model)
    # The fast path checks a new count by itself; any other field it refuses to load without.
    if new in counts:
        assert counts == (*SNAPSHOT_COUNTS, new)
        fastpath.check_covers(fields, counts)
    else:
        with pytest.raises(ImportError, match=new):
            fastpath.check_covers(fields, counts)
    # The simulator refuses to load until it says what it writes.
    with pytest.raises(ImportError, match=new):
        simulator._event_writer(gone=False, fields=fields)
    # The snapshots table gets a column, which the migrations do not create yet.
    assert new in processor.snapshot_columns(fields)
    assert new not in _created_columns(Table.SNAPSHOTS)
    # The JSON Schema does not have it (tests/unit/test_contract.py compares its properties to the model).
    schema: dict[str, Any] = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert list(schema["properties"]) == list(SNAPSHOT_FIELDS) != list(fields)
