"""The ClickHouse side of scoring: batched, idempotent writes that never drop data.

One :meth:`ClickHouseSink.write` per processed batch: each table gets one insert of all its rows, with
an ``insert_deduplication_token`` derived from the table and the batch's Kafka offsets, so a batch
written again after a crash (same events, same rows) is deduplicated by ClickHouse, and the tables'
ReplacingMergeTree keys collapse whatever still gets through. When ClickHouse does not answer, the
write is retried with back-off for as long as it takes: the worker pauses, it never drops a batch and
never commits offsets past rows that are not written (the agent awaits this call before acking). Only
:meth:`ClickHouseSink.stop` (the worker shutting down) ends the retries: the write then raises
:class:`SinkStopped` at once, the batch unwritten, and the worker leaves its offsets uncommitted.

``table_suffix`` sends every write and read to ``<table><suffix>`` instead (``barometre rebuild`` fills
fresh ``<table>__rebuild`` tables with the same code, then swaps them in); the live worker leaves it empty.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.external import ExternalData
from prometheus_client import Counter, Histogram

from services.common.names import AccountStatus, Table
from services.scoring.maths import DailyPoint

log = logging.getLogger(__name__)

ROWS_WRITTEN = Counter("barometre_scoring_rows_written_total", "Rows written to ClickHouse.", ["table"])
WRITE_SECONDS = Histogram(
    "barometre_scoring_write_seconds",
    "Time to write one batch to ClickHouse, retries included.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
WRITE_RETRIES = Counter("barometre_scoring_write_retries_total", "ClickHouse writes retried.")


class SinkStopped(Exception):
    """The sink was stopped while a batch still could not be written: that batch is not written."""


@dataclass
class TableRows:
    """The rows of one table in one batch, in ``columns`` order."""

    columns: Sequence[str]
    rows: list[list[object]] = field(default_factory=list)


@dataclass
class Statement:
    """A statement to run after the inserts of a batch (e.g. recomputing entity rollups).

    ``sets`` are one-column tables of strings (column ``key``) the statement reads by name, sent with it
    as external data. A long list belongs there, not in ``parameters``: a ClickHouse server refuses a
    form field longer than ``http_max_field_value_size`` (128 KiB by default), which a parameter of
    6,000 keys already is, and it parses an external table faster than an array parameter.
    """

    sql: str
    parameters: Mapping[str, object]
    sets: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def run(self, client: Client) -> None:
        external = ExternalData()
        for name, keys in self.sets.items():
            data = "".join(f"{_tsv_escape(key)}\n" for key in keys).encode()  # a row a line, "" included
            external.add_file(file_name=name, data=data, fmt="TabSeparated", structure=["key String"])
        # raw_query, not command: command always puts bound parameters in the URL; raw_query moves large
        # ones into a multipart form body.
        client.raw_query(
            self.sql, parameters=dict(self.parameters), external_data=external if external.files else None
        )


def _tsv_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def dedup_token(table: str, offsets: Mapping[int, tuple[int, int]]) -> str:
    """The deduplication token of ``table``'s insert for a batch covering ``offsets``
    (partition → first and last offset): the same events give the same token."""
    text = table + "|" + ",".join(f"{p}:{a}-{b}" for p, (a, b) in sorted(offsets.items()))
    return hashlib.sha256(text.encode()).hexdigest()


class ClickHouseSink:
    """Writes a batch's rows, table by table, retrying until ClickHouse takes them."""

    def __init__(
        self,
        client_factory: Callable[[], Client],
        db: str,
        *,
        max_backoff_s: float = 30.0,
        sleep: Callable[[float], object] | None = None,
        table_suffix: str = "",
    ) -> None:
        """``sleep`` waits between retries (default: the back-off, cut short by :meth:`stop`)."""
        self._client_factory = client_factory
        self._client: Client | None = None
        self._db = db
        self._suffix = table_suffix
        self._max_backoff = max_backoff_s
        self._stopping = threading.Event()
        self._sleep = sleep or self._stopping.wait
        self.healthy = True

    def stop(self) -> None:
        """Give up retrying: a write failing now, or waiting to retry, raises :class:`SinkStopped` at
        once (thread-safe; the worker's shutdown calls it so that it never waits on the back-off)."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def back_off(self, seconds: float, cause: Exception) -> None:
        """Wait ``seconds`` before retrying what failed with ``cause`` (a write, or a read such as
        :meth:`fetch_history`); raise :class:`SinkStopped` instead once the sink is stopped."""
        if not self.stopping:
            self._sleep(seconds)
        if self.stopping:
            raise SinkStopped(f"stopped while ClickHouse fails ({cause})") from cause

    def _get(self) -> Client:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def _write_once(
        self,
        tables: Mapping[Table, TableRows],
        offsets: Mapping[int, tuple[int, int]],
        after: Sequence[Statement],
    ) -> None:
        client = self._get()
        for table, data in tables.items():
            if not data.rows:
                continue
            # The token names the real target, so a rebuild's blocks never deduplicate live ones.
            target = table + self._suffix
            # clickhouse-connect's insert context is a reference cycle (it keeps a bound method of itself)
            # holding the rows: they would live, and be traversed by every young-generation collection,
            # until the cycle collector frees them. It gets a list of its own, emptied once written.
            rows = list(data.rows)
            client.insert(
                f"{self._db}.{target}",
                rows,
                column_names=list(data.columns),
                settings={"insert_deduplication_token": dedup_token(target, offsets)},
            )
            rows.clear()
            ROWS_WRITTEN.labels(table).inc(len(data.rows))
        for statement in after:
            statement.run(client)

    def write(
        self,
        tables: Mapping[Table, TableRows],
        offsets: Mapping[int, tuple[int, int]],
        after: Sequence[Statement] = (),
    ) -> None:
        """Write every table's rows, then run ``after``; retry the whole batch until it succeeds, or
        raise :class:`SinkStopped` once :meth:`stop` was called and an attempt failed.

        Inserts are idempotent (deduplication tokens, ReplacingMergeTree), so retrying the whole batch
        after a partial failure writes nothing twice that could change a figure.
        """
        delay = 0.5
        with WRITE_SECONDS.time():
            while True:
                try:
                    self._write_once(tables, offsets, after)
                    if not self.healthy:
                        log.info("ClickHouse answers again; writing resumed")
                    self.healthy = True
                    return
                except Exception as exc:  # any failure: keep the batch, wait, try again
                    WRITE_RETRIES.inc()
                    if self.healthy:
                        log.warning("ClickHouse write failed, retrying (the worker waits): %s", exc)
                    self.healthy = False
                    self._drop_client()
                    self.back_off(delay, exc)
                    delay = min(delay * 2, self._max_backoff)

    def refresh(
        self, find: Statement, statements: Callable[[list[tuple[str, str]]], Sequence[Statement]]
    ) -> int:
        """Run ``statements`` of the (platform, entity) pairs that ``find`` selects; return how many
        pairs. One attempt (a timer calls it again later), on a client of its own: the batches' writes
        go on meanwhile on the sink's client, which takes one request at a time."""
        client = self._client_factory()
        try:
            found = client.query(find.sql, parameters=dict(find.parameters)).result_rows
            pairs = [(str(platform), str(entity)) for platform, entity in found]
            for statement in statements(pairs):
                statement.run(client)
            return len(pairs)
        finally:
            client.close()

    def fetch_history(self, account_ids: Sequence[str]) -> dict[str, list[DailyPoint]]:
        """Every daily point of ``account_ids`` written so far (for points older than the state holds)."""
        rows = (
            self._get()
            .query(
                # Epoch ms straight from the server: clickhouse-connect returns naive datetimes for
                # columns in the server's own time zone (UTC), which to_ms cannot place.
                f"""SELECT account_id, toUnixTimestamp64Milli(observed_at), event_id, followers, status,
                       posts_30d, interactions_30d, replies_30d, automated_posts_30d
                FROM {self._db}.{Table.ACCOUNT_DAILY}{self._suffix} FINAL
                WHERE account_id IN {{ids:Array(String)}}
                ORDER BY account_id, day""",
                parameters={"ids": list(account_ids)},
            )
            .result_rows
        )
        out: dict[str, list[DailyPoint]] = {}
        for account_id, observed_ms, event_id, followers, status, p30, i30, r30, a30 in rows:
            out.setdefault(account_id, []).append(
                DailyPoint(observed_ms, event_id, followers, AccountStatus(status), p30, i30, r30, a30)
            )
        return out

    def _drop_client(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # a broken connection may fail to close; it is dropped all the same
                log.debug("closing the ClickHouse client failed", exc_info=True)
            self._client = None
