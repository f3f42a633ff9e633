"""ClickHouse users of the production stack: one per service, each with the privileges its job needs.

SQL-driven access control (ClickHouse's recommended workflow; users and grants are kept in the server's
``access/`` directory, on its data volume): the administrator created by the server image
(``CLICKHOUSE_USER``, with ``access_management``) runs :func:`statements` through
``barometre access clickhouse`` before the migrations, and again whenever a password changes.

=====================  =====================================================================================
user                   privileges (``db`` is BAROMETRE_CLICKHOUSE_DATABASE)
=====================  =====================================================================================
``barometre_migrate``  ``ALL ON db.*``: the schema's owner (migrations, ``barometre rebuild``, tokens)
``barometre_ingest``   ``SELECT, INSERT ON db.*``
``barometre_scoring``  ``SELECT, INSERT ON db.*``
``barometre_poller``   ``SELECT, INSERT ON db.*``
``barometre_api``      ``SELECT ON db.*`` and ``INSERT`` on the few tables the api writes
                       (:data:`API_INSERT_TABLES`: acknowledgements, silences, webhooks)
=====================  =====================================================================================

No user has a privilege outside ``db``, nor grant options. The api is not ``readonly``: ClickHouse's
``readonly=2`` (queries and their settings allowed, writes refused) would refuse the INSERTs above as
well; its privileges keep it to reading plus those tables, and it may still set per-query limits
(``max_execution_time``...). Grants are replaced at each run (``WITH REPLACE OPTION``, one statement per
user, so a running service never sees a moment without its privileges); a password is set again at each
run (``ALTER USER``), so changing one in .env and re-running the one-shot rotates it.

The local ClickHouse endpoint (chDB, ``infra.clickhouse.server``) has a single user and no access control:
it neither runs nor enforces these statements. They are checked by ClickHouse's own parser
(``formatQuery``) in the tests, and applied for real by a ClickHouse server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from services.common.names import Table

__all__ = ["API_INSERT_TABLES", "ROLES", "grants", "statements", "user_name"]

#: The services that get a user of their own; their users are ``barometre_<role>``.
ROLES = ("migrate", "ingest", "scoring", "poller", "api")

#: The tables the api writes (services/api/alert_store.py); a test keeps this list in step with the code.
API_INSERT_TABLES: tuple[str, ...] = tuple(
    str(t) for t in (Table.ALERT_ACKS, Table.SILENCES, Table.WEBHOOK_SUBSCRIPTIONS, Table.WEBHOOK_DELIVERIES)
)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def user_name(role: str) -> str:
    """The ClickHouse user of ``role``."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    return f"barometre_{role}"


def _identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a plain identifier")
    return f"`{name}`"


def _string(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def grants(database: str, *, cluster: bool = False) -> dict[str, str]:
    """Role -> the privileges of its user (the part of a GRANT statement before ``TO``). On a cluster
    (``BAROMETRE_CLICKHOUSE_CLUSTER``) migrate also needs ``CLUSTER``: its statements run ``ON CLUSTER``."""
    db = _identifier(database)
    api_inserts = ", ".join(f"INSERT ON {db}.{_identifier(t)}" for t in API_INSERT_TABLES)
    return {
        "migrate": f"ALL ON {db}.*" + (", CLUSTER ON *.*" if cluster else ""),
        "ingest": f"SELECT, INSERT ON {db}.*",
        "scoring": f"SELECT, INSERT ON {db}.*",
        "poller": f"SELECT, INSERT ON {db}.*",
        "api": f"SELECT ON {db}.*, {api_inserts}",
    }


def statements(
    database: str, passwords: Mapping[str, str], *, mask: bool = False, cluster: bool = False
) -> list[str]:
    """The SQL that creates (or updates) the user of each role in ``passwords`` and sets its privileges.

    ``mask`` puts ``'***'`` in place of the passwords (for printing)."""
    privileges = grants(database, cluster=cluster)
    out: list[str] = []
    for role, password in passwords.items():
        user = _identifier(user_name(role))
        if not password:
            raise ValueError(f"the password of {user_name(role)} is empty")
        secret = "'***'" if mask else _string(password)
        out += [
            f"CREATE USER IF NOT EXISTS {user} IDENTIFIED WITH sha256_password BY {secret}",
            f"ALTER USER {user} IDENTIFIED WITH sha256_password BY {secret}",
            f"GRANT {privileges[role]} TO {user} WITH REPLACE OPTION",
        ]
    return out
