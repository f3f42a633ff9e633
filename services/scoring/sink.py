"""The ClickHouse side of scoring: batched, idempotent writes that never drop data.

One :meth:`ClickHouseSink.write` per processed batch: each table gets one insert of all its rows, with
an ``insert_deduplication_token`` derived from the table and the batch's Kafka offsets, so a batch
written again after a crash (same events, same rows) is deduplicated by ClickHouse, and the tables'
ReplacingMergeTree keys collapse whatever still gets through. When ClickHouse does not answer, the
write is retried with back-off for as long as it takes (``services.common.retry``): the worker pauses, it
never drops a batch and never commits offsets past rows that are not written (the agent awaits this call
before acking). Only :meth:`ClickHouseSink.stop` (the worker shutting down) ends the retries: the write
then raises :class:`SinkStopped` at once, the batch unwritten, and the worker leaves its offsets
uncommitted.

A row ClickHouse *rejects* (:func:`rejected`: a value its column or a constraint refuses, which no retry
cures) would stall every partition forever if retried. The batch's accounts are bisected instead
(``dead_letters.isolate_failures``) to find those whose rows are rejected on their own; the others' rows
are written and :meth:`ClickHouseSink.write` returns the rejected accounts, whose events the worker
dead-letters (``write_rejected``). Anything else (network, timeouts, too many parts, memory, a server
read-only or unavailable, an unknown error code) is transient and waited out.

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
from clickhouse_connect.driver.exceptions import DatabaseError, DataError
from clickhouse_connect.driver.external import ExternalData
from prometheus_client import Counter, Histogram

from services.common.names import AccountStatus, Table
from services.common.retry import Health, Retry, Retrying
from services.scoring.dead_letters import isolate_failures
from services.scoring.maths import DailyPoint

log = logging.getLogger(__name__)

ROWS_WRITTEN = Counter("barometre_scoring_rows_written_total", "Rows written to ClickHouse.", ["table"])
WRITE_SECONDS = Histogram(
    "barometre_scoring_write_seconds",
    "Time to write one batch to ClickHouse, retries included.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
WRITE_RETRIES = Counter("barometre_scoring_write_retries_total", "ClickHouse writes retried.")
REJECTED = Counter(
    "barometre_scoring_rows_rejected_total", "Accounts whose rows ClickHouse rejected (dead-lettered)."
)

# ClickHouse's error codes for data it refuses, which fail again on every retry: CANNOT_PARSE_TEXT (6),
# CANNOT_PARSE_QUOTED_STRING (26), CANNOT_PARSE_INPUT_ASSERTION_FAILED (27), ATTEMPT_TO_READ_AFTER_EOF
# (32), CANNOT_READ_ALL_DATA (33), CANNOT_PARSE_DATE (38), CANNOT_PARSE_DATETIME (41), TYPE_MISMATCH (53),
# ARGUMENT_OUT_OF_BOUND (69), CANNOT_CONVERT_TYPE (70), CANNOT_PARSE_NUMBER (72), INCORRECT_DATA (117),
# TOO_LARGE_STRING_SIZE (131), SIZES_OF_ARRAYS_DONT_MATCH (190), VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
# (321), CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN (349), FUNCTION_THROW_IF_VALUE_IS_NON_ZERO (395),
# VIOLATED_CONSTRAINT (469), UNKNOWN_ELEMENT_OF_ENUM (691). A list of what is known to be the data's
# fault, not of what is transient: an unknown code is waited out (a stall, seen on /readyz) rather than
# risk dead-lettering every batch for what is the server's or the deployment's fault (a missing table
# or column: UNKNOWN_TABLE, NO_SUCH_COLUMN_IN_TABLE).
REJECTION_CODES = frozenset(
    {6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 131, 190, 321, 349, 395, 469, 691}
)


def rejected(exc: BaseException) -> bool:
    """Whether ``exc``, raised by an insert, says that ClickHouse refuses the rows themselves: a server
    error of :data:`REJECTION_CODES`, or a value clickhouse-connect cannot encode in its column's type
    (a :class:`DataError` without a server code, e.g. a number out of a ``UInt32``'s range)."""
    if isinstance(exc, WriteRejected):
        return True
    if isinstance(exc, DataError) and exc.code is None:
        return True
    return isinstance(exc, DatabaseError) and exc.code in REJECTION_CODES


def _reasons(exc: BaseException) -> str:
    """``exc`` and its causes, first lines each (clickhouse-connect's encoding errors say which column
    and type only in their causes)."""
    seen: list[str] = []
    cause: BaseException | None = exc
    while cause is not None and len(seen) < 5:
        lines = str(cause).strip().splitlines()
        text = " ".join(lines[:2]) if lines else type(cause).__name__
        if text not in seen:
            seen.append(text)
        cause = cause.__cause__
    return "; ".join(seen)


class SinkStopped(Exception):
    """The sink was stopped while a batch still could not be written: that batch is not written."""


class WriteRejected(Exception):
    """ClickHouse rejects an insert's rows (:func:`rejected`); the cause is ClickHouse's error."""


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


def dedup_token(table: str, offsets: Mapping[int, tuple[int, int]], accounts: Sequence[str] = ()) -> str:
    """The deduplication token of ``table``'s insert for a batch covering ``offsets``
    (partition → first and last offset): the same events give the same token. A part of the batch
    (``accounts``, when some of its rows are rejected) has a token of its own, or ClickHouse would take
    it for the batch already written and drop it."""
    text = table + "|" + ",".join(f"{p}:{a}-{b}" for p, (a, b) in sorted(offsets.items()))
    if accounts:
        text += "|" + ",".join(sorted(accounts))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class _AccountRows:
    """One account's rows in a batch, by table (what bisecting a rejected batch moves around)."""

    account_id: str
    rows: dict[Table, list[list[object]]] = field(default_factory=dict)


def _by_account(tables: Mapping[Table, TableRows]) -> list[_AccountRows]:
    accounts: dict[str, _AccountRows] = {}
    for table, data in tables.items():
        if "account_id" not in data.columns:
            continue
        at = list(data.columns).index("account_id")
        for row in data.rows:
            account = str(row[at])
            found = accounts.get(account) or accounts.setdefault(account, _AccountRows(account))
            found.rows.setdefault(table, []).append(row)
    return list(accounts.values())


def _part(tables: Mapping[Table, TableRows], part: Sequence[_AccountRows]) -> dict[Table, TableRows]:
    """``tables`` with only the rows of the accounts of ``part`` (and the rows of no account)."""
    out: dict[Table, TableRows] = {}
    for table, data in tables.items():
        if "account_id" in data.columns:
            out[table] = TableRows(data.columns, [row for a in part for row in a.rows.get(table, ())])
        else:
            out[table] = data
    return out


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
        health: Health | None = None,
    ) -> None:
        """``sleep`` waits between retries (default: the back-off, cut short by :meth:`stop`);
        ``health`` hears of failing writes (:attr:`Retrying.CLICKHOUSE_WRITES`)."""
        self._client_factory = client_factory
        self._client: Client | None = None
        self._db = db
        self._suffix = table_suffix
        self._max_backoff = max_backoff_s
        self._stopping = threading.Event()
        self._sleep = sleep
        self.health = health or Health()
        self._writes = Retry(
            "ClickHouse write (the worker waits)",
            self.health,
            Retrying.CLICKHOUSE_WRITES,
            "writes failing, retrying",
            max_s=max_backoff_s,
            transient=lambda exc: isinstance(exc, Exception) and not isinstance(exc, WriteRejected),
            stop=self._stopping,
            stopped=lambda exc: SinkStopped(f"stopped while ClickHouse fails ({exc})"),
            on_failure=self._failed,
            sleep=sleep,
        )

    def stop(self) -> None:
        """Give up retrying: a write failing now, or waiting to retry, raises :class:`SinkStopped` at
        once (thread-safe; the worker's shutdown calls it so that it never waits on the back-off)."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def healthy(self) -> bool:
        """Whether writes go through (no write is being retried)."""
        return Retrying.CLICKHOUSE_WRITES not in self.health

    def retry(self, name: str, key: Retrying, detail: str) -> Retry:
        """A :class:`Retry` for other calls on ClickHouse (e.g. scoring, which reads old history), with
        the sink's back-off, ended like the sink's by :meth:`stop` (raising :class:`SinkStopped`)."""
        return Retry(
            name,
            self.health,
            key,
            detail,
            max_s=self._max_backoff,
            stop=self._stopping,
            stopped=lambda exc: SinkStopped(f"stopped while ClickHouse fails ({exc})"),
            on_failure=lambda exc: self._drop_client(),
        )

    def _failed(self, exc: BaseException) -> None:
        WRITE_RETRIES.inc()
        self._drop_client()

    def _get(self) -> Client:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def _insert(
        self,
        tables: Mapping[Table, TableRows],
        offsets: Mapping[int, tuple[int, int]],
        accounts: Sequence[str] = (),
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
            try:
                client.insert(
                    f"{self._db}.{target}",
                    rows,
                    column_names=list(data.columns),
                    settings={"insert_deduplication_token": dedup_token(target, offsets, accounts)},
                )
            except Exception as exc:
                if not rejected(exc):
                    raise
                self._drop_client()  # a client whose insert failed half-way is not reused
                raise WriteRejected(f"{target}: {_reasons(exc)}") from exc
            finally:
                rows.clear()
            ROWS_WRITTEN.labels(table).inc(len(data.rows))

    def _run(self, after: Sequence[Statement]) -> None:
        client = self._get()
        for statement in after:
            statement.run(client)

    def write(
        self,
        tables: Mapping[Table, TableRows],
        offsets: Mapping[int, tuple[int, int]],
        after: Sequence[Statement] = (),
    ) -> dict[str, WriteRejected]:
        """Write every table's rows, then run ``after``; retry the whole batch until it succeeds, or
        raise :class:`SinkStopped` once :meth:`stop` was called and an attempt failed. Returns the
        accounts whose rows ClickHouse rejects (module docstring), with why; their rows are not
        written, the others' are.

        Inserts are idempotent (deduplication tokens, ReplacingMergeTree), so retrying the whole batch
        after a partial failure writes nothing twice that could change a figure.
        """
        with WRITE_SECONDS.time():

            def whole() -> None:
                self._insert(tables, offsets)
                self._run(after)

            try:
                self._writes.call(whole)
                return {}
            except WriteRejected as exc:
                log.warning("ClickHouse rejects rows of a batch; finding whose: %s", exc)

            def part(accounts: list[_AccountRows]) -> None:
                ids = [a.account_id for a in accounts]
                self._writes.call(lambda: self._insert(_part(tables, accounts), offsets, ids))

            # Only rejections are bisected; anything else is waited out inside (or SinkStopped, raised).
            _, failed = isolate_failures(
                _by_account(tables), part, is_transient=lambda exc: not isinstance(exc, WriteRejected)
            )
            if after:
                self._writes.call(lambda: self._run(after))
            REJECTED.inc(len(failed))
            return {account: exc for account, exc in failed.items() if isinstance(exc, WriteRejected)}

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
