"""The common case of snapshot validation without pydantic: same verdict, same bytes, in far less time.

:class:`services.common.events.AccountSnapshot` is the reference: it states every rule and words every
refusal. Validating through it costs as much as kafka-python's own send (a Python validator per field,
then a second pass to serialise; figures in docs/DEVELOPING.md, "Benchmarks"); ingest sees tens of
thousands of snapshots a second, nearly all of them plain and valid. :func:`snapshot_fields` checks
those plain ones directly and builds the fields exactly as the model would publish them. Whenever a
document is anything but the plain case — a float count, a ``null``, an unknown field, a bad value of
any kind — it answers ``None`` and the caller asks the model, which gives the verdict and its reason. So
the fast path can only ever accept what the model accepts, and it must normalise the same way: the unit
tests compare both on the contract's examples and on mutations of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

import orjson

from services.common.events import (
    DEFAULT_FUTURE_TOLERANCE,
    EVENT_ID_PATTERN,
    MAX_COUNT,
    MAX_HANDLE_LENGTH,
    SNAPSHOT_COUNTS,
    SNAPSHOT_FIELDS,
    SNAPSHOT_OMISSIBLE,
    SOURCE_PATTERN,
    check_entity_id,
    derive_event_id_from_text,
    format_timestamp,
    normalise_account_id,
    parse_timestamp,
)
from services.common.names import (
    ACCOUNT_SNAPSHOT_SCHEMA,
    PLATFORM_ALIASES,
    AccountStatus,
    Platform,
)

# The fields of AccountSnapshot v1, their order (that of the published JSON) and which may be absent,
# all from the model. The counts are checked in one loop; every other field by hand, below: a field the
# model gains that is neither a count nor in _CHECKED_BY_HAND stops this module from loading.
FIELDS = SNAPSHOT_FIELDS
COUNTS = SNAPSHOT_COUNTS
_CHECKED_BY_HAND = (
    "schema",
    "event_id",
    "account_id",
    "platform",
    "entity_id",
    "handle",
    "observed_at",
    "status",
    "source",
)


def check_covers(fields: tuple[str, ...], counts: tuple[str, ...]) -> None:
    """ImportError unless the fast path checks each of ``fields`` (the model's), and nothing else."""
    if set(fields) != {*_CHECKED_BY_HAND, *counts} or len(fields) != len(_CHECKED_BY_HAND) + len(counts):
        raise ImportError(
            "services/ingest/fastpath.py does not check every field of AccountSnapshot: "
            f"teach it {sorted(set(fields) - {*_CHECKED_BY_HAND, *counts})}, "
            f"forget {sorted({*_CHECKED_BY_HAND} - set(fields))}"
        )


check_covers(FIELDS, COUNTS)
_KNOWN = frozenset(FIELDS)
# (name, may be absent) of each count, in the model's order.
_COUNTS = tuple((name, name in SNAPSHOT_OMISSIBLE) for name in COUNTS)
# The published dict in the model's order, every value still to be set: each call copies it (a C copy
# keeps the order) and sets or deletes each key, so the order is the model's whatever the code's.
_ALL_ABSENT = dict.fromkeys(FIELDS, None)
_PLATFORMS: dict[str, str] = {p.value: p.value for p in Platform} | {
    alias: p.value for alias, p in PLATFORM_ALIASES.items()
}
_STATUSES = frozenset(s.value for s in AccountStatus)
_EVENT_ID_RE = re.compile(EVENT_ID_PATTERN)
_SOURCE_RE = re.compile(SOURCE_PATTERN)
_ABSENT = object()

# Normalised account ids by the text sent: the same accounts come back every polling round, and the
# normalisation (a regex and a case rule) is a tenth of the fast path. Bounded; cleared when full.
_ACCOUNT_IDS: dict[str, str] = {}
_ACCOUNT_IDS_MAX = 500_000


def _account_id(value: object) -> str | None:
    if type(value) is not str:
        return None
    found = _ACCOUNT_IDS.get(value)
    if found is None:
        try:
            found = normalise_account_id(value)
        except ValueError:
            return None
        if len(_ACCOUNT_IDS) >= _ACCOUNT_IDS_MAX:
            _ACCOUNT_IDS.clear()
        _ACCOUNT_IDS[value] = found
    return found


# Parsed timestamps by the text sent: a polling round, a simulator tick or a daily export gives one
# instant to thousands of snapshots. Bounded; cleared when full.
_INSTANTS: dict[str, tuple[datetime, str]] = {}
_INSTANTS_MAX = 100_000


def _instant(value: object) -> tuple[datetime, str] | None:
    """(the UTC instant, its canonical text) of a valid timestamp, else None."""
    if type(value) is not str:
        return None
    found = _INSTANTS.get(value)
    if found is None:
        try:
            moment = parse_timestamp(value)
        except ValueError:
            return None
        if len(_INSTANTS) >= _INSTANTS_MAX:
            _INSTANTS.clear()
        found = _INSTANTS[value] = (moment, format_timestamp(moment))
    return found


def _plain_text(value: object, regex: re.Pattern[str]) -> bool:
    return type(value) is str and regex.fullmatch(value) is not None


def snapshot_fields(item: Mapping[str, object], now: datetime) -> dict[str, object] | None:
    """The event ``item`` becomes, as ``AccountSnapshot.model_validate(item, context={"now": now})``
    would dump it, or ``None`` when ``item`` is not the plain case (the model must decide).

    The dict is in the published order. Two fields are always there because ingest completes them:
    ``entity_id`` and ``source`` are ``None`` when the snapshot had none, and must be filled in (or
    removed) before :func:`event_bytes`; optional fields the snapshot lacked are absent.
    """
    if not _KNOWN.issuperset(item):
        return None
    schema = item.get("schema", ACCOUNT_SNAPSHOT_SCHEMA)
    if type(schema) is not str or schema != ACCOUNT_SNAPSHOT_SCHEMA:
        return None
    account_id = _account_id(item.get("account_id"))
    platform = item.get("platform")
    if account_id is None or type(platform) is not str:
        return None
    platform = _PLATFORMS.get(platform)
    if platform is None or account_id.partition(":")[0] != platform:
        return None
    entity_id = item.get("entity_id")
    if entity_id is not None:
        if type(entity_id) is not str:
            return None
        try:
            check_entity_id(entity_id)
        except ValueError:
            return None
    elif "entity_id" in item:  # null: the model says "leave the field out"
        return None
    instant = _instant(item.get("observed_at"))
    if instant is None or instant[0] > now + DEFAULT_FUTURE_TOLERANCE:
        return None
    observed_text = instant[1]
    event_id = item.get("event_id", _ABSENT)
    if event_id is _ABSENT:
        event_id = derive_event_id_from_text(account_id, observed_text)
    elif not _plain_text(event_id, _EVENT_ID_RE):
        return None
    source = item.get("source")
    if source is not None and not _plain_text(source, _SOURCE_RE):
        return None
    if source is None and "source" in item:
        return None
    status = item.get("status", AccountStatus.ACTIVE.value)
    if type(status) is not str or status not in _STATUSES:
        return None

    fields = _ALL_ABSENT.copy()
    fields["schema"] = ACCOUNT_SNAPSHOT_SCHEMA
    fields["event_id"] = event_id
    fields["account_id"] = account_id
    fields["platform"] = platform
    fields["entity_id"] = entity_id
    handle = item.get("handle", _ABSENT)
    if handle is _ABSENT:
        del fields["handle"]
    elif type(handle) is not str or not 1 <= len(handle) <= MAX_HANDLE_LENGTH:
        return None
    else:
        fields["handle"] = handle
    fields["observed_at"] = observed_text
    # Counts: JSON integers only (type, not isinstance: a bool is an int to Python, not to JSON); a
    # float, which the contract allows when its fraction is zero, goes to the model.
    for name, omissible in _COUNTS:
        value = item.get(name, _ABSENT)
        if type(value) is int and 0 <= value <= MAX_COUNT:
            fields[name] = value
        elif value is _ABSENT and omissible:
            del fields[name]
        else:
            return None
    fields["status"] = status
    fields["source"] = source
    return fields


def event_bytes(fields: Mapping[str, object]) -> bytes | None:
    """The compact JSON of ``fields`` as the model writes it (UTF-8, not ASCII-escaped), or ``None`` when
    a string cannot be written (a lone surrogate from a lenient parser): the model then says why."""
    try:
        return orjson.dumps(fields)
    except orjson.JSONEncodeError:
        return None
