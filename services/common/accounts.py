"""Registered accounts with their review state, and their provenance (``account_sources``), in ClickHouse.

The one writer of the ``accounts`` table: imports and the simulator (through ``registry.write_accounts``),
``barometre discover``, ``barometre accounts reject``, and the poller (a rename, a gone account). Rows are
versioned (ReplacingMergeTree): every write is a whole row with a newer version, and reads take each
account's latest row (``argMax(..., version)``). Values are always bound as query parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from services.common.clickhouse import insert_rows
from services.common.names import AccountState, Table

DETAIL_LENGTH = 1_000  # how much of a reason is kept in ``state_reason``


@dataclass(frozen=True, slots=True)
class AccountRow:
    """An ``accounts`` row as it stands (its latest version)."""

    account_id: str
    platform: str
    entity_id: str
    handle: str | None
    url: str | None
    origin: str
    state: str
    platform_id: str | None = None
    discovered_at: datetime | None = None
    verified_at: datetime | None = None
    state_reason: str = ""
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One ``account_sources`` row: ``source`` named ``account_id`` for ``entity_id``."""

    account_id: str
    source: str
    entity_id: str
    platform: str
    handle: str | None
    url: str | None  # the link as the source gave it
    reference: str | None  # the source's id for the statement (a Wikidata item, an annuaire record)
    first_seen: datetime
    last_seen: datetime


_ACCOUNT_COLUMNS = [f.name for f in fields(AccountRow)]
_SOURCE_COLUMNS = [f.name for f in fields(SourceRow)]


def _latest_select(db: str) -> str:
    values = ", ".join(f"argMax({c}, version) AS {c}" for c in _ACCOUNT_COLUMNS[1:])
    return f"SELECT account_id, {values} FROM {db}.{Table.ACCOUNTS} GROUP BY account_id"


def _account(row: Sequence[object]) -> AccountRow:
    (
        account_id,
        platform,
        entity_id,
        handle,
        url,
        origin,
        state,
        platform_id,
        discovered,
        verified,
        reason,
        deleted,
    ) = row
    return AccountRow(
        account_id=str(account_id),
        platform=str(platform),
        entity_id=str(entity_id),
        handle=None if handle is None else str(handle),
        url=None if url is None else str(url),
        origin=str(origin),
        state=str(state),
        platform_id=None if platform_id is None else str(platform_id),
        discovered_at=discovered if isinstance(discovered, datetime) else None,
        verified_at=verified if isinstance(verified, datetime) else None,
        state_reason=str(reason or ""),
        deleted=bool(deleted),
    )


def read_accounts(client: Client, db: str) -> dict[str, AccountRow]:
    """Every registered account (deleted ones included, flagged), by id."""
    result = client.query(_latest_select(db))
    return {str(r[0]): _account(r) for r in result.result_rows}


def read_account(client: Client, db: str, account_id: str) -> AccountRow | None:
    """One account, or None when it was never registered."""
    result = client.query(
        f"SELECT * FROM ({_latest_select(db)}) WHERE account_id = {{id:String}}",
        parameters={"id": account_id},
    )
    return _account(result.result_rows[0]) if result.result_rows else None


def list_accounts(
    client: Client,
    db: str,
    *,
    platform: str | None = None,
    entity_id: str | None = None,
    state: str | None = None,
    origin: str | None = None,
    limit: int = 100,
) -> list[AccountRow]:
    """Registered, not deleted accounts matching every given filter, by account id."""
    conditions = ["deleted = 0"]
    parameters: dict[str, object] = {"limit": limit}
    for name, value in (
        ("platform", platform),
        ("entity_id", entity_id),
        ("state", state),
        ("origin", origin),
    ):
        if value is not None:
            conditions.append(f"{name} = {{{name}:String}}")
            parameters[name] = value
    result = client.query(
        f"SELECT * FROM ({_latest_select(db)}) WHERE {' AND '.join(conditions)} "
        "ORDER BY account_id LIMIT {limit:UInt32}",
        parameters=parameters,
    )
    return [_account(r) for r in result.result_rows]


def _write(
    client: Client, table: str, rows: Iterable[AccountRow | SourceRow], columns: list[str], version: int
) -> int:
    # The dataclasses' fields are the tables' columns, in order; every row is written whole.
    data = [[*(getattr(r, c) for c in columns), version] for r in rows]
    return insert_rows(client, table, data, [*columns, "version"])


def write_accounts(client: Client, db: str, rows: Iterable[AccountRow], version: int) -> int:
    """Write whole account rows at ``version``; return how many."""
    return _write(client, f"{db}.{Table.ACCOUNTS}", rows, _ACCOUNT_COLUMNS, version)


def update(client: Client, db: str, account_id: str, version: int, **changes: Any) -> AccountRow:
    """Write a new version of ``account_id``'s latest row with ``changes`` (column=value), every other
    column carried over; KeyError when the account is not registered (or deleted)."""
    current = read_account(client, db, account_id)
    if current is None or current.deleted:
        raise KeyError(account_id)
    row = replace(current, **changes)
    write_accounts(client, db, [row], version)
    return row


def reject(client: Client, db: str, account_id: str, reason: str, version: int) -> AccountRow:
    """Mark an account ``rejected`` (never polled again) with ``reason``; KeyError when unknown."""
    return update(client, db, account_id, version, state=AccountState.REJECTED.value, state_reason=reason)


def rename(client: Client, db: str, account_id: str, handle: str, version: int) -> AccountRow:
    """The platform now shows ``account_id`` under ``handle``: same account, new name."""
    return update(client, db, account_id, version, handle=handle)


def mark_gone(client: Client, db: str, account_id: str, reason: str, version: int) -> AccountRow:
    """The platform confirmed ``account_id`` gone: state ``gone`` (never polled again), with why."""
    return update(
        client, db, account_id, version, state=AccountState.GONE.value, state_reason=reason[:DETAIL_LENGTH]
    )


def read_sources(client: Client, db: str, account_id: str | None = None) -> list[SourceRow]:
    """Provenance rows (latest version of each), of one account or of all."""
    columns = ", ".join(f"argMax({c}, version)" for c in _SOURCE_COLUMNS[3:])
    where = "WHERE account_id = {id:String}" if account_id is not None else ""
    result = client.query(
        f"SELECT account_id, source, entity_id, {columns} FROM {db}.{Table.ACCOUNT_SOURCES} {where} "
        "GROUP BY account_id, source, entity_id ORDER BY account_id, source, entity_id",
        parameters={"id": account_id} if account_id is not None else None,
    )
    return [
        SourceRow(
            account_id=str(r[0]),
            source=str(r[1]),
            entity_id=str(r[2]),
            platform=str(r[3]),
            handle=None if r[4] is None else str(r[4]),
            url=None if r[5] is None else str(r[5]),
            reference=None if r[6] is None else str(r[6]),
            first_seen=r[7],
            last_seen=r[8],
        )
        for r in result.result_rows
    ]


def read_sources_for_entity_platform(
    client: Client, db: str, entity_id: str, platform: str
) -> list[SourceRow]:
    """Provenance naming any account of ``platform`` for ``entity_id`` (to show an entity's disagreements)."""
    rows = client.query(
        f"SELECT DISTINCT account_id FROM {db}.{Table.ACCOUNT_SOURCES} "
        "WHERE entity_id = {entity:String} AND platform = {platform:String}",
        parameters={"entity": entity_id, "platform": platform},
    ).result_rows
    out: list[SourceRow] = []
    for (account_id,) in rows:
        out.extend(s for s in read_sources(client, db, str(account_id)) if s.entity_id == entity_id)
    return out


def write_sources(client: Client, db: str, rows: Iterable[SourceRow], version: int) -> int:
    """Write provenance rows at ``version``; return how many."""
    return _write(client, f"{db}.{Table.ACCOUNT_SOURCES}", rows, _SOURCE_COLUMNS, version)


def entity_areas(client: Client, db: str) -> tuple[set[str], dict[str, str], dict[str, str]]:
    """(every entity id, commune → département code, commune → région code), from the registry."""
    result = client.query(
        f"SELECT entity_id, argMax(departement, version), argMax(region, version) FROM {db}.{Table.ENTITIES} "
        "GROUP BY entity_id"
    )
    known: set[str] = set()
    departement: dict[str, str] = {}
    region: dict[str, str] = {}
    for entity_id, dep, reg in result.result_rows:
        known.add(str(entity_id))
        if str(entity_id).startswith("COM:"):
            if dep:
                departement[str(entity_id)] = str(dep)
            if reg:
                region[str(entity_id)] = str(reg)
    return known, departement, region


__all__ = [
    "AccountRow",
    "SourceRow",
    "entity_areas",
    "list_accounts",
    "read_account",
    "read_accounts",
    "read_sources",
    "read_sources_for_entity_platform",
    "reject",
    "write_accounts",
    "write_sources",
]
