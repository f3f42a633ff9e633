"""Ingest's verdicts: check_one (fast path first) gives exactly what the model path gives — the same
record or the same refusal with the same words — with the registry in play; bodies split as before."""

from __future__ import annotations

import json

import pytest

from services.ingest import validation
from services.ingest.known import StaticRegistry
from tests.unit.ingest.test_fastpath import NOW, documents

REGISTRY = StaticRegistry(
    frozenset({"COM:69123", "COM:38185", "DEP:2A", "COM:BE-21004", "EPCI:200040715"}),
    {"facebook:villedelyon": "COM:69123", "x:villedegrenoble": "COM:38185", "youtube:UCaBc": "DEP:38"},
)


def test_check_one_agrees_with_the_model_path() -> None:
    outcomes = {"record": 0, "refused": 0, "registry": 0}
    for index, document in enumerate(documents()):
        for item in (document, json.dumps(document).encode()):
            got = validation.check_one(index, item, NOW, REGISTRY, "push")
            expected = validation.check_with_model(index, item, NOW, REGISTRY, "push")
            assert got == expected, document
        if isinstance(got, validation.Rejection):
            outcomes["registry" if got.registry_miss or "registry" in got.error else "refused"] += 1
        else:
            outcomes["record"] += 1
    assert min(outcomes.values()) > 100, outcomes


def test_registry_fills_in_the_entity_and_source() -> None:
    item = {
        "account_id": "twitter:VilledeGrenoble",
        "platform": "twitter",
        "observed_at": "2013-01-01T10:00:00+01:00",
        "followers": 5,
    }
    key, value = validation.check_one(0, item, NOW, REGISTRY, "import")  # type: ignore[misc]
    assert key == b"x:villedegrenoble"
    event = json.loads(value)
    assert event["entity_id"] == "COM:38185" and event["source"] == "import"
    assert event["observed_at"] == "2013-01-01T09:00:00Z" and event["platform"] == "x"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'[{"a": 1}, 2]', [(0, {"a": 1}), (1, 2)]),
        (b'  [{"followers": NaN}]', None),  # not JSON for orjson; the standard parser takes it
        (b'{"a": 1}\n\n{broken\n', [(0, b'{"a": 1}'), (2, b"{broken")]),
    ],
)
def test_split_body(body: bytes, expected: list[tuple[int, object]] | None) -> None:
    items = list(validation.split_body(body))
    if expected is None:
        assert len(items) == 1 and items[0][0] == 0
    else:
        assert items == expected


def test_a_lenient_array_item_is_refused_with_its_reason() -> None:
    body = (
        b'[{"account_id": "x:villedegrenoble", "platform": "x", "observed_at": "2013-01-01T00:00:00Z",'
        b' "followers": NaN}, {"account_id": "x:villedegrenoble", "platform": "x",'
        b' "observed_at": "2013-01-01T00:00:00Z", "followers": 1, "handle": "\\ud800"}]'
    )
    accepted, rejected = validation.check(validation.split_body(body), NOW, REGISTRY, "push")
    assert accepted == []
    assert [r.index for r in rejected] == [0, 1]
    assert "followers" in rejected[0].error
    assert "handle" in rejected[1].error  # a lone surrogate: orjson cannot write it, the model says why


@pytest.mark.parametrize("body", [b"", b"  \n\n \t"])
def test_an_empty_body_is_refused_and_an_empty_array_is_not(body: bytes) -> None:
    with pytest.raises(validation.BodyError, match="the body is empty"):
        list(validation.split_body(body))
    assert list(validation.split_body(b"[]")) == []


def test_bad_bodies() -> None:
    with pytest.raises(validation.BodyError, match="not valid JSON"):
        list(validation.split_body(b"[{"))
    with pytest.raises(validation.BodyError, match="not valid JSON"):
        list(validation.split_body(b'[{"a": "\xff"}]'))
