"""The ClickHouse side of the alert stage: its writes (``alerts``, ``incidents``) and its reads
(``silences``, active accounts per platform). The one impure module of this package.

Writes never drop anything: :meth:`AlertStore.write` retries with back-off (``services.common.retry``)
until ClickHouse takes the rows, and the caller publishes on Kafka and commits only after it returned.
Only :meth:`AlertStore.stop` (the worker shutting down) ends the retries: the write then raises
:class:`StoreStopped`, nothing published, and the worker leaves the candidates' offsets uncommitted. Each
insert carries an ``insert_deduplication_token`` derived from the table and the rows themselves, so a
retry after a write that did succeed (a timeout on the answer) is deduplicated; a re-processing after a
crash gives rows of the same ids, which the tables' ReplacingMergeTree keys collapse.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence

from clickhouse_connect.driver.client import Client
from prometheus_client import Counter

from services.common.alert_tables import SILENCE_COLUMNS
from services.common.names import Table
from services.common.retry import Health, Retry, Retrying
from services.scoring.alerts.noise import Silence
from services.scoring.alerts.records import silence_from_row

log = logging.getLogger(__name__)

WRITE_RETRIES = Counter("barometre_alert_write_retries_total", "Alert and incident writes retried.")


class StoreStopped(Exception):
    """The store was stopped (shutdown) while rows still could not be written: they are not written."""


def content_token(table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """The deduplication token of an insert: the same rows into the same table, the same token."""
    text = json.dumps([table, list(columns), [list(r) for r in rows]], default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class AlertStore:
    """Reads and writes of the alert stage (module docstring)."""

    def __init__(
        self,
        client_factory: Callable[[], Client],
        db: str,
        *,
        max_backoff_s: float = 30.0,
        health: Health | None = None,
    ) -> None:
        """``health`` hears of failing writes (:attr:`Retrying.ALERT_WRITES`)."""
        self._client_factory = client_factory
        self._client: Client | None = None
        self._db = db
        self._max_backoff = max_backoff_s
        self._stopping = threading.Event()
        self._refused: set[str] = set()  # silences already reported as unusable
        self.health = health or Health()

    def stop(self) -> None:
        """Give up retrying (thread-safe): a write failing, or waiting to retry, raises
        :class:`StoreStopped`."""
        self._stopping.set()

    def retry(
        self,
        name: str,
        key: Retrying,
        detail: str,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> Retry:
        """A :class:`Retry` with the store's back-off, ended by :meth:`stop` (raising
        :class:`StoreStopped`): its writes use one, and so may the stage's reads."""
        return Retry(
            name,
            self.health,
            key,
            detail,
            max_s=self._max_backoff,
            stop=self._stopping,
            stopped=lambda exc: StoreStopped(f"stopped while ClickHouse fails ({exc})"),
            on_failure=on_failure,
        )

    @property
    def healthy(self) -> bool:
        """Whether writes go through (no write is being retried)."""
        return Retrying.ALERT_WRITES not in self.health

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopping.is_set()

    def _get(self) -> Client:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def write(self, tables: Mapping[Table, tuple[Sequence[str], Sequence[Sequence[object]]]]) -> None:
        """Insert each table's ``(columns, rows)``; retry all of them until ClickHouse takes them."""

        def insert() -> None:
            client = self._get()
            for table, (columns, rows) in tables.items():
                if rows:
                    client.insert(
                        f"{self._db}.{table}",
                        [list(r) for r in rows],
                        column_names=list(columns),
                        settings={"insert_deduplication_token": content_token(table, columns, rows)},
                    )

        def failed(exc: BaseException) -> None:  # any failure: keep the rows, wait, try again
            WRITE_RETRIES.inc()
            self.drop_client()

        self.retry(
            "Writing alerts to ClickHouse (the stage waits)",
            Retrying.ALERT_WRITES,
            "writes failing, retrying",
            on_failure=failed,
        ).call(insert)

    def silences(self, now_ms: int) -> list[Silence]:
        """The silences in force at ``now_ms`` or later (latest version of each). Rows noise control
        cannot use (no matcher, an unknown type…) are left out, with a warning once per silence."""
        columns = ", ".join(
            f"toUnixTimestamp64Milli({c})" if c in ("starts_at", "ends_at") else c for c in SILENCE_COLUMNS
        )
        rows = (
            self._get()
            .query(
                f"SELECT {columns} FROM {self._db}.{Table.SILENCES} FINAL "
                "WHERE ends_at > fromUnixTimestamp64Milli({now:Int64}, 'UTC') ORDER BY silence_id",
                parameters={"now": now_ms},
            )
            .result_rows
        )
        out: list[Silence] = []
        for row in rows:
            try:
                out.append(silence_from_row(row))
            except ValueError as exc:
                if row[0] not in self._refused:
                    self._refused.add(str(row[0]))
                    log.warning("Silence %s cannot be applied and is ignored: %s", row[0], exc)
        return out

    def active_accounts(self, staleness_days: int) -> dict[str, int]:
        """Per platform, the accounts whose latest point is active and fresh (within the staleness
        window): the denominator of the share of a platform an incident needs."""
        rows = (
            self._get()
            .query(
                "SELECT platform, countIf(status = 'active' AND observed_at > now64(3) - "
                "toIntervalDay({staleness:UInt32})) "
                f"FROM {self._db}.{Table.ACCOUNT_LATEST} FINAL GROUP BY platform",
                parameters={"staleness": staleness_days},
            )
            .result_rows
        )
        return {str(platform): int(count) for platform, count in rows}

    def watched_since(self) -> dict[str, int]:
        """Per platform, the earliest ``first_seen`` of its accounts (epoch ms): since when it is watched
        (a first point is an ``account_new`` alert only on a platform watched for a week)."""
        rows = (
            self._get()
            .query(
                "SELECT platform, toUnixTimestamp64Milli(min(first_seen)) "
                f"FROM {self._db}.{Table.ACCOUNT_LATEST} GROUP BY platform"
            )
            .result_rows
        )
        return {str(platform): int(first) for platform, first in rows}

    def drop_client(self) -> None:
        """Forget the client (after a failure: the next call opens a fresh connection)."""
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # a broken connection may fail to close; it is dropped all the same
                log.debug("closing the ClickHouse client failed", exc_info=True)
            self._client = None
