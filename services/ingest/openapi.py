"""What the OpenAPI of ``POST /v1/snapshots`` says: the route reads its body raw (the fast path of
services/ingest/fastpath.py), so FastAPI cannot infer it; it is declared here, from the contract's own
JSON Schema (schemas/events/account_snapshot.v1.json), not written a second time.

The schema file is read from the source tree; an installed copy without it (the image ships services/
only) declares the item schema of the ``AccountSnapshot`` model, which tests/unit/test_contract.py keeps
in agreement with the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from services.common.events import AccountSnapshot
from services.common.web import ErrorBody

SNAPSHOT_SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "events" / "account_snapshot.v1.json"
# Keys of a standalone JSON Schema document that have no place inside an OpenAPI component.
_DOCUMENT_KEYS = ("$schema", "$id", "$comment")


def snapshot_item_schema() -> dict[str, Any]:
    """The JSON Schema of one snapshot, as POST /v1/snapshots takes it."""
    if SNAPSHOT_SCHEMA_FILE.is_file():
        schema: dict[str, Any] = json.loads(SNAPSHOT_SCHEMA_FILE.read_text(encoding="utf-8"))
    else:  # pragma: no cover - only in an installed copy without schemas/
        schema = AccountSnapshot.model_json_schema()
    defs = schema.get("$defs", {})

    def inline(node: Any) -> Any:
        # "#/$defs/…" means the schema file's root; inside the OpenAPI document it would mean the
        # document's: the definitions are put in place instead (they do not refer to one another).
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {k: inline(v) for k, v in node.items() if k != "$ref"}
                return {**inline(defs[ref.removeprefix("#/$defs/")]), **rest}
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    out: dict[str, Any] = inline({k: v for k, v in schema.items() if k not in (*_DOCUMENT_KEYS, "$defs")})
    return _conditionals_as_choices(out)


def _conditionals_as_choices(schema: dict[str, Any]) -> dict[str, Any]:
    """The file's ``allOf: [{if: {platform in S}, then: {account_id ~ P}}…]`` as the equivalent
    ``anyOf: [{platform in S, account_id ~ P}…]`` (platform is required and every one of its values has
    its rule): the same constraint, in the form generators (schemathesis, client tools) can draw from."""
    rules = schema.get("allOf", [])
    choices = []
    for rule in rules:
        condition, then = rule.get("if", {}), rule.get("then", {})
        if set(rule) != {"if", "then"} or condition.get("required") != ["platform"]:
            return schema  # not the form this knows: keep the file's wording
        choices.append({"properties": {**condition["properties"], **then["properties"]}})
    covered = set()
    for choice in choices:
        platform = choice["properties"]["platform"]
        covered |= set(platform.get("enum", [platform.get("const")]))
    if not choices or covered != set(schema["properties"]["platform"]["enum"]):
        return schema
    return {**{k: v for k, v in schema.items() if k != "allOf"}, "anyOf": choices}


def request_body(max_items: int) -> dict[str, Any]:
    """``openapi_extra`` of the route: its request body, a JSON array or JSON Lines of snapshots."""
    return {
        "requestBody": {
            # A body of nothing (or nothing but blanks) is a 400: a client that lost its body must know.
            "required": True,
            "description": f"At most {max_items:,} snapshots: a JSON array, or JSON Lines (one snapshot per "
            "line; a bad line is one rejected item). Each item is judged on its own: the answer lists the "
            "refused ones with the reason, the others are published.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "maxItems": max_items,
                        "items": snapshot_item_schema(),
                    }
                },
                "application/x-ndjson": {
                    "schema": {
                        "type": "string",
                        "pattern": "\\S",  # not empty, not only blanks
                        "description": "One snapshot (the items above) per line.",
                    }
                },
            },
        }
    }


class Refusal(BaseModel):
    index: int = Field(description="0-based index of the item in the array (or line number in JSON Lines)")
    error: str = Field(description="Why it was refused")


class SnapshotsOut(BaseModel):
    """Sent after Kafka acknowledged every accepted snapshot."""

    accepted: int = Field(description="Snapshots published")
    rejected: list[Refusal] = Field(description="Refused items, in order")


RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body is empty, or neither a JSON array nor JSON Lines."},
    401: {"model": ErrorBody, "description": "No token, or an unknown, revoked or expired one."},
    403: {"model": ErrorBody, "description": "The token does not have the ingest scope."},
}
