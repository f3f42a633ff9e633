"""Opaque cursors for lists ordered newest first by (instant, id): alerts and incidents.

A cursor is the position of the last item of a page, ``<instant in ms>.<id>``: digits, a dot and the
item's id (an event id, services.common.events.EVENT_ID_PATTERN). Clients must not read it (it may
change); the OpenAPI declares its form (``CURSOR_PATTERN``), and any text of that form is a position
(the page after it, possibly empty), so a cursor is refused (422) exactly when it does not have the form.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from services.common.events import EVENT_ID_PATTERN

# 1-13 digits: up to 2286, past any instant barometre stores (2000-2099).
CURSOR_PATTERN = f"^[0-9]{{1,13}}\\.{EVENT_ID_PATTERN[1:-1]}$"
_CURSOR_RE = re.compile(CURSOR_PATTERN)
_NOT_A_CURSOR = "not a cursor of this list (pass `next` from the previous page as it is)"


def encode_cursor(instant: datetime, item_id: str) -> str:
    """The cursor after the item (``instant``, ``item_id``)."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return f"{int(instant.timestamp() * 1000)}.{item_id}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; ValueError for anything that is not one of ours."""
    if _CURSOR_RE.fullmatch(cursor) is None:
        raise ValueError(_NOT_A_CURSOR)
    millis, _, item_id = cursor.partition(".")
    return datetime.fromtimestamp(int(millis) / 1000, UTC), item_id


def position(cursor: str | None) -> tuple[datetime, str] | None:
    """The position of an already validated cursor parameter (None: the first page)."""
    return None if cursor is None else decode_cursor(cursor)


def next_cursor(items: Sequence[Mapping[str, Any]], more: bool, instant: str, item_id: str) -> str | None:
    """The cursor of the page after ``items`` (null when there is no more)."""
    if not more or not items:
        return None
    return encode_cursor(items[-1][instant], items[-1][item_id])
