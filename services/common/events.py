"""The event contract in Python: AccountSnapshot v1, Alert v1 and the dead-letter envelope.

These pydantic models are the twins of the JSON Schemas in ``schemas/events/`` (the wire contract): the
same document gets the same verdict from both, which ``tests/unit/test_contract.py`` checks on shared
examples. The models add what a schema cannot do:

- normalisation: ``twitter`` becomes ``x`` (in ``platform`` and in the ``account_id`` prefix), the id part
  of ``account_id`` loses a leading ``@`` and is lower-cased except on platforms with case-sensitive ids,
  ``observed_at`` is converted to UTC, and a missing ``event_id`` is derived from ``account_id`` and
  ``observed_at`` (UUIDv5), so an event sent twice has one id whatever offset it was written with;
- "not more than 5 minutes in the future", which needs the current time: :func:`check_not_future`, or
  validation with ``context={"now": now}``;
- the UTC instant of a timestamp must be in 2000-2099 (the schema checks the date as written, which
  differs only within a day of those bounds), so every accepted event re-validates once serialised.

Why unknown fields are refused rather than ignored: a typo (``follower``, ``posts30d``) would otherwise
drop a figure without anyone noticing, and the contract changes only with a new version, which gets a
new schema (``account_snapshot/2``) and a new topic.

Why counts are "JSON integers": JSON Schema calls ``10.0`` an integer (a number with a zero fraction),
so both sides accept it as 10, and both refuse ``10.5``, ``"10"`` and ``true``. Counts stop at 2**53 - 1,
the largest integer every JSON parser keeps exactly.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, ClassVar, Literal, Self, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from services.common.names import (
    ACCOUNT_SNAPSHOT_SCHEMA,
    ALERT_ID_NAMESPACE,
    CASE_SENSITIVE_ID_PLATFORMS,
    DEAD_LETTER_SCHEMA,
    EVENT_ID_NAMESPACE,
    PLATFORM_ALIASES,
    AccountStatus,
    AlertSeverity,
    AlertStatus,
    AlertType,
    Category,
    DeadLetterCode,
    PayloadEncoding,
    Platform,
    SourceKind,
    normalise_platform,
)

# --- Patterns shared with the JSON Schemas (a unit test checks that the schemas hold these exact strings).
# They are written in the common subset of ECMA-262 (the regex dialect of JSON Schema) and Python's re:
# no named groups, no \d (Unicode digits in Python), [0-9] instead.

# RFC 3339 date-time with a mandatory offset, years 2000-2099, with real calendar days (leap years
# included) so that a schema validator without format checking refuses 2013-02-30 as the models do.
_DATE = (
    "(?:20[0-9]{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    "|20[0-9]{2}-(?:0[13-9]|1[0-2])-(?:29|30)"
    "|20[0-9]{2}-(?:0[13578]|1[02])-31"
    "|20(?:[02468][048]|[13579][26])-02-29)"
)
_TIME = "[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,9})?"
_OFFSET = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
TIMESTAMP_PATTERN = f"^{_DATE}{_TIME}{_OFFSET}$"

# Entity codes: INSEE commune codes (Corsica's 2A/2B included), département codes (01-95, 2A, 2B and
# 971-976 overseas; three digits also cover the collectivités d'outre-mer 975-989), région codes, EPCI
# SIRENs. Entities outside the INSEE code space (a foreign municipality, which users may import) use an
# ISO 3166 country prefix: ``COM:BE-21004``; INSEE codes never contain "-", so the two cannot collide.
COMMUNE_CODE_PATTERN = "^(?:[0-9]{5}|2[AB][0-9]{3})$"
DEPARTEMENT_CODE_PATTERN = "^(?:[0-9]{2,3}|2[AB])$"
REGION_CODE_PATTERN = "^[0-9]{2,3}$"
EPCI_CODE_PATTERN = "^[0-9]{9}$"
FOREIGN_CODE_PATTERN = "^[A-Z]{2}-[0-9A-Z]{1,20}$"
_CODE_PATTERNS = {
    Category.COMMUNE: COMMUNE_CODE_PATTERN,
    Category.DEPARTEMENT: DEPARTEMENT_CODE_PATTERN,
    Category.REGION: REGION_CODE_PATTERN,
    Category.EPCI: EPCI_CODE_PATTERN,
}
_KINDS = "|".join(category.kind for category in Category)
ENTITY_ID_PATTERN = (
    "^(?:"
    + "|".join(f"{category.kind}:{pattern[1:-1]}" for category, pattern in _CODE_PATTERNS.items())
    + f"|(?:{_KINDS}):{FOREIGN_CODE_PATTERN[1:-1]})$"
)

# account_id = <platform>:<id>. The id part has no spaces or control characters; one leading "@" (a
# handle written the usual way) is allowed and dropped, so it must be followed by something else than "@".
_ACCOUNT_ID_PART = "@?[^\\x00-\\x20\\x7f@][^\\x00-\\x20\\x7f]*"
ACCOUNT_ID_PATTERN = f"^(?:{'|'.join([*Platform, *PLATFORM_ALIASES])}):{_ACCOUNT_ID_PART}$"
# In alerts (written by barometre itself) the prefix is always a canonical platform.
CANONICAL_ACCOUNT_ID_PATTERN = f"^(?:{'|'.join(Platform)}):{_ACCOUNT_ID_PART}$"
MAX_ACCOUNT_ID_LENGTH = 256

EVENT_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_PLAIN_SOURCES = "|".join(kind for kind in SourceKind if kind is not SourceKind.POLLER)
SOURCE_PATTERN = f"^(?:{_PLAIN_SOURCES}|{SourceKind.POLLER}:[a-z0-9][a-z0-9_.-]{{0,63}})$"
MAX_HANDLE_LENGTH = 256
MAX_COUNT = 2**53 - 1

KAFKA_TOPIC_PATTERN = "^[A-Za-z0-9._-]{1,249}$"
SERVICE_PATTERN = "^[a-z][a-z0-9_.-]{0,63}$"
BASE64_PATTERN = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
MAX_ERROR_MESSAGE_LENGTH = 4096

_TIMESTAMP_RE = re.compile(TIMESTAMP_PATTERN)
_NAIVE_TIMESTAMP_RE = re.compile(f"^{_DATE}{_TIME}$")
_ENTITY_ID_RE = re.compile(ENTITY_ID_PATTERN)
_ACCOUNT_ID_RE = re.compile(ACCOUNT_ID_PATTERN)
_CANONICAL_ACCOUNT_ID_RE = re.compile(CANONICAL_ACCOUNT_ID_PATTERN)
_EVENT_ID_RE = re.compile(EVENT_ID_PATTERN)
_SOURCE_RE = re.compile(SOURCE_PATTERN)
_KAFKA_TOPIC_RE = re.compile(KAFKA_TOPIC_PATTERN)
_SERVICE_RE = re.compile(SERVICE_PATTERN)
_BASE64_RE = re.compile(BASE64_PATTERN)
_FRACTION_RE = re.compile(r"\.([0-9]+)")
_PLATFORM_VALUES = frozenset(platform.value for platform in Platform)

DEFAULT_FUTURE_TOLERANCE = timedelta(minutes=5)
_MIN_YEAR, _MAX_YEAR = 2000, 2099


# --- Field-level parsing, usable on its own (import files, API query parameters).


def _require_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        # ValueError, not TypeError: pydantic turns only ValueError into a validation error.
        raise ValueError(f"{what} must be a string")
    return value


def _fullmatch(regex: re.Pattern[str], value: str) -> bool:
    # fullmatch, not search: Python's "$" also matches before a final newline, ECMA-262's does not.
    return regex.fullmatch(value) is not None


def parse_timestamp(value: str) -> datetime:
    """An RFC 3339 timestamp with an offset as an aware UTC datetime (fractions beyond µs truncated)."""
    if not _fullmatch(_TIMESTAMP_RE, value):
        if _fullmatch(_NAIVE_TIMESTAMP_RE, value):
            raise ValueError(f"{value!r} has no offset: add Z or ±HH:MM (a naive time is ambiguous)")
        raise ValueError(
            f"{value!r} is not an RFC 3339 timestamp with an offset in 2000-2099 "
            "(e.g. 2013-01-01T09:00:00Z or 2013-01-01T10:00:00+01:00)"
        )
    # fromisoformat takes at most microseconds; nanosecond producers (Go's RFC3339Nano) are welcome.
    text = _FRACTION_RE.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), value.upper(), count=1)
    moment = datetime.fromisoformat(text).astimezone(UTC)
    if not _MIN_YEAR <= moment.year <= _MAX_YEAR:
        raise ValueError(f"{value!r} is outside 2000-2099 once converted to UTC")
    return moment


def format_timestamp(moment: datetime) -> str:
    """The canonical text of an instant: UTC, ``Z``, microseconds only when there are some."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: an instant needs an offset")
    # isoformat writes the seconds, then ".ffffff" only when there are microseconds, then "+00:00";
    # much faster than strftime, and this runs for every event ingest publishes.
    return moment.astimezone(UTC).isoformat()[:-6] + "Z"


def normalise_account_id(value: str) -> str:
    """The stored form of an account id: canonical platform prefix, no leading ``@``, case rule applied."""
    if len(value) > MAX_ACCOUNT_ID_LENGTH:
        raise ValueError(f"account_id is longer than {MAX_ACCOUNT_ID_LENGTH} characters")
    if not _fullmatch(_ACCOUNT_ID_RE, value):
        prefix = value.partition(":")[0]
        if ":" in value:
            normalise_platform(prefix)  # an unknown platform gets the message that lists the allowed ones
        raise ValueError(
            f"account_id {value!r} is not <platform>:<id> (an id or handle without spaces, e.g. x:grenoble)"
        )
    prefix, _, rest = value.partition(":")
    platform = normalise_platform(prefix)
    rest = rest.removeprefix("@")
    if platform not in CASE_SENSITIVE_ID_PLATFORMS:
        rest = rest.lower()
    return f"{platform.value}:{rest}"


def account_id_from_handle(platform: Platform, handle: str) -> str:
    """The account id used when no stable id is known: the handle lower-cased (contract, "Account")."""
    return normalise_account_id(f"{platform.value}:{handle.strip().removeprefix('@').lower()}")


def check_entity_id(value: str) -> str:
    """``value`` if it is a well-formed ``KIND:code`` entity id; ValueError otherwise."""
    if not _fullmatch(_ENTITY_ID_RE, value):
        raise ValueError(
            f"entity_id {value!r} is not KIND:code (COM:38185, DEP:2A, DEP:971, REG:84, EPCI:200040715, "
            "or KIND:CC-code with an ISO country code for an entity outside France)"
        )
    return value


def derive_event_id(account_id: str, observed_at: datetime) -> str:
    """The id of a snapshot that came without one: UUIDv5 of ``account_id|observed_at`` (canonical UTC)."""
    return derive_event_id_from_text(account_id, format_timestamp(observed_at))


def derive_event_id_from_text(account_id: str, observed_at: str) -> str:
    """:func:`derive_event_id` when the canonical text of ``observed_at`` (:func:`format_timestamp`) is
    already at hand, as on ingest's hot path."""
    return _uuid5_text(_EVENT_ID_NAMESPACE_BYTES, f"{account_id}|{observed_at}")


_EVENT_ID_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes


# The RFC 4122 variant (binary 10xx) in the first hex digit of the fourth group, by the digit hashed.
_UUID_VARIANT = {digit: "89ab"[int(digit, 16) & 0x3] for digit in "0123456789abcdef"}


def _uuid5_text(namespace: bytes, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))`` without building a UUID object: a quarter of the time, on the
    hot path of ingest (most snapshots come without an event_id)."""
    h = hashlib.sha1(namespace + name.encode(), usedforsecurity=False).hexdigest()
    # The first 16 bytes of the SHA-1, with the version digit set to 5 and the variant bits to 10.
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_UUID_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def derive_alert_id(alert_type: AlertType, account_id: str, observed_at: datetime) -> str:
    """A deterministic alert id, so that re-processing a snapshot re-emits the same alert, not a new one."""
    name = f"{alert_type.value}|{account_id}|{format_timestamp(observed_at)}"
    return str(uuid.uuid5(ALERT_ID_NAMESPACE, name))


# --- Annotated field types.


def _timestamp(value: object) -> datetime:
    if isinstance(value, datetime):  # built in Python rather than parsed from JSON
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: a timestamp needs an explicit offset")
        return parse_timestamp(format_timestamp(value))
    return parse_timestamp(_require_str(value, "a timestamp"))


def _json_integer(value: object) -> int:
    # bool is an int in Python but not in JSON; 10.0 is an integer in JSON Schema's sense.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a JSON integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a JSON integer, not a fraction")
        return int(value)
    return value


def _json_number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a JSON number")
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("must be a finite number")
    return number


def _pattern(regex: re.Pattern[str], what: str, example: str) -> BeforeValidator:
    def check(value: object) -> str:
        text = _require_str(value, what)
        if not _fullmatch(regex, text):
            raise ValueError(f"{text!r} is not a valid {what} (e.g. {example})")
        return text

    return BeforeValidator(check)


def _not_null(value: object) -> object:
    # An optional field is left out, never null: the schema says so, and one way to say "unknown" keeps
    # "absent" and "null" from meaning different things to different consumers.
    if value is None:
        raise ValueError("null is not allowed; leave the field out")
    return value


def _platform(value: object) -> Platform:
    return normalise_platform(_require_str(value, "platform"))


def _canonical_platform(value: object) -> Platform:
    text = _require_str(value, "platform")
    if text not in _PLATFORM_VALUES:
        raise ValueError(f"unknown platform {text!r}; allowed: {', '.join(Platform)}")
    return Platform(text)


def _account_id(value: object) -> str:
    return normalise_account_id(_require_str(value, "account_id"))


def _canonical_account_id(value: object) -> str:
    text = _require_str(value, "account_id")
    if len(text) > MAX_ACCOUNT_ID_LENGTH or not _fullmatch(_CANONICAL_ACCOUNT_ID_RE, text):
        raise ValueError(f"account_id {text!r} is not <platform>:<id> with a canonical platform")
    return text


def _entity_id(value: object) -> str:
    return check_entity_id(_require_str(value, "entity_id"))


Timestamp = Annotated[
    datetime,
    BeforeValidator(_timestamp),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]
# One object, so that the counts of a model can be told by it (count_fields).
_COUNT_CHECK = BeforeValidator(_json_integer)
Count = Annotated[int, _COUNT_CHECK, Field(ge=0, le=MAX_COUNT)]
Number = Annotated[float, BeforeValidator(_json_number)]
Text = Annotated[str, Strict()]
EntityId = Annotated[str, BeforeValidator(_entity_id)]
EventId = Annotated[str, _pattern(_EVENT_ID_RE, "event id", "a UUID")]
Handle = Annotated[Text, Field(min_length=1, max_length=MAX_HANDLE_LENGTH)]
Source = Annotated[str, _pattern(_SOURCE_RE, "source", "import, push, poller:<name>, simulator")]
NotNull = BeforeValidator(_not_null)


class ContractModel(BaseModel):
    """Base of the event models: immutable, unknown fields refused, JSON in and out as bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Snapshots leave optional figures out rather than writing null; alerts write every field.
    _exclude_none: ClassVar[bool] = False

    def to_event_bytes(self) -> bytes:
        """The compact JSON value of this event, timestamps in canonical UTC form."""
        return self.model_dump_json(by_alias=True, exclude_none=self._exclude_none).encode()

    @classmethod
    def from_event_bytes(cls, data: bytes | str) -> Self:
        """Parse and validate one JSON value; raises pydantic.ValidationError with every reason."""
        return cls.model_validate_json(data)


class AccountSnapshot(ContractModel):
    """One observation of one account at one instant (CONTRACT.md, "Event: AccountSnapshot v1")."""

    _exclude_none: ClassVar[bool] = True

    schema_version: Literal["account_snapshot/1"] = Field(default=ACCOUNT_SNAPSHOT_SCHEMA, alias="schema")
    # Never empty once validated: derived in _check_consistency when absent (an explicit "" or null is
    # refused by the pattern). Derived after the fields are parsed, so account_id and observed_at are
    # parsed once: this is the hot path of ingest and scoring.
    event_id: EventId = ""
    account_id: Annotated[str, BeforeValidator(_account_id)]
    platform: Annotated[Platform, BeforeValidator(_platform)]
    entity_id: Annotated[EntityId | None, NotNull] = None
    handle: Annotated[Handle | None, NotNull] = None
    observed_at: Timestamp
    followers: Count
    following: Annotated[Count | None, NotNull] = None
    posts_total: Annotated[Count | None, NotNull] = None
    posts_30d: Annotated[Count | None, NotNull] = None
    interactions_30d: Annotated[Count | None, NotNull] = None
    replies_30d: Annotated[Count | None, NotNull] = None
    automated_posts_30d: Annotated[Count | None, NotNull] = None
    status: AccountStatus = AccountStatus.ACTIVE
    source: Annotated[Source | None, NotNull] = None

    @model_validator(mode="after")
    def _check_consistency(self, info: ValidationInfo) -> Self:
        prefix = self.account_id.partition(":")[0]
        if prefix != self.platform.value:
            raise ValueError(
                f"account_id {self.account_id!r} belongs to platform {prefix!r}, not {self.platform.value!r}"
            )
        if not self.event_id:
            # The model is frozen; setting the derived field once, during validation, is the exception.
            object.__setattr__(self, "event_id", derive_event_id(self.account_id, self.observed_at))
        now = info.context.get("now") if isinstance(info.context, dict) else None
        if now is not None:
            check_not_future(self, now)
        return self


# --- The fields of AccountSnapshot, declared once (the model above) and derived from it here.
# Every other place that names them takes them from these: ingest's fast path (which fields, their
# order, which counts may be absent), the scoring worker's ``snapshots`` columns, the simulator's event
# text; the JSON Schema is checked against the model by tests/unit/test_contract.py. A field added to
# the model and not taught to one of those places fails its import or tests/unit/test_snapshot_fields.py.


def _has_count_check(annotation: object) -> bool:
    """Whether ``annotation`` is :data:`Count`, possibly inside ``Optional`` or another ``Annotated``."""
    return any(arg is _COUNT_CHECK or _has_count_check(arg) for arg in get_args(annotation))


def published_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The names of ``model``'s fields as published (aliases), in the order of its JSON."""
    return tuple(info.alias or name for name, info in model.model_fields.items())


def count_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The published names of ``model``'s :data:`Count` fields, in order."""
    return tuple(
        info.alias or name
        for name, info in model.model_fields.items()
        if any(m is _COUNT_CHECK for m in info.metadata) or _has_count_check(info.annotation)
    )


def omissible_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The published names of the fields that may be absent from the JSON (optional, default None)."""
    return tuple(
        info.alias or name
        for name, info in model.model_fields.items()
        if not info.is_required() and info.default is None
    )


SNAPSHOT_FIELDS = published_fields(AccountSnapshot)
SNAPSHOT_COUNTS = count_fields(AccountSnapshot)
SNAPSHOT_OMISSIBLE = omissible_fields(AccountSnapshot)
# Published name -> the model's attribute ("schema" -> "schema_version"; every other is its own).
SNAPSHOT_ATTRIBUTES = {info.alias or name: name for name, info in AccountSnapshot.model_fields.items()}


class FutureSnapshotError(ValueError):
    """A snapshot observed later than now plus the tolerance."""


def check_not_future(
    snapshot: AccountSnapshot, now: datetime, tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE
) -> None:
    """Refuse a snapshot observed more than ``tolerance`` after ``now`` (a clock or time-zone error).

    A JSON Schema cannot say this (it has no notion of "now"), so it lives here; ingest calls it, or
    validates with ``AccountSnapshot.model_validate(obj, context={"now": now})``. Consumers of the topic
    do not: an event that was in the past when published stays valid when replayed.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if snapshot.observed_at > now + tolerance:
        raise FutureSnapshotError(
            f"observed_at {format_timestamp(snapshot.observed_at)} is more than "
            f"{tolerance.total_seconds() / 60:g} minutes after now ({format_timestamp(now)})"
        )


class Alert(ContractModel):
    """Something unusual about one account (CONTRACT.md, "Alert v1"). Every field is present.

    ``value`` and ``expected`` are what was seen and what the detector expected (followers, or days
    without posts for ``dormant``); ``score`` is the detector's strength of evidence. Each is null when
    the type has none (``account_gone`` has no expected figure). ``entity_id`` is null for an account
    not linked to an entity yet.
    """

    alert_id: EventId
    type: AlertType
    account_id: Annotated[str, BeforeValidator(_canonical_account_id)]
    entity_id: EntityId | None
    platform: Annotated[Platform, BeforeValidator(_canonical_platform)]
    observed_at: Timestamp
    detected_at: Timestamp
    value: Number | None
    expected: Number | None
    score: Number | None
    severity: AlertSeverity
    status: AlertStatus

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        if self.account_id.partition(":")[0] != self.platform.value:
            raise ValueError(f"account_id {self.account_id!r} is not on platform {self.platform.value!r}")
        return self


class Payload(ContractModel):
    """Raw bytes of a dead-lettered key or value: as text when they are UTF-8, else base64."""

    encoding: PayloadEncoding
    data: Text

    @model_validator(mode="after")
    def _check_base64(self) -> Self:
        if self.encoding is PayloadEncoding.BASE64 and not _fullmatch(_BASE64_RE, self.data):
            raise ValueError("data is not base64 (RFC 4648, with padding)")
        return self

    @classmethod
    def from_bytes(cls, raw: bytes) -> Payload:
        """Text when ``raw`` decodes as UTF-8 (the readable case), base64 otherwise."""
        try:
            return cls(encoding=PayloadEncoding.UTF8, data=raw.decode("utf-8"))
        except UnicodeDecodeError:
            return cls(encoding=PayloadEncoding.BASE64, data=base64.b64encode(raw).decode("ascii"))

    def to_bytes(self) -> bytes:
        """The original bytes."""
        if self.encoding is PayloadEncoding.UTF8:
            return self.data.encode("utf-8")
        try:
            return base64.b64decode(self.data, validate=True)
        except binascii.Error as exc:  # pragma: no cover - excluded by validation
            raise ValueError(str(exc)) from exc


class DeadLetterError(ContractModel):
    """Why the record was dead-lettered; the same shape as the API's ``{"error": {"code", "message"}}``."""

    code: DeadLetterCode
    message: Annotated[Text, Field(min_length=1, max_length=MAX_ERROR_MESSAGE_LENGTH)]


class DeadLetter(ContractModel):
    """A record a consumer could not use, with where it came from and why (topic ``account-snapshots.dlq``).

    The dead-letter record keeps the original key, so it lands on the partition of its account; the
    original record can be rebuilt byte for byte from ``key`` and ``value`` (null for a null key or a
    tombstone) and replayed with ``topic``, ``partition`` and ``offset`` telling exactly which it was.
    """

    schema_version: Literal["dead_letter/1"] = Field(default=DEAD_LETTER_SCHEMA, alias="schema")
    topic: Annotated[str, _pattern(_KAFKA_TOPIC_RE, "Kafka topic", "account-snapshots.v1")]
    partition: Annotated[int, BeforeValidator(_json_integer), Field(ge=0, le=MAX_COUNT)]
    offset: Annotated[int, BeforeValidator(_json_integer), Field(ge=0, le=MAX_COUNT)]
    timestamp: Timestamp | None  # the record's Kafka timestamp, when it has one
    key: Payload | None
    value: Payload | None
    error: DeadLetterError
    failed_at: Timestamp
    service: Annotated[str, _pattern(_SERVICE_RE, "service name", "scoring")]
    consumer_group: Annotated[Text, Field(min_length=1, max_length=255)] | None

    @classmethod
    def for_record(
        cls,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        code: DeadLetterCode,
        message: str,
        service: str,
        failed_at: datetime,
        timestamp: datetime | None = None,
        consumer_group: str | None = None,
    ) -> DeadLetter:
        """The envelope of one failed record; an over-long message is cut, never refused."""
        if len(message) > MAX_ERROR_MESSAGE_LENGTH:
            message = message[: MAX_ERROR_MESSAGE_LENGTH - 1] + "…"
        return cls(
            topic=topic,
            partition=partition,
            offset=offset,
            timestamp=timestamp,
            key=None if key is None else Payload.from_bytes(key),
            value=None if value is None else Payload.from_bytes(value),
            error=DeadLetterError(code=code, message=message or "unknown error"),
            failed_at=failed_at,
            service=service,
            consumer_group=consumer_group,
        )


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, ``field: reason``, for HTTP rejections, import reports and dead letters."""
    lines = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            message = "unknown field (the contract refuses fields it does not define)"
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(lines)
