"""The scoring worker's error policy: what becomes a dead letter, what is waited out, what is retried.

DESIGN.md principle 5: anything bad that reaches the snapshots topic goes to ``account-snapshots.dlq``
with its reason, and the worker never crashes on it. This module holds the decisions, as pure functions
testable without a broker; ``services.scoring.app`` applies them to each batch.

Bad input (:func:`classify`), one record at a time, in this order:

- a null value (a tombstone) → ``invalid_event``: the topic is an append-only log of observations, an
  account that disappears is a snapshot with ``status: deleted``;
- a value that is not UTF-8 → ``invalid_encoding``; UTF-8 but not one JSON document → ``invalid_json``;
- JSON that breaks the AccountSnapshot contract → ``invalid_event``, with every reason
  (:func:`~services.common.events.describe_validation_error`);
- a valid event whose record key is not its (normalised) ``account_id``, or that has no key →
  ``invalid_event``: the key decides the partition, so a wrong key would put the account's events on two
  partitions, whose state two workers would then keep apart.

Failures while scoring valid events (:func:`isolate_failures`):

- an error of a dependency (the ClickHouse client, the network: :func:`is_infrastructure_error`) is not
  the events' fault: the batch is retried, with back-off, until it goes through; the worker is not ready
  meanwhile, and it commits nothing (ClickHouse *writes* follow the same rule, in the sink, except rows
  ClickHouse rejects: the sink bisects those with :func:`isolate_failures` too, and the worker
  dead-letters the rejected accounts' events with ``write_rejected``);
- any other exception is taken to be the processor failing on some account's data, which would fail
  again on every retry: the batch's accounts are bisected to find the ones that fail on their own; their
  events in the batch go to the dead-letter topic with ``processing_error`` (the exception and where it
  was raised) and the rest of the batch is scored and written as usual. Replaying the dead letters once
  the bug is fixed scores them (processing is idempotent). Should accounts fail only together, never
  alone (never seen), half of such a group is dead-lettered, so the worker always moves on.

Every dead letter is acknowledged by Kafka before the batch's offsets can be committed (the agent
awaits the sends, retrying until Kafka takes them), so a record is either scored, or on the dead-letter
topic, or consumed again after a restart; never lost. Anything else that fails while handling a batch is
the worker's own plumbing: the whole batch is retried in place (every write is idempotent), and a batch
cut short by a rebalance or a shutdown keeps its offsets out of every commit (``app.hold_back``).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple, Protocol, TypeVar

from clickhouse_connect.driver.exceptions import ClickHouseError
from pydantic import ValidationError

from services.common.events import AccountSnapshot, DeadLetter, describe_validation_error
from services.common.names import DeadLetterCode

T = TypeVar("T")


class OfAccount(Protocol):
    """Anything of one account: a snapshot, or an account's rows in a batch (the sink's)."""

    @property
    def account_id(self) -> str: ...


A = TypeVar("A", bound=OfAccount)

SERVICE = "scoring"


class Rejection(NamedTuple):
    """Why a record is dead-lettered: its code and a message for people."""

    code: DeadLetterCode
    message: str


def classify(key: bytes | None, value: bytes | None) -> AccountSnapshot | Rejection:
    """The snapshot in a record of the snapshots topic, or why it must be dead-lettered."""
    if value is None:
        return Rejection(
            DeadLetterCode.INVALID_EVENT,
            "the value is null (a tombstone): snapshots are never deleted from the log; "
            "an account that is gone is a snapshot with status 'deleted'",
        )
    try:
        snapshot = AccountSnapshot.from_event_bytes(value)
    except ValidationError as exc:
        return _invalid_value(value, exc)
    # The fast path above parses the bytes once; the checks below run only on a valid event.
    expected = snapshot.account_id.encode()
    if key is None:
        return Rejection(
            DeadLetterCode.INVALID_EVENT,
            f"the record has no key: its key must be the event's account_id {snapshot.account_id!r} "
            "(UTF-8), which decides its partition",
        )
    if key != expected:
        return Rejection(
            DeadLetterCode.INVALID_EVENT,
            f"the record key {_show(key)} is not the event's account_id {snapshot.account_id!r}: the key "
            "must be the normalised account_id, which decides the partition of the account's events",
        )
    return snapshot


def _invalid_value(value: bytes, exc: ValidationError) -> Rejection:
    # pydantic's JSON parser reports bad UTF-8 and bad JSON alike ("json_invalid"): tell them apart here,
    # off the hot path, since only refused records get this far.
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as bad:
        return Rejection(
            DeadLetterCode.INVALID_ENCODING,
            f"the value is not UTF-8: byte 0x{value[bad.start]:02x} at position {bad.start} ({bad.reason})",
        )
    code = (
        DeadLetterCode.INVALID_JSON
        if any(error["type"] == "json_invalid" for error in exc.errors(include_url=False))
        else DeadLetterCode.INVALID_EVENT
    )
    return Rejection(code, describe_validation_error(exc))


def _show(raw: bytes) -> str:
    return repr(raw.decode("utf-8", errors="backslashreplace"))


def is_infrastructure_error(exc: BaseException) -> bool:
    """True for a failure of a dependency (ClickHouse client, network), which waiting can cure."""
    return isinstance(exc, ClickHouseError | OSError)


def describe_processing_error(account_id: str | None, exc: BaseException) -> str:
    """The dead-letter message of a record the worker failed on: scoring ``account_id`` (a valid
    event), or reading the record at all (``None``)."""
    what = "reading the record" if account_id is None else f"scoring account {account_id!r}"
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        where = f" (raised at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})"
    return f"{what} failed: {type(exc).__name__}: {exc}{where}"


def describe_rejection(account_id: str, exc: BaseException) -> str:
    """The dead-letter message of an event whose account's rows ClickHouse rejects: ClickHouse's error
    (the server's text, without its stack trace), as the sink reported it."""
    cause = exc.__cause__ or exc
    text = " ".join(str(exc).split("Stack trace")[0].split())
    return (
        f"writing account {account_id!r} failed: ClickHouse rejects its rows ({type(cause).__name__}): {text}"
    )


def isolate_failures(
    snapshots: Sequence[A],
    process: Callable[[list[A]], T],
    is_transient: Callable[[BaseException], bool] = is_infrastructure_error,
) -> tuple[T | None, dict[str, Exception]]:
    """``process`` the batch; when it fails, leave out the accounts it fails on and process the rest.

    Returns the output for the accounts that went through (None when none did) and, by account_id, the
    exception each failing account raised. (The sink bisects its rows with it too, when ClickHouse
    rejects some: then ``snapshots`` are the batch's rows grouped by account.)
    A transient error (``is_transient``) is raised as is: it says nothing about the events, and the caller
    retries the whole batch. ``process`` must be a function of its input (the scoring processor is),
    since subsets of the batch are processed to find the culprits.
    """
    try:
        return process(list(snapshots)), {}
    except Exception as exc:
        if is_transient(exc):
            raise
        error = exc
    failed: dict[str, Exception] = {}

    def events_of(accounts: Sequence[str]) -> list[A]:
        wanted = set(accounts)
        return [s for s in snapshots if s.account_id in wanted]  # in batch order

    def attempt(accounts: Sequence[str]) -> Exception | None:
        try:
            process(events_of(accounts))
        except Exception as exc:
            if is_transient(exc):
                raise
            return exc
        return None

    def bisect(accounts: Sequence[str], exc: Exception) -> None:
        # ``accounts`` together raise ``exc``: find which of them raise on their own.
        if len(accounts) == 1:
            failed[accounts[0]] = exc
            return
        found = False
        half = len(accounts) // 2
        for part in (accounts[:half], accounts[half:]):
            part_error = attempt(part)
            if part_error is not None:
                bisect(part, part_error)
                found = True
        if not found:
            # Each half goes through alone, not both together: some accounts fail only in company (never
            # seen). Give up the first half so that the worker moves on; the rest is processed again.
            failed.update(dict.fromkeys(accounts[:half], exc))

    remaining = list(dict.fromkeys(s.account_id for s in snapshots))
    while True:  # each round dead-letters at least one account, so this ends
        bisect(remaining, error)
        remaining = [account for account in remaining if account not in failed]
        if not remaining:
            return None, failed
        try:
            return process(events_of(remaining)), failed
        except Exception as exc:
            if is_transient(exc):
                raise
            error = exc


def dead_letter_bytes(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    timestamp_s: float | None,
    rejection: Rejection,
    consumer_group: str | None,
    failed_at: datetime | None = None,
) -> bytes:
    """The value of the dead-letter record of one consumed record (its key is the record's key)."""
    failed_at = failed_at or datetime.now(UTC)

    def envelope(message: str, timestamp: datetime | None) -> bytes:
        return DeadLetter.for_record(
            topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            value=value,
            code=rejection.code,
            message=message,
            service=SERVICE,
            failed_at=failed_at,
            timestamp=timestamp,
            consumer_group=consumer_group,
        ).to_event_bytes()

    try:
        return envelope(rejection.message, _record_time(timestamp_s))
    except (ValidationError, ValueError):
        # Writing the envelope must not fail, or the record could go nowhere: its producer-chosen parts
        # are the timestamp (bounded by _record_time) and text quoted in the message; keep them safe.
        return envelope(rejection.message.encode("ascii", errors="backslashreplace").decode(), None)


def _record_time(timestamp_s: float | None) -> datetime | None:
    # A producer chooses its records' CreateTime: outside the contract's 2000-2099 range (0, -1, a
    # milliseconds-for-seconds mix-up) it is left out rather than making the envelope invalid.
    if not timestamp_s or timestamp_s <= 0:
        return None
    try:
        moment = datetime.fromtimestamp(timestamp_s, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment if 2000 <= moment.year <= 2099 else None
