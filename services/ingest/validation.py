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
from collections.abc import Iterable, Iterator
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


def split_body(body: bytes) -> Iterator[tuple[int, object | Rejection]]:
    """The items of a JSON array or JSON Lines body, each parsed or rejected on its own.

    A JSON array must parse as a whole (BodyError otherwise); in JSON Lines a bad line is one rejected
    item and the other lines still count. Blank lines are skipped but keep their place in the count, so
    an index is also a 0-based line number.
    """
    text = body.lstrip()
    if text.startswith(b"["):
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
        yield from enumerate(items)
        return
    for index, line in enumerate(body.split(b"\n")):
        if line.strip():
            # Kept as bytes: parsed by check_one, and given as written to the model when it is not plain.
            yield index, line


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
