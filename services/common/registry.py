"""The registry in ClickHouse: entities (shipped + imported), registered accounts, named panels.

Written by ``barometre migrate`` (the shipped INSEE registry) and ``barometre import
entities|accounts|panel``; read by ingest to validate snapshots and by the api to name and filter.
These are reference tables, not events, so the command line writes them directly.

Versions make every write a replacement, never a blind duplicate: shipped rows carry
:data:`REFERENCE_VERSION`, user rows a nanosecond timestamp, so a user's override always wins and
re-loading the shipped registry never undoes it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from clickhouse_connect.driver.client import Client

from services.common import accounts
from services.common.clickhouse import insert_rows
from services.common.names import POLLED_STATES, AccountOrigin, AccountState, Table
from services.common.reference import AccountRecord, Entity, PanelMember, load_entities

# Bump when services/common/reference/registry/entities.csv.gz changes, so migrate reloads it.
REFERENCE_VERSION = 1


def user_version() -> int:
    """The version of a row a user writes now: later writes win."""
    return time.time_ns()


def _entity_row(e: Entity, source: str, version: int) -> list[object]:
    return [e.entity_id, e.name, e.category.value, e.population, e.departement, e.region, source, version]


_ENTITY_COLUMNS = [
    "entity_id",
    "name",
    "category",
    "population",
    "departement",
    "region",
    "source",
    "version",
]


def write_entities(client: Client, db: str, entities: Iterable[Entity], *, source: str, version: int) -> int:
    """Insert (or replace by id) ``entities``; return how many rows were written."""
    rows = [_entity_row(e, source, version) for e in entities]
    return insert_rows(client, f"{db}.{Table.ENTITIES}", rows, _ENTITY_COLUMNS)


def load_reference(client: Client, db: str) -> int:
    """Load the shipped registry unless this version is already there; return rows written (0 if none)."""
    entities = load_entities()
    present = client.command(
        f"SELECT count() FROM {db}.{Table.ENTITIES} WHERE source = 'insee' AND version = {{v:UInt64}}",
        parameters={"v": REFERENCE_VERSION},
    )
    if int(present) >= len(entities):  # type: ignore[arg-type]  # command returns the scalar here
        return 0
    return write_entities(client, db, entities, source="insee", version=REFERENCE_VERSION)


def write_accounts(
    client: Client,
    db: str,
    records: Iterable[AccountRecord],
    version: int,
    *,
    origin: AccountOrigin = AccountOrigin.IMPORT,
    state: AccountState = AccountState.VERIFIED,
) -> int:
    """Register (or re-register) official accounts, as coming from ``origin``.

    An import is a person's word: its accounts are ``verified``. The simulator registers its invented
    accounts with ``origin=AccountOrigin.SIMULATOR``, which no poller ever reads.
    """
    rows = [
        accounts.AccountRow(
            account_id=r.account_id,
            platform=r.platform.value,
            entity_id=r.entity_id,
            handle=r.handle,
            url=r.url,
            origin=origin.value,
            state=state.value,
            platform_id=r.platform_id,
        )
        for r in records
    ]
    return accounts.write_accounts(client, db, rows, version)


def write_panel(client: Client, db: str, members: Iterable[PanelMember], version: int) -> int:
    """Add entities to named panels."""
    rows = [[m.panel, m.entity_id, 0, version] for m in members]
    return insert_rows(client, f"{db}.{Table.PANELS}", rows, ["panel", "entity_id", "removed", "version"])


def known_entity_ids(client: Client, db: str) -> set[str]:
    """Every entity id in the registry (shipped and imported)."""
    result = client.query(f"SELECT DISTINCT entity_id FROM {db}.{Table.ENTITIES}")
    return {str(r[0]) for r in result.result_rows}


def registered_accounts(client: Client, db: str) -> Mapping[str, str]:
    """account_id → entity_id of every registered, not deleted, account."""
    result = client.query(
        f"SELECT account_id, argMax(entity_id, version), argMax(deleted, version) "
        f"FROM {db}.{Table.ACCOUNTS} GROUP BY account_id"
    )
    return {str(r[0]): str(r[1]) for r in result.result_rows if not r[2]}


def account_rows(
    client: Client, db: str, platforms: Iterable[str]
) -> list[tuple[str, str, str, str | None, str | None]]:
    """(account_id, platform, entity_id, handle, platform_id) of the accounts a poller may read on
    ``platforms``; ``platform_id`` is the stable id recorded at verification, None when unknown.

    Registered and not deleted, real (never a simulator account: polling an invented handle would ask
    a platform about an account that does not exist, or worse, about someone else's) and in a polled
    state (candidate or verified; not rejected, not gone).
    """
    result = client.query(
        f"SELECT account_id, argMax(platform, version), argMax(entity_id, version), argMax(handle, version), "
        "argMax(platform_id, version) "
        f"FROM {db}.{Table.ACCOUNTS} GROUP BY account_id HAVING argMax(deleted, version) = 0 "
        "AND argMax(platform, version) IN {platforms:Array(String)} "
        "AND argMax(origin, version) != {simulator:String} "
        "AND argMax(state, version) IN {states:Array(String)} ORDER BY account_id",
        parameters={
            "platforms": list(platforms),
            "simulator": AccountOrigin.SIMULATOR.value,
            "states": sorted(state.value for state in POLLED_STATES),
        },
    )
    return [(str(r[0]), str(r[1]), str(r[2]), r[3], r[4] or None) for r in result.result_rows]
