"""The ClickHouse store: how every service gets a client, and writes rows in batches.

Services only ever speak ClickHouse's HTTP interface (``http://`` or ``https://`` DSNs), so the same code
runs against the local chDB endpoint (``infra/clickhouse``) and a real ClickHouse server or cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from services.common.settings import Settings


class ClickHouseConfigError(ValueError):
    """The configured ClickHouse URL is not one services can use."""


def parse_url(url: str) -> tuple[str, int, bool]:
    """Split an ``http(s)://host:port`` URL into (host, port, secure); anything else is refused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClickHouseConfigError(
            f"BAROMETRE_CLICKHOUSE_URL must be an http:// or https:// URL, got {url!r}"
        )
    secure = parts.scheme == "https"
    return parts.hostname, parts.port or (8443 if secure else 8123), secure


CLUSTER_SETTINGS = {"distributed_foreground_insert": 1, "distributed_product_mode": "global"}


def make_client(settings: Settings, *, database: str | None = "", **kwargs: Any) -> Client:
    """A clickhouse-connect HTTP client for the configured server.

    ``database=""`` (the default) means the application database from settings; ``None`` means the
    server's default database, which is what migrations need before the application database exists.
    """
    host, port, secure = parse_url(settings.clickhouse_url)
    db = settings.clickhouse_database if database == "" else database
    if settings.clickhouse_cluster:
        # On a cluster (docs/OPERATIONS.md, "A ClickHouse cluster"): an INSERT into a Distributed table
        # returns once every shard has its rows (not when they are queued on this node), so a batch that
        # is acknowledged is written; a subquery over a Distributed table inside a distributed query is
        # run once on the initiator and sent to the shards (GLOBAL), which is right whatever the sharding.
        kwargs["settings"] = {**CLUSTER_SETTINGS, **(kwargs.get("settings") or {})}
    return clickhouse_connect.get_client(
        host=host,
        port=port,
        secure=secure,
        username=settings.clickhouse_user,
        password=settings.clickhouse_password.get_secret_value(),
        database=db or None,
        **kwargs,
    )


def query_limits(settings: Settings) -> dict[str, str]:
    """The ClickHouse settings that bound every api query (a zero setting leaves the server's own):
    its time (``max_execution_time``: the query is stopped there, also when the HTTP client that asked
    for it has gone away), its memory and the rows of its answer (``result_overflow_mode='throw'``: an
    error, never a silently cut answer)."""
    limits: dict[str, str] = {}
    if settings.api_query_timeout_s > 0:
        limits["max_execution_time"] = f"{settings.api_query_timeout_s:g}"
        limits["timeout_overflow_mode"] = "throw"
    if settings.api_query_max_memory_bytes > 0:
        limits["max_memory_usage"] = str(settings.api_query_max_memory_bytes)
    if settings.api_query_max_result_rows > 0:
        limits["max_result_rows"] = str(settings.api_query_max_result_rows)
        limits["result_overflow_mode"] = "throw"
    return limits


# Rows per INSERT: bounds the size of one request (and of the client's buffer) for large writes.
INSERT_BATCH = 50_000


def insert_rows(client: Client, table: str, rows: Sequence[Sequence[object]], columns: Sequence[str]) -> int:
    """Insert ``rows`` (values in ``columns`` order) into ``table`` in batches; return how many rows."""
    for start in range(0, len(rows), INSERT_BATCH):
        client.insert(table, rows[start : start + INSERT_BATCH], column_names=columns)
    return len(rows)
