"""The fast path agrees with the AccountSnapshot model: whatever it accepts, the model accepts and
publishes byte for byte the same; it hands everything else to the model. Checked on the contract's
examples and on thousands of mutations of them (one field at a time, then several at random)."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from services.common.events import AccountSnapshot
from services.common.names import EVENT_ID_NAMESPACE
from services.ingest import fastpath

EXAMPLES = json.loads(
    (Path(__file__).parents[1] / "contract_examples" / "account_snapshot.json").read_text(encoding="utf-8")
)
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ABSENT = object()

BASES: list[dict[str, Any]] = [
    {
        "account_id": "facebook:villedelyon",
        "platform": "facebook",
        "entity_id": "COM:69123",
        "handle": "Ville de Lyon",
        "observed_at": "2026-11-01T10:00:00+01:00",
        "followers": 120_000,
        "following": 12,
        "posts_total": 4_000,
        "posts_30d": 31,
        "interactions_30d": 9_000,
        "replies_30d": 4,
        "automated_posts_30d": 0,
        "status": "active",
    },
    {
        "account_id": "twitter:@VilledeGrenoble",
        "platform": "twitter",
        "observed_at": "2013-01-01T09:00:00Z",
        "followers": 0,
    },
    {
        "schema": "account_snapshot/1",
        "event_id": "abc-1",
        "account_id": "youtube:UCaBc",
        "platform": "youtube",
        "entity_id": "DEP:2A",
        "observed_at": "2020-02-29T23:59:59.1234567-05:00",
        "followers": 2**53 - 1,
        "status": "deleted",
        "source": "poller:youtube",
    },
] + [example["event"] for example in EXAMPLES["valid"]]

# Values tried in every field: the plain ones and the traps (types, bounds, case, nulls).
# fmt: off
VALUES: list[object] = [
    ABSENT, None, True, False, 0, 1, -1, 7, 1.0, 1.5, -0.0, 2**53 - 1, 2**53, 10**20, "", " ", "7", "x",
    [], {}, [1], {"a": 1},
    "facebook", "twitter", "x", "X", "Facebook", "myspace", "bluesky", "youtube", "tiktok",
    "facebook:villedelyon", "facebook:VilleDeLyon", "facebook:@villedelyon", "facebook:@@v", "facebook:",
    "x:villedegrenoble", "twitter:Grenoble", "youtube:UCaBc", "tiktok:MiXeD", "x:a b", "x:a\"b\\c",
    "x:" + "a" * 254, "x:" + "a" * 255, "facebook:é😀",
    "COM:38185", "COM:2A004", "DEP:2A", "DEP:971", "REG:84", "EPCI:200040715", "COM:BE-21004", "BAD:1",
    "COM:3818", "com:38185",
    "2013-01-01T10:00:00+01:00", "2013-01-01t10:00:00z", "2013-01-01T10:00:00", "2013-01-01 10:00:00Z",
    "2013-01-01T10:00:00.123456789Z", "2013-02-29T00:00:00Z", "2012-02-29T00:00:00Z",
    "2099-12-31T23:30:00-01:00", "2000-01-01T00:30:00+01:00", "2026-11-28T12:04:59Z",
    "2026-11-28T12:05:00Z", "2026-11-28T12:05:00.000001Z", "2026-11-28T13:06:00+01:00",
    "active", "deleted", "suspended", "Active", "hacked",
    "push", "import", "simulator", "poller:bluesky", "poller:", "poller:Bluesky", "import ",
    "account_snapshot/1", "account_snapshot/2",
    "a" * 256, "a" * 257, "é" * 256, "line\nbreak\t\u2028\x7f\x00", "\ufeffbom",
    "0f8fad5b-d9cb-469f-a165-70867728950e", "a" * 128, "a" * 129, "-leading", "ok.id:1_2-3",
]
# fmt: on


def _set(document: dict[str, Any], field: str, value: object) -> dict[str, Any]:
    out = dict(document)
    if value is ABSENT:
        out.pop(field, None)
    else:
        out[field] = value
    return out


def documents() -> Iterator[dict[str, Any]]:
    """The bases, each field of each base set to each value, an unknown field, then random mixes."""
    for base in BASES:
        yield base
        yield {**base, "follower": 1}
        yield {**base, "schema_version": "account_snapshot/1"}
        for field in fastpath.FIELDS:
            for value in VALUES:
                yield _set(base, field, value)
    rng = random.Random(42)
    for _ in range(3000):
        document = dict(rng.choice(BASES))
        for field in rng.sample(fastpath.FIELDS, rng.randint(2, 4)):
            document = _set(document, field, rng.choice(VALUES))
        yield document


def model_bytes(document: object) -> bytes | None:
    try:
        return AccountSnapshot.model_validate(document, context={"now": NOW}).to_event_bytes()
    except ValidationError:
        return None


def published(fields: dict[str, object]) -> bytes | None:
    # What the model writes when the snapshot had no entity_id or source (ingest fills them in later).
    return fastpath.event_bytes({k: v for k, v in fields.items() if v is not None})


def test_fields_are_the_models_in_its_order() -> None:
    # A field added to the model fails here until the fast path knows how to check it.
    names = [info.alias or name for name, info in AccountSnapshot.model_fields.items()]
    assert list(fastpath.FIELDS) == names


def test_agrees_with_the_model_on_every_document() -> None:
    fast = fallback_valid = refused = 0
    for document in documents():
        expected = model_bytes(document)
        fields = fastpath.snapshot_fields(document, NOW)
        if fields is None:
            if expected is None:
                refused += 1
            else:
                fallback_valid += 1
            continue
        fast += 1
        assert expected is not None, f"the fast path accepts what the model refuses: {document!r}"
        assert published(fields) == expected, document
    # The test means something only if both paths are exercised, and the plain case is fast.
    assert fast > 1000 and refused > 1000, (fast, refused)
    assert fallback_valid < fast / 4, (fallback_valid, fast)


def test_the_json_bytes_path_agrees_too() -> None:
    # What JSON Lines give: bytes parsed by orjson, against the model's own JSON parser.
    checked = 0
    for document in documents():
        raw = json.dumps(document).encode()
        try:
            expected: bytes | None = AccountSnapshot.model_validate_json(
                raw, context={"now": NOW}
            ).to_event_bytes()
        except ValidationError:
            expected = None
        fields = fastpath.snapshot_fields(orjson.loads(raw), NOW)
        if fields is not None:
            checked += 1
            assert published(fields) == expected, document
    assert checked > 1000


@pytest.mark.parametrize("example", EXAMPLES["valid"], ids=lambda e: e["name"])
def test_plain_valid_examples_take_the_fast_path(example: dict[str, Any]) -> None:
    fields = fastpath.snapshot_fields(example["event"], NOW)
    plain = all(type(v) is not float for v in example["event"].values())
    if plain and model_bytes(example["event"]) is not None:  # not in the future of NOW
        assert fields is not None
        assert published(fields) == model_bytes(example["event"])


@pytest.mark.parametrize("example", EXAMPLES["invalid"], ids=lambda e: e["name"])
def test_invalid_examples_go_to_the_model(example: dict[str, Any]) -> None:
    event = example["event"]
    assert not isinstance(event, dict) or fastpath.snapshot_fields(event, NOW) is None


def test_the_future_rule_uses_now() -> None:
    base = dict(BASES[1])
    assert fastpath.snapshot_fields({**base, "observed_at": "2026-11-28T12:05:00Z"}, NOW) is not None
    assert fastpath.snapshot_fields({**base, "observed_at": "2026-11-28T12:05:01Z"}, NOW) is None
    later = NOW + timedelta(hours=1)
    assert fastpath.snapshot_fields({**base, "observed_at": "2026-11-28T12:05:01Z"}, later) is not None


def test_a_string_that_cannot_be_written_is_left_to_the_model() -> None:
    assert fastpath.event_bytes({"handle": "\ud800"}) is None


def test_derived_event_ids_are_the_contracts_uuid5() -> None:
    # Independent of events.py's fast UUID code: the standard library's uuid5 of account_id|observed_at.
    checked = 0
    for document in documents():
        fields = fastpath.snapshot_fields(document, NOW)
        if fields is None or "event_id" in document:
            continue
        name = f"{fields['account_id']}|{fields['observed_at']}"
        assert fields["event_id"] == str(uuid.uuid5(EVENT_ID_NAMESPACE, name))
        checked += 1
    assert checked > 1000
