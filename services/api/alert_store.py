"""The ClickHouse side of alert delivery (migration 0004): alerts and their acknowledgements, incidents,
silences, webhook subscriptions and deliveries.

Every table is a ReplacingMergeTree keyed by its id and read with FINAL (a few thousand rows a day: the
merge on read costs nothing), so a replayed write never shows twice. Values always reach SQL as bound
parameters. Functions are synchronous and take the client to use; routes run them in worker threads.

An alert's ``status`` is not stored with it: it is ``acknowledged`` exactly when ``alert_acks`` has a
row for it. The first acknowledgement wins: its ``version`` is ``2**64 - 1 - acked_at in ms``, and
ReplacingMergeTree keeps the largest version.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from services.common.alert_tables import ALERT_FIELDS, INCIDENT_FIELDS, SILENCE_FIELDS
from services.common.names import AlertSeverity, AlertStatus, AlertType, Platform, Table

DATETIME = "DateTime64(3, 'UTC')"
U64_MAX = 2**64 - 1

SUBSCRIPTION_FIELDS = (
    "subscription_id",
    "url",
    "secret",
    "types",
    "platforms",
    "entity_ids",
    "min_severity",
    "description",
    "created_by",
    "created_at",
    "owner",  # the SHA-256 of the token that made it (migration 0007); never shown
)
DELIVERY_FIELDS = (
    "subscription_id",
    "alert_id",
    "attempts",
    "status",
    "http_status",
    "error",
    "first_attempt_at",
    "last_attempt_at",
)


def utc(moment: datetime) -> datetime:
    """clickhouse-connect reads DateTime64(3, 'UTC') as naive datetimes: they are UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _rows(fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        item = dict(zip(fields, row, strict=False))
        for key, value in item.items():
            if isinstance(value, datetime):
                item[key] = utc(value)
        out.append(item)
    return out


def _one(client: Client, sql: str, fields: Sequence[str], item_id: str) -> dict[str, Any] | None:
    """The row ``sql`` (with an ``{id:String}`` parameter) selects for ``item_id``, or None."""
    rows = client.query(sql, parameters={"id": item_id}).result_rows
    return _rows(fields, rows)[0] if rows else None


# --- Alerts.


@dataclass(frozen=True)
class AlertFilter:
    """What GET /v1/alerts and the stream select; None means any."""

    since: datetime | None = None
    type: AlertType | None = None
    platform: Platform | None = None
    entity_id: str | None = None
    account_id: str | None = None
    severity: AlertSeverity | None = None
    status: AlertStatus | None = None
    inhibited: bool = False  # include the alerts an incident inhibited (never published on alerts.v1)

    def conditions(self, db: str) -> tuple[list[str], dict[str, Any]]:
        conditions: list[str] = []
        params: dict[str, Any] = {}
        if not self.inhibited:
            conditions.append("inhibited_by IS NULL")
        if self.since is not None:
            conditions.append(f"detected_at >= {{since:{DATETIME}}}")
            params["since"] = self.since
        for name in ("type", "platform", "entity_id", "account_id", "severity"):
            value = getattr(self, name)
            if value is not None:
                conditions.append(f"{name} = {{{name}:String}}")
                params[name] = str(value)
        if self.status is not None:
            negate = "" if self.status is AlertStatus.ACKNOWLEDGED else "NOT "
            conditions.append(f"alert_id {negate}IN (SELECT alert_id FROM {db}.{Table.ALERT_ACKS})")
        return conditions, params


def list_alerts(
    client: Client, db: str, where: AlertFilter, limit: int, after: tuple[datetime, str] | None
) -> tuple[list[dict[str, Any]], bool]:
    """Alerts newest first (detected_at, then alert_id) after the cursor position ``after``, at most
    ``limit``; and whether there are more. Each has its ``status``."""
    conditions, params = where.conditions(db)
    if after is not None:
        conditions.append(f"(detected_at, alert_id) < ({{c_at:{DATETIME}}}, {{c_id:String}})")
        params.update(c_at=after[0], c_id=after[1])
    sql = (
        f"SELECT {', '.join(ALERT_FIELDS)}, "
        f"alert_id IN (SELECT alert_id FROM {db}.{Table.ALERT_ACKS}) AS acknowledged "
        f"FROM {db}.{Table.ALERTS} FINAL "
        + (f"WHERE {' AND '.join(conditions)} " if conditions else "")
        + "ORDER BY detected_at DESC, alert_id DESC LIMIT {n:UInt32}"
    )
    rows = client.query(sql, parameters={**params, "n": limit + 1}).result_rows
    items = [_with_status(item) for item in _rows((*ALERT_FIELDS, "acknowledged"), rows[:limit])]
    return items, len(rows) > limit


def _with_status(item: dict[str, Any]) -> dict[str, Any]:
    acknowledged = bool(item.pop("acknowledged"))
    item["status"] = (AlertStatus.ACKNOWLEDGED if acknowledged else AlertStatus.OPEN).value
    return item


def get_alert(client: Client, db: str, alert_id: str) -> dict[str, Any] | None:
    """One alert with ``details`` (parsed), ``inhibited_by`` and ``ack`` (null or who, when, why)."""
    rows = client.query(
        f"SELECT {', '.join(ALERT_FIELDS)}, details, inhibited_by FROM {db}.{Table.ALERTS} FINAL "
        "WHERE alert_id = {id:String}",
        parameters={"id": alert_id},
    ).result_rows
    if not rows:
        return None
    item = _rows((*ALERT_FIELDS, "details", "inhibited_by"), rows)[0]
    try:
        item["details"] = json.loads(item["details"]) if item["details"] else {}
    except ValueError:
        item["details"] = {"text": item["details"]}  # written by hand: shown, not lost
    item["ack"] = get_ack(client, db, alert_id)
    item["status"] = (AlertStatus.ACKNOWLEDGED if item["ack"] else AlertStatus.OPEN).value
    return item


def get_ack(client: Client, db: str, alert_id: str) -> dict[str, Any] | None:
    fields = ("acked_at", "acked_by", "comment")
    sql = f"SELECT {', '.join(fields)} FROM {db}.{Table.ALERT_ACKS} FINAL WHERE alert_id = {{id:String}}"
    return _one(client, sql, fields, alert_id)


def ack_version(acked_at: datetime) -> int:
    """The version of an acknowledgement: the earlier, the larger, so the first one is kept."""
    return U64_MAX - int(acked_at.timestamp() * 1000)


def insert_ack(client: Client, db: str, alert_id: str, acked_at: datetime, by: str, comment: str) -> None:
    client.insert(
        f"{db}.{Table.ALERT_ACKS}",
        [[alert_id, acked_at, by, comment, ack_version(acked_at)]],
        column_names=["alert_id", "acked_at", "acked_by", "comment", "version"],
    )


# --- Incidents.


def list_incidents(
    client: Client,
    db: str,
    *,
    since: datetime | None,
    platform: Platform | None,
    type: AlertType | None,
    status: str | None,
    limit: int,
    after: tuple[datetime, str] | None,
) -> tuple[list[dict[str, Any]], bool]:
    """Incidents newest first (detected_at, then incident_id); and whether there are more."""
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if since is not None:
        conditions.append(f"detected_at >= {{since:{DATETIME}}}")
        params["since"] = since
    for name, value in (("platform", platform), ("type", type), ("status", status)):
        if value is not None:
            conditions.append(f"{name} = {{{name}:String}}")
            params[name] = str(value)
    if after is not None:
        conditions.append(f"(detected_at, incident_id) < ({{c_at:{DATETIME}}}, {{c_id:String}})")
        params.update(c_at=after[0], c_id=after[1])
    sql = (
        f"SELECT {', '.join(INCIDENT_FIELDS)} FROM {db}.{Table.INCIDENTS} FINAL "
        + (f"WHERE {' AND '.join(conditions)} " if conditions else "")
        + "ORDER BY detected_at DESC, incident_id DESC LIMIT {n:UInt32}"
    )
    rows = client.query(sql, parameters={**params, "n": limit + 1}).result_rows
    return _rows(INCIDENT_FIELDS, rows[:limit]), len(rows) > limit


def get_incident(client: Client, db: str, incident_id: str) -> dict[str, Any] | None:
    sql = (
        f"SELECT {', '.join(INCIDENT_FIELDS)} FROM {db}.{Table.INCIDENTS} FINAL "
        "WHERE incident_id = {id:String}"
    )
    return _one(client, sql, INCIDENT_FIELDS, incident_id)


# --- Silences.


def insert_silence(client: Client, db: str, silence: dict[str, Any]) -> None:
    """Write ``silence`` (every field of SILENCE_FIELDS) as a new version."""
    client.insert(
        f"{db}.{Table.SILENCES}",
        [[silence[f] for f in SILENCE_FIELDS] + [time.time_ns()]],
        column_names=[*SILENCE_FIELDS, "version"],
    )


def list_silences(
    client: Client, db: str, *, active: bool | None, now: datetime, limit: int
) -> list[dict[str, Any]]:
    """Silences newest first; ``active`` True: in force at ``now``, False: not in force (ended or not
    started yet), None: all."""
    in_force = f"starts_at <= {{now:{DATETIME}}} AND {{now:{DATETIME}}} < ends_at"
    where = "" if active is None else f"WHERE {'' if active else 'NOT '}({in_force}) "
    rows = client.query(
        f"SELECT {', '.join(SILENCE_FIELDS)} FROM {db}.{Table.SILENCES} FINAL {where}"
        "ORDER BY created_at DESC, silence_id DESC LIMIT {n:UInt32}",
        parameters={"now": now, "n": limit},
    ).result_rows
    return _rows(SILENCE_FIELDS, rows)


def get_silence(client: Client, db: str, silence_id: str) -> dict[str, Any] | None:
    sql = (
        f"SELECT {', '.join(SILENCE_FIELDS)} FROM {db}.{Table.SILENCES} FINAL "
        "WHERE silence_id = {id:String}"
    )
    return _one(client, sql, SILENCE_FIELDS, silence_id)


# --- Webhook subscriptions and deliveries.


def insert_subscription(client: Client, db: str, subscription: dict[str, Any], deleted: bool = False) -> None:
    client.insert(
        f"{db}.{Table.WEBHOOK_SUBSCRIPTIONS}",
        [[subscription[f] for f in SUBSCRIPTION_FIELDS] + [int(deleted), time.time_ns()]],
        column_names=[*SUBSCRIPTION_FIELDS, "deleted", "version"],
    )


def list_subscriptions(client: Client, db: str, owner: str | None = None) -> list[dict[str, Any]]:
    """Every subscription not deleted (only ``owner``'s when given), oldest first, secrets included (the
    dispatcher signs with them; routes leave them out)."""
    mine = "" if owner is None else " AND owner = {owner:String}"
    rows = client.query(
        f"SELECT {', '.join(SUBSCRIPTION_FIELDS)} FROM {db}.{Table.WEBHOOK_SUBSCRIPTIONS} FINAL "
        f"WHERE deleted = 0{mine} ORDER BY created_at, subscription_id",
        parameters={} if owner is None else {"owner": owner},
    ).result_rows
    return _rows(SUBSCRIPTION_FIELDS, rows)


def get_subscription(
    client: Client, db: str, subscription_id: str, owner: str | None = None
) -> dict[str, Any] | None:
    """The subscription, when not deleted and (``owner`` given) ``owner``'s; else None."""
    mine = "" if owner is None else " AND owner = {owner:String}"
    rows = client.query(
        f"SELECT {', '.join(SUBSCRIPTION_FIELDS)} FROM {db}.{Table.WEBHOOK_SUBSCRIPTIONS} FINAL "
        f"WHERE subscription_id = {{id:String}} AND deleted = 0{mine}",
        parameters={"id": subscription_id} if owner is None else {"id": subscription_id, "owner": owner},
    ).result_rows
    return _rows(SUBSCRIPTION_FIELDS, rows)[0] if rows else None


def insert_deliveries(client: Client, db: str, deliveries: Sequence[dict[str, Any]]) -> None:
    """Write delivery states (each replaces the earlier state of its subscription and alert)."""
    if not deliveries:
        return
    version = time.time_ns()
    client.insert(
        f"{db}.{Table.WEBHOOK_DELIVERIES}",
        [[d[f] for f in DELIVERY_FIELDS] + [version + i] for i, d in enumerate(deliveries)],
        column_names=[*DELIVERY_FIELDS, "version"],
    )


def list_deliveries(client: Client, db: str, subscription_id: str, limit: int) -> list[dict[str, Any]]:
    """The deliveries of one subscription, the latest attempt first."""
    rows = client.query(
        f"SELECT {', '.join(DELIVERY_FIELDS)} FROM {db}.{Table.WEBHOOK_DELIVERIES} FINAL "
        "WHERE subscription_id = {id:String} ORDER BY last_attempt_at DESC, alert_id DESC LIMIT {n:UInt32}",
        parameters={"id": subscription_id, "n": limit},
    ).result_rows
    return _rows(DELIVERY_FIELDS, rows)
