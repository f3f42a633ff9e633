"""The event contract: the JSON Schemas in schemas/events/ and the pydantic models in services.common.events
give the same verdict on shared examples (tests/unit/contract_examples/), declare the same names, and the
models normalise as documented."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError

from services.common import events, names
from services.common.events import (
    AccountSnapshot,
    Alert,
    DeadLetter,
    FutureSnapshotError,
    Payload,
    check_not_future,
    derive_event_id,
    describe_validation_error,
)
from services.common.names import (
    AccountStatus,
    AlertSeverity,
    AlertStatus,
    AlertType,
    Category,
    DeadLetterCode,
    PayloadEncoding,
    Platform,
    Topic,
    Window,
)

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas" / "events"
EXAMPLES = Path(__file__).with_name("contract_examples")

# (examples file, schema file, model)
KINDS: dict[str, tuple[str, type[BaseModel]]] = {
    "account_snapshot": ("account_snapshot.v1.json", AccountSnapshot),
    "alert": ("alert.v1.json", Alert),
    "dead_letter": ("dead_letter.v1.json", DeadLetter),
}


def _schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / KINDS[kind][0]).read_text(encoding="utf-8"))
    return schema


def _validator(kind: str) -> Draft202012Validator:
    # No format checker on purpose: the patterns carry the whole timestamp rule, so that a validator
    # without format assertion (the 2020-12 default) gives the same verdict.
    return Draft202012Validator(_schema(kind))


def _examples(verdict: str) -> list[Any]:
    cases = []
    for kind in KINDS:
        document = json.loads((EXAMPLES / f"{kind}.json").read_text(encoding="utf-8"))
        for example in document[verdict]:
            cases.append(pytest.param(kind, example, id=f"{kind}: {example['name']}"))
    return cases


def _model_accepts(kind: str, event: Any) -> tuple[bool, str]:
    model = KINDS[kind][1]
    try:
        model.model_validate_json(json.dumps(event))  # the wire path: bytes in
    except ValidationError as exc:
        return False, describe_validation_error(exc)
    return True, ""


def test_enough_examples() -> None:
    document = json.loads((EXAMPLES / "account_snapshot.json").read_text(encoding="utf-8"))
    assert len(document["valid"]) >= 15
    assert len(document["invalid"]) >= 25


@pytest.mark.parametrize("kind", list(KINDS))
def test_schemas_are_valid_draft_2020_12(kind: str) -> None:
    schema = _schema(kind)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(("kind", "example"), _examples("valid"))
def test_valid_examples_pass_schema_and_model(kind: str, example: dict[str, Any]) -> None:
    errors = [error.message for error in _validator(kind).iter_errors(example["event"])]
    assert errors == []
    accepted, reason = _model_accepts(kind, example["event"])
    assert accepted, reason


@pytest.mark.parametrize(("kind", "example"), _examples("invalid"))
def test_invalid_examples_fail_schema_and_model(kind: str, example: dict[str, Any]) -> None:
    assert not _validator(kind).is_valid(example["event"]), "the schema accepts it"
    accepted, reason = _model_accepts(kind, example["event"])
    assert not accepted, "the model accepts it"
    assert reason  # a reason a human can read


@pytest.mark.parametrize(("kind", "example"), _examples("valid"))
def test_serialised_events_stay_valid_and_round_trip(kind: str, example: dict[str, Any]) -> None:
    model = KINDS[kind][1]
    parsed = model.model_validate_json(json.dumps(example["event"]))
    wire = parsed.to_event_bytes()  # type: ignore[attr-defined]  # every contract model has it
    # Compact, UTF-8 (not \u escapes): what json.dumps would write with the tightest separators.
    assert wire == json.dumps(json.loads(wire), separators=(",", ":"), ensure_ascii=False).encode()
    assert _validator(kind).is_valid(json.loads(wire))
    assert model.model_validate_json(wire) == parsed
    assert model.model_validate_json(wire).to_event_bytes() == wire  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "example",
    [
        pytest.param(ex, id=ex["name"])
        for ex in json.loads((EXAMPLES / "account_snapshot.json").read_text(encoding="utf-8"))["valid"]
        if "normalised" in ex
    ],
)
def test_snapshot_normalisation(example: dict[str, Any]) -> None:
    snapshot = AccountSnapshot.from_event_bytes(json.dumps(example["event"]).encode())
    dumped = json.loads(snapshot.to_event_bytes())
    for field, expected in example["normalised"].items():
        assert dumped[field] == expected, field


# --- What the schema cannot say: the future check, with "now".

_FUTURE = json.loads((EXAMPLES / "account_snapshot.json").read_text(encoding="utf-8"))["future"]


@pytest.mark.parametrize("case", [pytest.param(c, id=c["name"]) for c in _FUTURE["cases"]])
def test_future_check(case: dict[str, Any]) -> None:
    event = {"account_id": "x:1", "platform": "x", "observed_at": case["observed_at"], "followers": 1}
    # The schema cannot know "now": it accepts every case, and so does the model without a context.
    assert _validator("account_snapshot").is_valid(event)
    snapshot = AccountSnapshot.model_validate(event)
    now = datetime.fromisoformat(_FUTURE["now"])
    tolerance = timedelta(minutes=_FUTURE["tolerance_minutes"])
    if case["accepted"]:
        check_not_future(snapshot, now, tolerance)
        AccountSnapshot.model_validate(event, context={"now": now})
    else:
        with pytest.raises(FutureSnapshotError, match="minutes after now"):
            check_not_future(snapshot, now, tolerance)
        with pytest.raises(ValidationError, match="minutes after now"):
            AccountSnapshot.model_validate(event, context={"now": now})


def test_future_check_needs_an_aware_now() -> None:
    snapshot = AccountSnapshot.model_validate(
        {"account_id": "x:1", "platform": "x", "observed_at": "2013-01-01T09:00:00Z", "followers": 1}
    )
    with pytest.raises(ValueError, match="aware"):
        check_not_future(snapshot, datetime(2013, 1, 1))  # naive on purpose


# --- Where the Python jsonschema library and the models differ, and why that is acceptable.


def test_trailing_newline_is_refused_by_the_model() -> None:
    # JSON Schema patterns are ECMA-262, where "$" is the end of the text; the jsonschema library runs
    # them with Python's re.search, where "$" also matches before a final newline. The models use
    # fullmatch, i.e. the ECMA meaning, so they refuse what the library lets through here.
    event = {
        "account_id": "x:1",
        "platform": "x",
        "entity_id": "COM:38185\n",
        "observed_at": "2013-01-01T09:00:00Z",
        "followers": 1,
    }
    assert _model_accepts("account_snapshot", event)[0] is False


def test_utc_instant_must_stay_in_range() -> None:
    # The pattern checks the date as written; the model also checks the UTC instant, so that what it
    # writes back ("1999-12-31T23:30:00Z") would pass the schema. They differ only near the bounds.
    event = {"account_id": "x:1", "platform": "x", "observed_at": "2000-01-01T00:30:00+01:00", "followers": 1}
    assert _validator("account_snapshot").is_valid(event)
    accepted, reason = _model_accepts("account_snapshot", event)
    assert not accepted
    assert "UTC" in reason


# --- Normalisation and ids.


def test_event_id_is_the_same_for_equivalent_timestamps_and_aliases() -> None:
    paris = AccountSnapshot.model_validate(
        {
            "account_id": "twitter:Grenoble",
            "platform": "twitter",
            "observed_at": "2013-01-01T10:00:00+01:00",
            "followers": 1,
        }
    )
    utc = AccountSnapshot.model_validate(
        {"account_id": "x:grenoble", "platform": "x", "observed_at": "2013-01-01T09:00:00Z", "followers": 2}
    )
    assert paris.event_id == utc.event_id
    assert paris.event_id == derive_event_id("x:grenoble", datetime(2013, 1, 1, 9, tzinfo=UTC))
    # A UUID, stable across releases: changing the derivation would double-count every re-sent event.
    assert paris.event_id == "635570aa-4af3-5cb8-bf27-17ac6190a7c4"


def test_event_id_differs_by_account_and_instant() -> None:
    base = {"account_id": "x:1", "platform": "x", "observed_at": "2013-01-01T09:00:00Z", "followers": 1}
    ids = {
        AccountSnapshot.model_validate(base).event_id,
        AccountSnapshot.model_validate({**base, "account_id": "x:2"}).event_id,
        AccountSnapshot.model_validate({**base, "observed_at": "2013-01-01T09:00:00.000001Z"}).event_id,
    }
    assert len(ids) == 3


def test_given_event_id_is_kept() -> None:
    snapshot = AccountSnapshot.model_validate(
        {
            "event_id": "abc",
            "account_id": "x:1",
            "platform": "x",
            "observed_at": "2013-01-01T09:00:00Z",
            "followers": 1,
        }
    )
    assert snapshot.event_id == "abc"


def test_unknown_platform_message_lists_allowed_values() -> None:
    with pytest.raises(ValidationError) as info:
        AccountSnapshot.model_validate(
            {
                "account_id": "myspace:1",
                "platform": "myspace",
                "observed_at": "2013-01-01T09:00:00Z",
                "followers": 1,
            }
        )
    message = describe_validation_error(info.value)
    assert "unknown platform 'myspace'" in message
    assert ", ".join(Platform) in message
    assert "twitter is accepted as x" in message


def test_unknown_field_message_names_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        AccountSnapshot.model_validate(
            {
                "account_id": "x:1",
                "platform": "x",
                "observed_at": "2013-01-01T09:00:00Z",
                "followers": 1,
                "follower": 1,
            }
        )
    assert describe_validation_error(info.value).startswith("follower: unknown field")


def test_naive_datetime_refused_in_python_too() -> None:
    with pytest.raises(ValidationError, match="naive"):
        AccountSnapshot(
            account_id="x:1",
            platform=Platform.X,
            observed_at=datetime(2013, 1, 1, 9),  # naive on purpose
            followers=1,
        )


def test_built_in_python_equals_parsed_from_json() -> None:
    built = AccountSnapshot(
        account_id="x:1", platform=Platform.X, observed_at=datetime(2013, 1, 1, 9, tzinfo=UTC), followers=1
    )
    parsed = AccountSnapshot.from_event_bytes(
        b'{"account_id":"x:1","platform":"x","observed_at":"2013-01-01T09:00:00Z","followers":1}'
    )
    assert built == parsed
    assert built.to_event_bytes() == (
        b'{"schema":"account_snapshot/1","event_id":"' + built.event_id.encode() + b'","account_id":"x:1",'
        b'"platform":"x","observed_at":"2013-01-01T09:00:00Z","followers":1,"status":"active"}'
    )


def test_timestamps_format_canonically() -> None:
    moment = datetime(2013, 1, 1, 10, 0, 0, 120000, tzinfo=timezone(timedelta(hours=1)))
    assert events.format_timestamp(moment) == "2013-01-01T09:00:00.120000Z"
    assert (
        events.format_timestamp(events.parse_timestamp("2013-01-01T10:00:00+01:00")) == "2013-01-01T09:00:00Z"
    )


def test_dead_letter_for_record_keeps_the_bytes() -> None:
    failed_at = datetime(2024, 5, 1, 9, tzinfo=UTC)
    raw = b"\xff\xfe{not json"
    letter = DeadLetter.for_record(
        topic=Topic.ACCOUNT_SNAPSHOTS,
        partition=2,
        offset=41,
        key=b"x:grenoble",
        value=raw,
        code=DeadLetterCode.INVALID_ENCODING,
        message="x" * 10_000,
        service="scoring",
        failed_at=failed_at,
    )
    assert letter.value is not None and letter.value.encoding is PayloadEncoding.BASE64
    assert letter.value.to_bytes() == raw
    assert letter.key == Payload(encoding=PayloadEncoding.UTF8, data="x:grenoble")
    assert len(letter.error.message) == events.MAX_ERROR_MESSAGE_LENGTH
    wire = letter.to_event_bytes()
    assert _validator("dead_letter").is_valid(json.loads(wire))
    assert DeadLetter.from_event_bytes(wire) == letter


# --- One name for each thing: the schemas hold the Python names, so they cannot drift apart.


def _enum(schema: dict[str, Any], *path: str) -> list[str]:
    node: Any = schema
    for part in path:
        node = node[part]
    values: list[str] = node["enum"]
    return values


def test_schema_enums_are_the_python_enums() -> None:
    snapshot, alert, dead = _schema("account_snapshot"), _schema("alert"), _schema("dead_letter")
    assert _enum(snapshot, "properties", "platform") == [*Platform, *names.PLATFORM_ALIASES]
    assert _enum(snapshot, "properties", "status") == list(AccountStatus)
    assert snapshot["properties"]["status"]["default"] == AccountStatus.ACTIVE
    assert snapshot["properties"]["schema"]["const"] == names.ACCOUNT_SNAPSHOT_SCHEMA
    assert _enum(alert, "properties", "platform") == list(Platform)
    assert _enum(alert, "properties", "type") == list(AlertType)
    assert _enum(alert, "properties", "severity") == list(AlertSeverity)
    assert _enum(alert, "properties", "status") == list(AlertStatus)
    assert _enum(dead, "properties", "error", "properties", "code") == list(DeadLetterCode)
    assert _enum(dead, "$defs", "payload", "properties", "encoding") == list(PayloadEncoding)
    assert dead["properties"]["schema"]["const"] == names.DEAD_LETTER_SCHEMA


def test_schema_patterns_are_the_python_patterns() -> None:
    snapshot, alert, dead = _schema("account_snapshot"), _schema("alert"), _schema("dead_letter")
    props = snapshot["properties"]
    assert props["observed_at"]["pattern"] == events.TIMESTAMP_PATTERN
    assert props["account_id"]["pattern"] == events.ACCOUNT_ID_PATTERN
    assert props["account_id"]["maxLength"] == events.MAX_ACCOUNT_ID_LENGTH
    assert props["entity_id"]["pattern"] == events.ENTITY_ID_PATTERN
    assert props["event_id"]["pattern"] == events.EVENT_ID_PATTERN
    assert props["source"]["pattern"] == events.SOURCE_PATTERN
    assert props["handle"]["maxLength"] == events.MAX_HANDLE_LENGTH
    assert snapshot["$defs"]["count"]["maximum"] == events.MAX_COUNT
    assert alert["properties"]["account_id"]["pattern"] == events.CANONICAL_ACCOUNT_ID_PATTERN
    assert alert["properties"]["entity_id"]["pattern"] == events.ENTITY_ID_PATTERN
    for field in ("observed_at", "detected_at"):
        assert alert["properties"][field]["pattern"] == events.TIMESTAMP_PATTERN
    assert dead["properties"]["topic"]["pattern"] == events.KAFKA_TOPIC_PATTERN
    assert dead["properties"]["service"]["pattern"] == events.SERVICE_PATTERN
    assert dead["properties"]["failed_at"]["pattern"] == events.TIMESTAMP_PATTERN
    assert dead["$defs"]["payload"]["then"]["properties"]["data"]["pattern"] == events.BASE64_PATTERN
    assert (
        dead["properties"]["error"]["properties"]["message"]["maxLength"] == events.MAX_ERROR_MESSAGE_LENGTH
    )


@pytest.mark.parametrize("kind", list(KINDS))
def test_schema_fields_are_the_model_fields(kind: str) -> None:
    schema, model = _schema(kind), KINDS[kind][1]
    fields = {info.alias or name: info for name, info in model.model_fields.items()}
    assert list(schema["properties"]) == list(fields)
    assert set(schema["required"]) == {name for name, info in fields.items() if info.is_required()}


@pytest.mark.parametrize(("kind", "with_aliases"), [("account_snapshot", True), ("alert", False)])
def test_every_platform_has_its_account_id_rule(kind: str, with_aliases: bool) -> None:
    rules = {}
    for rule in _schema(kind)["allOf"]:
        condition = rule["if"]["properties"]["platform"]
        for name in condition.get("enum", [condition.get("const")]):
            rules[name] = rule["then"]["properties"]["account_id"]["pattern"]
    expected = {p.value: p.value for p in Platform}
    if with_aliases:
        expected.update({alias: target.value for alias, target in names.PLATFORM_ALIASES.items()})
    assert set(rules) == set(expected)
    for name, platform in expected.items():
        accepted = {other for other in expected if re.match(rules[name], f"{other}:1")}
        # The rule of a platform accepts its own prefix and its aliases' prefixes, nothing else.
        assert accepted == {other for other, target in expected.items() if target == platform}


def test_names() -> None:
    assert [w.delta for w in Window] == [timedelta(days=d) for d in (1, 7, 30, 90, 365)]
    assert names.WINDOWS[Window.D30] == timedelta(days=30)
    assert [c.kind for c in Category] == ["COM", "DEP", "REG", "EPCI"]
    assert Category.of_entity_id("DEP:2A") is Category.DEPARTEMENT
    assert Category.from_kind("EPCI") is Category.EPCI
    with pytest.raises(ValueError, match="unknown entity kind"):
        Category.of_entity_id("CANTON:1")
    assert [t.value for t in Topic] == [
        "account-snapshots.v1",
        "account-snapshots.dlq",
        "alerts.v1",
        "alert-candidates.v1",
        "incidents.v1",
    ]
    assert names.normalise_platform("twitter") is Platform.X
    assert AccountSnapshot.model_fields["schema_version"].default == names.ACCOUNT_SNAPSHOT_SCHEMA
    assert DeadLetter.model_fields["schema_version"].default == names.DEAD_LETTER_SCHEMA


def test_naive_timestamp_message_says_what_is_missing() -> None:
    with pytest.raises(ValidationError) as info:
        AccountSnapshot.model_validate(
            {"account_id": "x:1", "platform": "x", "observed_at": "2013-01-01T09:00:00", "followers": 1}
        )
    assert describe_validation_error(info.value) == (
        "observed_at: '2013-01-01T09:00:00' has no offset: add Z or ±HH:MM (a naive time is ambiguous)"
    )


def test_alert_id_is_deterministic() -> None:
    paris = events.parse_timestamp("2024-05-01T11:00:00+02:00")
    utc = events.parse_timestamp("2024-05-01T09:00:00Z")
    first = events.derive_alert_id(AlertType.AUDIENCE_SPIKE, "x:1", paris)
    assert first == events.derive_alert_id(AlertType.AUDIENCE_SPIKE, "x:1", utc)
    assert first != events.derive_alert_id(AlertType.AUDIENCE_DROP, "x:1", utc)
    assert re.fullmatch(events.EVENT_ID_PATTERN, first)
