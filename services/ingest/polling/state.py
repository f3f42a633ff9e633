"""The poller's memory in ClickHouse (migration 0006): ``poll_state``, one row per account, and
``poll_failures``, every failed attempt. (What a poll changes in the registry, a renamed account's new
handle or an account the platform confirmed gone, is written by ``services.common.accounts``.)

Times cross this module as aware UTC datetimes; the scheduler's seconds are epoch seconds of them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from services.common.clickhouse import insert_rows
from services.common.names import Table

_STATE_COLUMNS = [
    "platform",
    "account_id",
    "next_due",
    "cadence_s",
    "last_attempt_at",
    "last_success_at",
    "last_reason",
    "last_error",
    "failures",
    "version",
]
_FAILURE_COLUMNS = ["platform", "account_id", "failed_at", "reason", "detail"]
# A failure's detail is for people; a platform's error page must not bloat the log table.
DETAIL_LENGTH = 1_000


@dataclass(frozen=True, slots=True)
class PollState:
    """One account's row of ``poll_state``."""

    platform: str
    account_id: str
    next_due: datetime
    cadence_s: int
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    last_reason: str = ""  # the FailureReason of the last attempt; "" after a success
    last_error: str = ""
    failures: int = 0  # failed attempts in a row


@dataclass(frozen=True, slots=True)
class FailureRow:
    """One failed attempt, for ``poll_failures``."""

    platform: str
    account_id: str
    failed_at: datetime
    reason: str
    detail: str


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def load_states(client: Client, db: str, platforms: Iterable[str] | None = None) -> dict[str, PollState]:
    """account_id → its latest ``poll_state`` row, for ``platforms`` (all when None)."""
    where = ""
    parameters: dict[str, object] = {}
    if platforms is not None:
        where = "WHERE platform IN {platforms:Array(String)}"
        parameters["platforms"] = sorted(platforms)
    result = client.query(
        f"SELECT platform, account_id, next_due, cadence_s, last_attempt_at, last_success_at, "
        f"last_reason, last_error, failures FROM {db}.{Table.POLL_STATE} FINAL {where}",
        parameters=parameters,
    )
    states: dict[str, PollState] = {}
    for row in result.result_rows:
        next_due = _utc(row[2])
        assert next_due is not None  # the column is not Nullable
        states[str(row[1])] = PollState(
            platform=str(row[0]),
            account_id=str(row[1]),
            next_due=next_due,
            cadence_s=int(row[3]),
            last_attempt_at=_utc(row[4]),
            last_success_at=_utc(row[5]),
            last_reason=str(row[6]),
            last_error=str(row[7]),
            failures=int(row[8]),
        )
    return states


def write_states(client: Client, db: str, states: Sequence[PollState]) -> int:
    """Insert (replace by account) ``states``; return how many rows were written."""
    version = time.time_ns()
    rows = [
        [
            s.platform,
            s.account_id,
            s.next_due,
            max(0, min(int(s.cadence_s), 2**32 - 1)),
            s.last_attempt_at,
            s.last_success_at,
            s.last_reason,
            s.last_error[:DETAIL_LENGTH],
            s.failures,
            version,
        ]
        for s in states
    ]
    return insert_rows(client, f"{db}.{Table.POLL_STATE}", rows, _STATE_COLUMNS)


def append_failures(client: Client, db: str, failures: Sequence[FailureRow]) -> int:
    """Append ``failures`` to the ``poll_failures`` log; return how many rows were written."""
    rows = [[f.platform, f.account_id, f.failed_at, f.reason, f.detail[:DETAIL_LENGTH]] for f in failures]
    return insert_rows(client, f"{db}.{Table.POLL_FAILURES}", rows, _FAILURE_COLUMNS)
