"""Ingest's verdict on each incoming snapshot (pure: no broker, no database).

A snapshot is accepted when it matches the contract (services.common.events), is not observed more
than 5 minutes in the future, and belongs to something barometre knows: a registered account, or an
entity of the registry named in ``entity_id``. Accepted snapshots leave with their ``entity_id``
filled in from the registry and a ``source``, so every event on the topic stands on its own; they come
out as Kafka records, ready to send.

The plain, valid snapshots that make up nearly all of the traffic are checked by
:mod:`services.ingest.fastpath`; everything else by the pydantic model, which words the refusals.
"""

from __future__ import annotations

import json
import json.scanner
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, cast

import orjson
from pydantic import ValidationError

from services.common.events import AccountSnapshot, describe_validation_error
from services.ingest import fastpath

# An accepted snapshot as a Kafka record: (key = normalised account_id, value = the event's JSON).
Record = tuple[bytes, bytes]


class Registry(Protocol):
    """What validation needs to know about entities and accounts."""

    def entity_known(self, entity_id: str) -> bool: ...
    def account_entity(self, account_id: str) -> str | None: ...


@dataclass(frozen=True)
class Rejection:
    """One refused item: its 0-based index in the request (or line number in a file) and why."""

    index: int
    error: str
    # True when the item was refused only because the registry did not know its account or entity:
    # worth one registry reload and a second look (the import may have just happened).
    registry_miss: bool = False


class BodyError(ValueError):
    """The request body as a whole cannot be read (not JSON, not an array or JSON Lines)."""


class TooManyItems(BodyError):
    """The body holds more items than one request may carry (found while parsing, before building more)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} snapshots in one request; at most {limit}")
        self.limit = limit


STEP_COMMAS_PER_ITEM = 64
_JSON_WS = re.compile(r"[ \t\n\r]*")
_NON_BLANK_LINE = re.compile(rb"^[^\S\n]*\S[^\n]*", re.MULTILINE)


def split_body(body: bytes, max_items: int | None = None) -> Iterator[tuple[int, object | Rejection]]:
    """The items of a JSON array or JSON Lines body, each parsed or rejected on its own.

    A JSON array must parse as a whole (BodyError otherwise); in JSON Lines a bad line is one rejected
    item and the other lines still count. Blank lines are skipped but keep their place in the count, so
    an index is also a 0-based line number. With ``max_items``, more items than that raise TooManyItems
    as soon as the one past the limit is met: a body of a million tiny items never becomes a million
    objects in memory.
    """
    text = body.lstrip()
    if not text:  # nothing at all: a client's mistake (a lost body), not a batch of zero snapshots
        raise BodyError("the body is empty: send a JSON array of snapshots or JSON Lines")
    if text.startswith(b"["):
        # Items <= commas + 1. A body with fewer than STEP_COMMAS_PER_ITEM commas per allowed item is
        # parsed whole by orjson (twice as fast as the scanner: a snapshot has ~15 commas, so every
        # legitimate body takes this path) and its length checked after: at worst ~640,000 tiny items
        # are built before it is refused. More commas than that: parsed item by item, counting, and
        # stopped at the limit, so a body of millions of items never becomes millions of objects.
        if max_items is not None and body.count(b",") >= max_items * STEP_COMMAS_PER_ITEM:
            yield from enumerate(_array_items(body, max_items))
            return
        try:
            items = orjson.loads(body)
        except orjson.JSONDecodeError:
            # The standard parser is more lenient (NaN, lone surrogates: then the item is refused with
            # its reason) and words the error as before.
            try:
                items = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise BodyError(f"the body is not valid JSON: {exc}") from None
        if not isinstance(items, list):
            raise BodyError("the body must be a JSON array of snapshots or JSON Lines")
        if max_items is not None and len(items) > max_items:
            raise TooManyItems(max_items)
        yield from enumerate(items)
        return
    if max_items is None or body.count(b"\n") < max_items:
        for index, line in enumerate(body.split(b"\n")):
            if line.strip():
                # Kept as bytes: parsed by check_one, and given as written to the model when it is not
                # plain.
                yield index, line
        return
    # Many lines (or many blank ones): found by the regex engine, counted, and never all split out.
    line_number, last = 0, 0
    for count, match in enumerate(_NON_BLANK_LINE.finditer(body), start=1):
        if count > max_items:
            raise TooManyItems(max_items)
        line_number += body.count(b"\n", last, match.start())
        last = match.start()
        yield line_number, match.group()


def _array_items(body: bytes, max_items: int) -> Iterator[object]:
    """The items of a JSON array, parsed one at a time by the standard library's C scanner; TooManyItems
    at item ``max_items + 1``, before it is parsed. Parsed whole, so that a body that is not JSON is
    refused before anything is reported."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"the body is not valid JSON: {exc}") from None
    scan: Callable[[str, int], tuple[object, int]] = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
    items: list[object] = []

    def fail(at: int, what: str) -> BodyError:
        line = text.count("\n", 0, at) + 1
        return BodyError(f"the body is not valid JSON: {what}: line {line} (char {at})")

    pos = _JSON_WS.match(text, text.index("[") + 1).end()  # type: ignore[union-attr]  # matches anywhere
    if text.startswith("]", pos):
        pos += 1
    else:
        while True:
            if len(items) >= max_items:
                raise TooManyItems(max_items)
            try:
                item, pos = scan(text, pos)
            except StopIteration as stop:
                raise fail(stop.value, "Expecting value") from None
            except json.JSONDecodeError as exc:
                raise BodyError(f"the body is not valid JSON: {exc}") from None
            items.append(item)
            pos = _JSON_WS.match(text, pos).end()  # type: ignore[union-attr]
            if text.startswith("]", pos):
                pos += 1
                break
            if not text.startswith(",", pos):
                raise fail(pos, "Expecting ',' delimiter")
            pos = _JSON_WS.match(text, pos + 1).end()  # type: ignore[union-attr]
    if _JSON_WS.match(text, pos).end() != len(text):  # type: ignore[union-attr]
        raise fail(pos, "Extra data")
    return iter(items)


def _describe(exc: ValidationError) -> str:
    if any(e["type"] == "json_invalid" for e in exc.errors()):
        return "not valid JSON: " + "; ".join(str(e["msg"]) for e in exc.errors())
    if any(e["type"] == "model_type" for e in exc.errors()):
        return "each snapshot must be a JSON object"
    return describe_validation_error(exc)


def check(
    items: Iterable[tuple[int, object | Rejection]], now: datetime, registry: Registry, default_source: str
) -> tuple[list[Record], list[Rejection]]:
    """Validate every item; return (records of the accepted snapshots, rejections) in input order."""
    accepted: list[Record] = []
    rejected: list[Rejection] = []
    for index, item in items:
        if isinstance(item, Rejection):
            rejected.append(item)
            continue
        outcome = check_one(index, item, now, registry, default_source)
        if isinstance(outcome, Rejection):
            rejected.append(outcome)
        else:
            accepted.append(outcome)
    return accepted, rejected


def check_one(
    index: int, item: object, now: datetime, registry: Registry, default_source: str
) -> Record | Rejection:
    """The record of the snapshot ``item`` (a parsed object, or one JSON document as bytes) as it will be
    published, or why it is refused."""
    parsed = item
    if isinstance(item, bytes):
        try:
            parsed = orjson.loads(item)
        except orjson.JSONDecodeError:
            parsed = None
    if isinstance(parsed, dict):
        fields = fastpath.snapshot_fields(parsed, now)
        if fields is not None:
            account_id = cast(str, fields["account_id"])
            owner = _owner(index, account_id, cast("str | None", fields["entity_id"]), registry)
            if isinstance(owner, Rejection):
                return owner
            fields["entity_id"] = owner
            if fields["source"] is None:
                fields["source"] = default_source
            value = fastpath.event_bytes(fields)
            if value is not None:
                return account_id.encode(), value
    return check_with_model(index, item, now, registry, default_source)


def check_with_model(
    index: int, item: object, now: datetime, registry: Registry, default_source: str
) -> Record | Rejection:
    """:func:`check_one` through the pydantic model only: the reference the fast path must agree with,
    and the path of every snapshot that is not plain (it words the refusals)."""
    try:
        if isinstance(item, bytes):
            snap = AccountSnapshot.model_validate_json(item, context={"now": now})
        elif isinstance(item, dict):
            snap = AccountSnapshot.model_validate(item, context={"now": now})
        else:
            return Rejection(index, "each snapshot must be a JSON object")
    except ValidationError as exc:
        return Rejection(index, _describe(exc))
    owner = _owner(index, snap.account_id, snap.entity_id, registry)
    if isinstance(owner, Rejection):
        return owner
    updates: dict[str, object] = {}
    if snap.entity_id is None:
        updates["entity_id"] = owner
    if snap.source is None:
        updates["source"] = default_source
    if updates:
        snap = snap.model_copy(update=updates)
    return snap.account_id.encode(), snap.to_event_bytes()


def _owner(index: int, account_id: str, entity_id: str | None, registry: Registry) -> str | Rejection:
    """The entity the snapshot is published under, or why it has none that barometre knows."""
    registered = registry.account_entity(account_id)
    if entity_id is None:
        if registered is None:
            return Rejection(
                index,
                f"account {account_id!r} is not registered and the snapshot has no entity_id: "
                "give its entity_id, or register it with `barometre import accounts`",
                registry_miss=True,
            )
        return registered
    if registered is not None and registered != entity_id:
        return Rejection(
            index,
            f"entity_id {entity_id!r} contradicts the registration of {account_id!r} "
            f"(registered to {registered!r})",
            registry_miss=True,
        )
    if not registry.entity_known(entity_id):
        return Rejection(
            index,
            f"unknown entity_id {entity_id!r}: it is not in the registry; add it with "
            "`barometre import entities`",
        )
    return entity_id
