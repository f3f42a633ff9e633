"""Ingest's verdict on each incoming snapshot (pure: no broker, no database).

A snapshot is accepted when it matches the contract (services.common.events), is not observed more
than 5 minutes in the future, and belongs to something barometre knows: a registered account, or an
entity of the registry named in ``entity_id``. Accepted snapshots leave with their ``entity_id``
filled in from the registry and a ``source``, so every event on the topic stands on its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pydantic import ValidationError

from services.common.events import AccountSnapshot, describe_validation_error


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
            items = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BodyError(f"the body is not valid JSON: {exc}") from None
        if not isinstance(items, list):
            raise BodyError("the body must be a JSON array of snapshots or JSON Lines")
        yield from enumerate(items)
        return
    for index, line in enumerate(body.split(b"\n")):
        if line.strip():
            # Kept as bytes: pydantic parses and validates JSON in one pass, faster than json.loads first.
            yield index, line


def _describe(exc: ValidationError) -> str:
    if any(e["type"] == "json_invalid" for e in exc.errors()):
        return "not valid JSON: " + "; ".join(str(e["msg"]) for e in exc.errors())
    if any(e["type"] == "model_type" for e in exc.errors()):
        return "each snapshot must be a JSON object"
    return describe_validation_error(exc)


def check(
    items: Iterable[tuple[int, object | Rejection]], now: datetime, registry: Registry, default_source: str
) -> tuple[list[AccountSnapshot], list[Rejection]]:
    """Validate every item; return (accepted snapshots, rejections) in input order."""
    accepted: list[AccountSnapshot] = []
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
) -> AccountSnapshot | Rejection:
    """The snapshot ``item`` (a parsed object, or one JSON document as bytes) as it will be published,
    or why it is refused."""
    try:
        if isinstance(item, bytes):
            snap = AccountSnapshot.model_validate_json(item, context={"now": now})
        elif isinstance(item, dict):
            snap = AccountSnapshot.model_validate(item, context={"now": now})
        else:
            return Rejection(index, "each snapshot must be a JSON object")
    except ValidationError as exc:
        return Rejection(index, _describe(exc))
    registered = registry.account_entity(snap.account_id)
    updates: dict[str, object] = {}
    if snap.entity_id is None:
        if registered is None:
            return Rejection(
                index,
                f"account {snap.account_id!r} is not registered and the snapshot has no entity_id: "
                "give its entity_id, or register it with `barometre import accounts`",
                registry_miss=True,
            )
        updates["entity_id"] = registered
    elif registered is not None and registered != snap.entity_id:
        return Rejection(
            index,
            f"entity_id {snap.entity_id!r} contradicts the registration of {snap.account_id!r} "
            f"(registered to {registered!r})",
            registry_miss=True,
        )
    elif not registry.entity_known(snap.entity_id):
        return Rejection(
            index,
            f"unknown entity_id {snap.entity_id!r}: it is not in the registry; add it with "
            "`barometre import entities`",
        )
    if snap.source is None:
        updates["source"] = default_source
    return snap.model_copy(update=updates) if updates else snap
