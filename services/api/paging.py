"""Opaque cursors for lists ordered newest first by (instant, id): alerts and incidents.

A cursor is the position of the last item of a page, ``(instant in ms, id)``, as URL-safe base64 of a
small JSON array. Clients must not read it (it may change); a cursor that does not decode is a 422.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

MAX_CURSOR_LENGTH = 512


def encode_cursor(instant: datetime, item_id: str) -> str:
    """The cursor after the item (``instant``, ``item_id``)."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    millis = int(instant.timestamp() * 1000)
    raw = json.dumps([millis, item_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; ValueError for anything that is not one of ours."""
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        raise ValueError("not a cursor of this list (pass `next` from the previous page as it is)")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValueError("not a cursor of this list (pass `next` from the previous page as it is)") from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], int)
        or isinstance(value[0], bool)
        or not isinstance(value[1], str)
        or not 0 <= value[0] < 4_102_444_800_000  # before 2100
    ):
        raise ValueError("not a cursor of this list (pass `next` from the previous page as it is)")
    return datetime.fromtimestamp(value[0] / 1000, UTC), value[1]


def position(cursor: str | None) -> tuple[datetime, str] | None:
    """The position of an already validated cursor parameter (None: the first page)."""
    return None if cursor is None else decode_cursor(cursor)


def next_cursor(items: Sequence[Mapping[str, Any]], more: bool, instant: str, item_id: str) -> str | None:
    """The cursor of the page after ``items`` (null when there is no more)."""
    if not more or not items:
        return None
    return encode_cursor(items[-1][instant], items[-1][item_id])
