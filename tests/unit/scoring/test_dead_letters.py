"""The scoring worker's error policy without a broker: every kind of bad record gets its dead-letter
code and a reason, the envelope is valid and gives back the original bytes, a processor that fails on
some accounts loses exactly those accounts' events to the dead-letter topic and nothing else, and a batch
interrupted half-way never has its offsets committed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from faust.types.tuples import ConsumerMessage
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from services.common.events import AccountSnapshot, DeadLetter, describe_validation_error
from services.common.names import DeadLetterCode
from services.scoring.app import hold_back
from services.scoring.dead_letters import (
    Rejection,
    classify,
    dead_letter_bytes,
    describe_processing_error,
    is_infrastructure_error,
    isolate_failures,
)

SCHEMA = Path(__file__).resolve().parents[3] / "schemas" / "events" / "dead_letter.v1.json"


def event(account_id: str = "x:grenoble", **fields: Any) -> dict[str, Any]:
    platform = account_id.partition(":")[0]
    return {
        "account_id": account_id,
        "platform": platform,
        "observed_at": "2013-01-01T09:00:00Z",
        "followers": 1200,
        **fields,
    }


def raw(obj: object) -> bytes:
    return json.dumps(obj).encode()


def rejected(key: bytes | None, value: bytes | None) -> Rejection:
    verdict = classify(key, value)
    assert isinstance(verdict, Rejection), verdict
    assert verdict.message
    return verdict


# ----------------------------------------------------------------------------------------------------
# classify
# ----------------------------------------------------------------------------------------------------


def test_a_valid_event_keyed_by_its_account_id_is_scored() -> None:
    verdict = classify(b"x:grenoble", raw(event()))
    assert isinstance(verdict, AccountSnapshot)
    assert (verdict.account_id, verdict.followers) == ("x:grenoble", 1200)


def test_the_key_is_compared_with_the_normalised_account_id() -> None:
    # ingest writes normalised ids as keys; another client sending the raw form in the value is fine
    verdict = classify(b"x:grenoble", raw(event("twitter:@Grenoble", platform="twitter")))
    assert isinstance(verdict, AccountSnapshot) and verdict.account_id == "x:grenoble"


def test_a_value_that_is_not_utf8_is_invalid_encoding() -> None:
    verdict = rejected(b"x:grenoble", b'{"account_id": "x:caf\xe9"}')
    assert verdict.code is DeadLetterCode.INVALID_ENCODING
    assert "not UTF-8" in verdict.message and "0xe9 at position 21" in verdict.message


@pytest.mark.parametrize("value", [b"not json", b'{"account_id": "x:a",', b"", b'{"a": 1} trailing'])
def test_utf8_that_is_not_json_is_invalid_json(value: bytes) -> None:
    verdict = rejected(b"x:grenoble", value)
    assert verdict.code is DeadLetterCode.INVALID_JSON
    assert verdict.message.startswith("Invalid JSON")


def test_json_breaking_the_contract_is_invalid_event_with_every_reason() -> None:
    value = raw(event(followers=-5, follower=3, observed_at="2013-01-01T09:00:00"))
    verdict = rejected(b"x:grenoble", value)
    assert verdict.code is DeadLetterCode.INVALID_EVENT
    with pytest.raises(ValidationError) as info:
        AccountSnapshot.from_event_bytes(value)
    assert verdict.message == describe_validation_error(info.value)
    for field in ("followers", "follower", "observed_at"):
        assert f"{field}:" in verdict.message


@pytest.mark.parametrize("value", [b"[1, 2]", b'"x:grenoble"', b"null", b"42"])
def test_json_that_is_not_an_object_is_invalid_event(value: bytes) -> None:
    assert rejected(b"x:grenoble", value).code is DeadLetterCode.INVALID_EVENT


def test_a_key_other_than_the_account_id_is_invalid_event() -> None:
    verdict = rejected(b"x:lyon", raw(event()))
    assert verdict.code is DeadLetterCode.INVALID_EVENT
    assert "'x:lyon'" in verdict.message and "'x:grenoble'" in verdict.message
    # the un-normalised form would hash to another partition than the account's other events
    assert rejected(b"twitter:Grenoble", raw(event())).code is DeadLetterCode.INVALID_EVENT
    binary = rejected(b"\xff\x00", raw(event()))
    assert binary.code is DeadLetterCode.INVALID_EVENT and "\\xff" in binary.message


def test_a_record_without_key_is_invalid_event() -> None:
    verdict = rejected(None, raw(event()))
    assert verdict.code is DeadLetterCode.INVALID_EVENT and "no key" in verdict.message


def test_a_tombstone_is_invalid_event() -> None:
    verdict = rejected(b"x:grenoble", None)
    assert verdict.code is DeadLetterCode.INVALID_EVENT and "tombstone" in verdict.message


def test_a_bad_value_is_reported_before_a_bad_key() -> None:
    assert rejected(None, b"\xff").code is DeadLetterCode.INVALID_ENCODING
    assert rejected(b"x:other", b"{").code is DeadLetterCode.INVALID_JSON


# ----------------------------------------------------------------------------------------------------
# The envelope
# ----------------------------------------------------------------------------------------------------


def letter(**overrides: Any) -> tuple[bytes, DeadLetter]:
    args: dict[str, Any] = {
        "topic": "account-snapshots.v1",
        "partition": 2,
        "offset": 41,
        "key": b"x:grenoble",
        "value": b"\xff\xfe not utf-8",
        "timestamp_s": datetime(2024, 3, 1, 12, tzinfo=UTC).timestamp(),
        "rejection": Rejection(DeadLetterCode.INVALID_ENCODING, "the value is not UTF-8"),
        "consumer_group": "barometre-scoring",
        **overrides,
    }
    data = dead_letter_bytes(**args)
    document = json.loads(data)
    errors = list(Draft202012Validator(json.loads(SCHEMA.read_text())).iter_errors(document))
    assert not errors, errors
    return data, DeadLetter.from_event_bytes(data)


def test_the_envelope_is_valid_and_gives_back_the_original_record() -> None:
    _, got = letter()
    assert (got.topic, got.partition, got.offset) == ("account-snapshots.v1", 2, 41)
    assert got.key is not None and got.key.to_bytes() == b"x:grenoble"
    assert got.value is not None and got.value.encoding == "base64"
    assert got.value.to_bytes() == b"\xff\xfe not utf-8"
    assert got.error.code is DeadLetterCode.INVALID_ENCODING
    assert got.timestamp == datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert (got.service, got.consumer_group) == ("scoring", "barometre-scoring")


def test_the_envelope_of_a_tombstone_without_key() -> None:
    _, got = letter(key=None, value=None)
    assert got.key is None and got.value is None


@pytest.mark.parametrize("timestamp_s", [None, 0.0, -1.0, 1.7e12, 1e20])
def test_a_record_timestamp_outside_the_contract_is_left_out(timestamp_s: float | None) -> None:
    # 1.7e12: milliseconds sent as seconds, year 55,000 and more
    _, got = letter(timestamp_s=timestamp_s)
    assert got.timestamp is None


def test_a_long_message_is_cut_not_refused() -> None:
    _, got = letter(rejection=Rejection(DeadLetterCode.INVALID_EVENT, "x" * 10_000))
    assert len(got.error.message) == 4096


# ----------------------------------------------------------------------------------------------------
# Processing errors
# ----------------------------------------------------------------------------------------------------


def snapshots(accounts: int, per_account: int = 2) -> list[AccountSnapshot]:
    return [
        AccountSnapshot.model_validate(event(f"x:a{i}", observed_at=f"2013-01-{d + 1:02d}T09:00:00Z"))
        for d in range(per_account)
        for i in range(accounts)
    ]


class Poisoned:
    """A processor that fails (deterministically) on a batch holding any of ``poison``."""

    def __init__(self, poison: set[str], error: Exception | None = None) -> None:
        self.poison = poison
        self.error = error
        self.calls = 0

    def __call__(self, batch: list[AccountSnapshot]) -> list[str]:
        self.calls += 1
        bad = sorted({s.account_id for s in batch} & self.poison)
        if bad:
            raise self.error or ZeroDivisionError(f"cannot score {bad[0]}")
        return [s.event_id for s in batch]


def test_without_failure_the_batch_is_processed_once() -> None:
    batch = snapshots(10)
    process = Poisoned(set())
    out, failed = isolate_failures(batch, process)
    assert out == [s.event_id for s in batch] and failed == {}
    assert process.calls == 1


@pytest.mark.parametrize("poison", [{"x:a17"}, {"x:a0", "x:a63"}, {"x:a5", "x:a6", "x:a40"}])
def test_only_the_accounts_the_processor_fails_on_are_left_out(poison: set[str]) -> None:
    batch = snapshots(64)
    process = Poisoned(poison)
    out, failed = isolate_failures(batch, process)
    assert set(failed) == poison
    assert all(isinstance(e, ZeroDivisionError) for e in failed.values())
    assert out == [s.event_id for s in batch if s.account_id not in poison]  # batch order kept
    # bisection: a few calls per culprit, not one per account
    assert process.calls <= 2 + len(poison) * 2 * 6 + 1


def test_a_batch_of_failing_accounts_only_gives_no_output() -> None:
    batch = snapshots(3)
    out, failed = isolate_failures(batch, Poisoned({"x:a0", "x:a1", "x:a2"}))
    assert out is None and set(failed) == {"x:a0", "x:a1", "x:a2"}


def test_accounts_that_fail_only_together_are_given_up_together() -> None:
    batch = snapshots(8)

    def process(part: list[AccountSnapshot]) -> int:
        accounts = {s.account_id for s in part}
        if {"x:a1", "x:a6"} <= accounts:
            raise RuntimeError("an interaction")
        return len(part)

    out, failed = isolate_failures(batch, process)
    # the worker moves on rather than blocking, giving up half of the group that fails together
    assert set(failed) == {"x:a0", "x:a1", "x:a2", "x:a3"}
    assert out == sum(1 for s in batch if s.account_id not in failed)


@pytest.mark.parametrize(
    "error",
    [ConnectionRefusedError("refused"), TimeoutError(), OperationalError("down"), DatabaseError("Code: 241")],
)
def test_a_dependency_failure_is_raised_for_the_batch_to_be_retried(error: Exception) -> None:
    assert is_infrastructure_error(error)
    with pytest.raises(type(error)):
        isolate_failures(snapshots(4), Poisoned({"x:a0", "x:a1", "x:a2", "x:a3"}, error))


def test_a_dependency_failure_during_the_search_is_raised_too() -> None:
    batch = snapshots(4)
    calls = 0

    def process(part: list[AccountSnapshot]) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyError("x:a2")
        raise OSError("ClickHouse went away")

    with pytest.raises(OSError):
        isolate_failures(batch, process)


def test_processor_bugs_are_not_infrastructure_errors() -> None:
    for error in (KeyError("x"), ValueError("x"), AssertionError(), ZeroDivisionError()):
        assert not is_infrastructure_error(error)


def test_the_processing_error_message_says_what_and_where() -> None:
    try:
        empty: dict[str, int] = {}
        empty["missing"]  # a real KeyError, with a traceback
    except KeyError as exc:
        message = describe_processing_error("x:grenoble", exc)
    assert message.startswith("scoring account 'x:grenoble' failed: KeyError: 'missing' (raised at ")
    assert "test_dead_letters.py:" in message
    assert describe_processing_error(None, ValueError("odd")) == "reading the record failed: ValueError: odd"


# ----------------------------------------------------------------------------------------------------
# An interrupted batch is never committed
# ----------------------------------------------------------------------------------------------------


class RecordingConsumer:
    """Stands for Faust's consumer: records which messages reach its safe-to-commit bookkeeping."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, message: ConsumerMessage) -> bool:
        self.acked.append(message.offset)
        return True


def consumer_message(offset: int) -> ConsumerMessage:
    return ConsumerMessage("account-snapshots.v1", 0, offset, 0.0, 0, None, b"k", b"v", None)


def test_a_held_back_batch_never_reaches_the_committable_offsets() -> None:
    # take_events acks a batch in a `finally`, even when the agent was cancelled in the middle of it;
    # hold_back must turn those acks into no-ops (this pins the Faust behaviour the worker relies on).
    consumer = RecordingConsumer()
    held, done = consumer_message(7), consumer_message(8)
    hold_back([SimpleNamespace(message=held)])
    assert not held.ack(consumer)  # type: ignore[arg-type]
    assert done.ack(consumer)  # type: ignore[arg-type]
    assert consumer.acked == [8]
