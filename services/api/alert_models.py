"""Request and response bodies of the alert delivery routes: alerts, incidents, silences, webhooks
(docs/CONTRACT.md, "Alerts over HTTP"). Request bodies refuse unknown fields and say what is wrong with
each bad one; instants are RFC 3339 with an offset, written back in UTC with ``Z``."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, model_validator
from pydantic_core import PydanticCustomError

from services.api.models import Instant, case_insensitive
from services.common.events import (
    ACCOUNT_ID_PATTERN,
    ENTITY_ID_PATTERN,
    MAX_ACCOUNT_ID_LENGTH,
    TIMESTAMP_PATTERN,
    check_entity_id,
    normalise_account_id,
    parse_timestamp,
)
from services.common.names import AlertSeverity, AlertStatus, AlertType, Platform, normalise_platform

MAX_SILENCE = timedelta(days=366)
MAX_COMMENT = 1000
MAX_URL = 2048
MIN_SECRET, MAX_SECRET = 16, 256
MAX_FILTER_VALUES = 100
# Text with at least one character that is not white space (comments that say something).
NOT_BLANK = "[^\\s]"


def invalid(message: str) -> PydanticCustomError:
    """A validation error whose message is kept as written (no "Value error, " prefix)."""
    return PydanticCustomError("invalid_value", message.replace("{", "{{").replace("}", "}}"))


def to_ms(moment: datetime) -> datetime:
    """``moment`` truncated to the millisecond: what DateTime64(3) stores, so answers match reads."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise invalid(f"{what} must be a string")
    return value.strip()


def parse_instant(value: object) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return parse_timestamp(_str(value, "an instant"))
    except ValueError as exc:
        raise invalid(str(exc)) from None


def parse_platform(value: object) -> Platform:
    try:
        return normalise_platform(_str(value, "platform").lower())
    except ValueError as exc:
        raise invalid(str(exc)) from None


def parse_type(value: object) -> AlertType:
    text = _str(value, "type")
    try:
        return AlertType(text)
    except ValueError:
        raise invalid(f"unknown alert type {text!r}; allowed: {', '.join(AlertType)}") from None


def parse_entity_id(value: object) -> str:
    try:
        return check_entity_id(_str(value, "entity_id").upper())
    except ValueError as exc:
        raise invalid(str(exc)) from None


def parse_account_id(value: object) -> str:
    try:
        return normalise_account_id(_str(value, "account_id"))
    except ValueError as exc:
        raise invalid(str(exc)) from None


DURATION_PATTERN = "^[1-9][0-9]{0,5}[smhdw]$"
_DURATION_RE = re.compile(r"^([1-9][0-9]{0,5})([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> timedelta | None:
    """``90m``, ``2h``, ``7d``, ``1w`` (or ``s``) as a timedelta."""
    if value is None or isinstance(value, timedelta):
        return value
    match = _DURATION_RE.fullmatch(_str(value, "duration"))
    if not match:
        raise invalid(f"{value!r} is not a duration: a positive number and a unit s, m, h, d or w (2h, 7d)")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def _optional(parse: Any) -> Any:
    """``parse`` for a field that may be null (absent and null mean the same: no matcher)."""

    def check(value: object) -> Any:
        return None if value is None else parse(value)

    return check


def text_or_null(pattern: str, **extra: Any) -> Any:
    """``json_schema_extra`` of an optional text field: ``pattern`` (anchored) or null."""

    def update(schema: dict[str, Any]) -> None:
        schema.pop("format", None)
        schema.pop("type", None)
        schema["anyOf"] = [{"type": "string", "pattern": pattern, **extra}, {"type": "null"}]

    return update


def _list_of(parse: Any, what: str) -> Any:
    def check(value: object) -> list[Any]:
        # null is not a list: the schema says array, and an absent field already means "everything".
        if not isinstance(value, list):
            raise invalid(f"{what} must be a list")
        if len(value) > MAX_FILTER_VALUES:
            raise invalid(f"at most {MAX_FILTER_VALUES} {what}")
        out: list[Any] = []
        for item in value:
            parsed = parse(item)
            if parsed not in out:
                out.append(parsed)
        return out

    return check


# What parse_url accepts: an http(s) URL with a host name or a bracketed IPv6 address, in visible ASCII
# (percent-encode the rest).
_H16 = "[0-9A-Fa-f]{1,4}"
_IPV4 = "(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_LS32 = f"(?:{_H16}:{_H16}|{_IPV4})"
# RFC 3986's IPv6address, alternative by alternative.
IPV6_PATTERN = (
    "(?:"
    + "|".join(
        [
            f"(?:{_H16}:){{6}}{_LS32}",
            f"::(?:{_H16}:){{5}}{_LS32}",
            f"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
            f"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
            f"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
            f"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
            f"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
            f"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
            f"(?:(?:{_H16}:){{0,6}}{_H16})?::",
        ]
    )
    + ")"
)
URL_PATTERN = (
    "^[hH][tT][tT][pP][sS]?://(?:[A-Za-z0-9._~%!$&'()*+,;=:-]*@)?"
    f"(?:[A-Za-z0-9._~-]+|\\[{IPV6_PATTERN}\\])"
    "(?::[0-9]{1,5})?(?:[/?#][!-~]*)?$"
)


def parse_url(value: object) -> str:
    text = _str(value, "url")
    if len(text) > MAX_URL or not re.fullmatch(URL_PATTERN, text) or not urlsplit(text).hostname:
        raise invalid(f"{text[:100]!r} is not an http:// or https:// URL (at most {MAX_URL} characters)")
    return text


def _example(example: dict[str, JsonValue]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


ALERT_EXAMPLE: dict[str, JsonValue] = {
    "alert_id": "5b0e7a5e-2a3c-5a52-9d0c-0f6e1f0f5c11",
    "type": "audience_drop",
    "account_id": "facebook:123456",
    "entity_id": "COM:38185",
    "platform": "facebook",
    "observed_at": "2026-03-01T06:00:00Z",
    "detected_at": "2026-03-01T06:00:04.120000Z",
    "value": 61200.0,
    "expected": 98250.0,
    "score": 41.3,
    "severity": "critical",
    "status": "open",
}


class AlertOut(BaseModel):
    """Alert v1 (schemas/events/alert.v1.json), as on the alerts.v1 topic."""

    model_config = _example(ALERT_EXAMPLE)
    alert_id: str
    type: AlertType
    account_id: str
    entity_id: str | None
    platform: Platform
    observed_at: Instant
    detected_at: Instant
    value: float | None
    expected: float | None
    score: float | None
    severity: AlertSeverity
    status: AlertStatus


class AlertsPage(BaseModel):
    """Alerts newest first; ``next`` is the cursor of the following page (null on the last)."""

    items: list[AlertOut]
    next: str | None


class AckOut(BaseModel):
    acked_at: Instant
    acked_by: str = Field(description="The token that acknowledged it (its public prefix), or `bootstrap`")
    comment: str


class AlertDetailOut(AlertOut):
    """An alert with what explains it (docs/ALERTS.md, "What a detection says") and its acknowledgement."""

    model_config = _example(
        {
            **ALERT_EXAMPLE,
            "details": {"change": -37050, "expected_change": 50, "z": 41.3, "flags": []},
            "inhibited_by": None,
            "ack": None,
        }
    )
    details: dict[str, JsonValue]
    inhibited_by: str | None = Field(description="The incident that inhibited it (not on alerts.v1)")
    ack: AckOut | None = Field(description="The first acknowledgement; null while open")


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: Annotated[str, Field(max_length=MAX_COMMENT)] = ""


class IncidentOut(BaseModel):
    """A platform-wide incident (docs/ALERTS.md, "The incident representation")."""

    incident_id: str
    type: AlertType
    platform: Platform
    first_observed_at: Instant
    last_observed_at: Instant
    detected_at: Instant
    updated_at: Instant
    accounts: int
    members: list[str]
    emitted_before: list[str]
    active_accounts: int | None
    share: float | None
    threshold: int
    total_change: float
    severity: AlertSeverity
    status: Literal["open", "resolved"]
    silenced_by: str | None


class IncidentsPage(BaseModel):
    items: list[IncidentOut]
    next: str | None


class SilenceIn(BaseModel):
    """A new silence: every given matcher must match; at least one of them."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"platform": "facebook", "type": "audience_drop", "duration": "6h",
                          "comment": "Facebook purge of inactive accounts"}]
        },
    )  # fmt: skip
    starts_at: Annotated[
        datetime | None,
        BeforeValidator(parse_instant),
        Field(description="Default: now", json_schema_extra=text_or_null(TIMESTAMP_PATTERN)),
    ] = None
    ends_at: Annotated[
        datetime | None,
        BeforeValidator(parse_instant),
        Field(description="After now and after starts_at", json_schema_extra=text_or_null(TIMESTAMP_PATTERN)),
    ] = None
    duration: Annotated[
        timedelta | None,
        BeforeValidator(parse_duration),
        Field(
            description="Instead of ends_at: 90m, 2h, 7d, 1w (s, m, h, d or w)",
            json_schema_extra=text_or_null(DURATION_PATTERN),
        ),
    ] = None
    account_id: Annotated[
        str | None,
        BeforeValidator(_optional(parse_account_id)),
        Field(json_schema_extra=text_or_null(ACCOUNT_ID_PATTERN, maxLength=MAX_ACCOUNT_ID_LENGTH)),
    ] = None
    entity_id: Annotated[
        str | None,
        BeforeValidator(_optional(parse_entity_id)),
        Field(json_schema_extra=text_or_null(case_insensitive(ENTITY_ID_PATTERN))),
    ] = None
    platform: Annotated[Platform | None, BeforeValidator(_optional(parse_platform))] = None
    type: Annotated[AlertType | None, BeforeValidator(_optional(parse_type))] = None
    comment: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_COMMENT,
            description="Why (required, not blank)",
            json_schema_extra={"pattern": NOT_BLANK},
        ),
    ]

    @model_validator(mode="after")
    def _check(self) -> SilenceIn:
        if not any((self.account_id, self.entity_id, self.platform, self.type)):
            raise invalid("a silence needs at least one matcher: account_id, entity_id, platform or type")
        if (self.ends_at is None) == (self.duration is None):
            raise invalid("give either ends_at or duration (one of them)")
        if self.account_id and self.platform and self.account_id.partition(":")[0] != self.platform.value:
            raise invalid(f"account_id {self.account_id!r} is not on platform {self.platform.value!r}")
        if not self.comment.strip():
            raise invalid("comment: say why (it cannot be blank)")
        return self

    def period(self, now: datetime) -> tuple[datetime, datetime]:
        """``[starts_at, ends_at)`` once defaults are applied; ValueError when it is not a valid period."""
        starts = to_ms(self.starts_at or now)
        if self.duration is not None and self.duration > MAX_SILENCE:
            # Checked before adding: 999999w after starts_at is past the year 9999 (OverflowError).
            raise ValueError(f"a silence lasts at most {MAX_SILENCE.days} days; create a new one after")
        ends = to_ms(self.ends_at) if self.ends_at is not None else starts + (self.duration or timedelta())
        if ends <= now:
            raise ValueError("ends_at: the silence would already be over")
        if ends <= starts:
            raise ValueError("ends_at: must be after starts_at")
        if ends - starts > MAX_SILENCE:
            raise ValueError(f"a silence lasts at most {MAX_SILENCE.days} days; create a new one after")
        return starts, ends


class SilenceOut(BaseModel):
    silence_id: str
    starts_at: Instant
    ends_at: Instant
    account_id: str | None
    entity_id: str | None
    platform: Platform | None
    type: AlertType | None
    created_by: str
    comment: str
    created_at: Instant
    active: bool = Field(description="In force now")


class SilencesOut(BaseModel):
    items: list[SilenceOut]


class WebhookIn(BaseModel):
    """A new webhook subscription; empty filters match everything."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"url": "https://example.org/barometre-hook", "types": ["audience_drop"],
                          "platforms": ["facebook"], "min_severity": "warning",
                          "description": "drops on Facebook"}]
        },
    )  # fmt: skip
    url: Annotated[
        str,
        BeforeValidator(parse_url),
        Field(
            description="http:// or https:// URL of a public host (at most 2048 characters)",
            json_schema_extra={"pattern": URL_PATTERN, "maxLength": MAX_URL},
        ),
    ]
    secret: Annotated[
        str | None,
        Field(
            min_length=MIN_SECRET,
            max_length=MAX_SECRET,
            description="The signing key; absent: generated and returned once, in this answer",
        ),
    ] = None
    types: Annotated[
        list[AlertType],
        BeforeValidator(_list_of(parse_type, "types")),
        Field(json_schema_extra={"maxItems": MAX_FILTER_VALUES}),
    ] = []
    platforms: Annotated[
        list[Platform],
        BeforeValidator(_list_of(parse_platform, "platforms")),
        Field(json_schema_extra={"maxItems": MAX_FILTER_VALUES}),
    ] = []
    entity_ids: Annotated[
        list[str],
        BeforeValidator(_list_of(parse_entity_id, "entity_ids")),
        Field(
            json_schema_extra={
                "maxItems": MAX_FILTER_VALUES,
                "items": {"type": "string", "pattern": case_insensitive(ENTITY_ID_PATTERN)},
            }
        ),
    ] = []
    min_severity: AlertSeverity = AlertSeverity.INFO
    description: Annotated[str, Field(max_length=MAX_COMMENT)] = ""


class WebhookOut(BaseModel):
    subscription_id: str
    url: str
    types: list[AlertType]
    platforms: list[Platform]
    entity_ids: list[str]
    min_severity: AlertSeverity
    description: str
    created_by: str
    created_at: Instant


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Shown only in this answer: keep it to verify signatures")


class WebhooksOut(BaseModel):
    items: list[WebhookOut]


class DeliveryOut(BaseModel):
    alert_id: str
    attempts: int
    status: Literal["retrying", "delivered", "failed"]
    http_status: int | None = Field(description="The last answer's status; null when none came")
    error: str = Field(description="Why the last attempt failed; empty when delivered")
    first_attempt_at: Instant
    last_attempt_at: Instant


class DeliveriesOut(BaseModel):
    subscription_id: str
    items: list[DeliveryOut]
