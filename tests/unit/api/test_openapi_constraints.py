"""What the OpenAPI declares for a parameter is exactly what the service accepts: each declared pattern
is checked against its parser on values generated from the pattern (all accepted) and on arbitrary text
(accepted only when the pattern matches). The answers schemathesis found undeclared are pinned here too."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from services.api import deps
from services.api.alert_models import DURATION_PATTERN, URL_PATTERN, parse_duration, parse_url
from services.api.app import create_app
from services.api.models import case_insensitive
from services.api.paging import CURSOR_PATTERN, decode_cursor, encode_cursor
from services.api.routes.reports import MONTH_PATTERN, _month
from services.common.events import ENTITY_ID_PATTERN, TIMESTAMP_PATTERN, check_entity_id, parse_timestamp
from services.common.reference.parsers import PANEL_NAME_PATTERN
from services.common.settings import Settings

TOKEN = "test-bootstrap-token-0123456789abcdef"
PROPERTY = settings(max_examples=150, deadline=None, derandomize=True)


def accepts(parse: Callable[[Any], object], value: str) -> bool:
    try:
        parse(value)
    except (ValueError, TypeError):  # PydanticCustomError is a ValueError
        return False
    return True


PARSERS: dict[str, tuple[str, Callable[[Any], object]]] = {
    "timestamp": (TIMESTAMP_PATTERN, parse_timestamp),
    "cursor": (CURSOR_PATTERN, decode_cursor),
    "month": (MONTH_PATTERN, _month),
    "duration": (DURATION_PATTERN, parse_duration),
    "url": (URL_PATTERN, parse_url),
    "entity_id": (case_insensitive(ENTITY_ID_PATTERN), lambda v: check_entity_id(v.upper())),
    "panel": (PANEL_NAME_PATTERN, deps._panel),
    "region": (deps._code_pattern("REG", "^[0-9]{2,3}$"), deps._code("REG", "^[0-9]{2,3}$", "84")),
}
# Values a pattern admits that the parser refuses for a reason the pattern cannot see.
KNOWN_GAPS = {
    # 2000-01-01T00:30:00+01:00 is 1999 in UTC (the contract's own $comment says so).
    "timestamp": lambda v: parse_timestamp_year_outside(v),
}


def parse_timestamp_year_outside(value: str) -> bool:
    return value.startswith(("2000-01-01", "2099-12-31"))


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_value_of_a_declared_pattern_is_accepted(name: str) -> None:
    pattern, parse = PARSERS[name]

    @PROPERTY
    @given(st.from_regex(re.compile(pattern), fullmatch=True))
    def check(value: str) -> None:
        if name in KNOWN_GAPS and KNOWN_GAPS[name](value):
            return
        assert accepts(parse, value), (name, value)

    check()


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_what_a_parser_accepts_matches_its_pattern(name: str) -> None:
    pattern, parse = PARSERS[name]
    regex = re.compile(pattern)

    @PROPERTY
    @given(st.text(max_size=40) | st.from_regex(regex, fullmatch=True).map(lambda v: v[:-1] + "\u00e9"))
    def check(value: str) -> None:
        if accepts(parse, value):
            assert regex.fullmatch(value.strip()), (name, value)

    check()


def test_cursors_round_trip_and_have_the_declared_form() -> None:
    from datetime import UTC, datetime

    cursor = encode_cursor(
        datetime(2026, 3, 1, 6, 0, 0, 123000, tzinfo=UTC), "5b0e7a5e-2a3c-5a52-9d0c-0f6e1f0f5c11"
    )
    assert re.fullmatch(CURSOR_PATTERN, cursor)
    assert decode_cursor(cursor)[1] == "5b0e7a5e-2a3c-5a52-9d0c-0f6e1f0f5c11"


@pytest.fixture
def client() -> TestClient:
    settings = Settings.model_validate(
        {"clickhouse_url": "http://127.0.0.1:9", "clickhouse_database": "nowhere", "bootstrap_token": TOKEN}
    )
    return TestClient(create_app(settings))


def test_a_405_names_every_method_of_the_path(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for path in ("/v1/silences", "/v1/webhooks", "/v1/alerts/{alert_id}"):
        url = path.replace("{alert_id}", "a1")
        r = client.request("PATCH", url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 405, path
        assert r.json()["error"]["code"] == "method_not_allowed"
        allowed = {m.strip() for m in r.headers["allow"].split(",")}
        assert (
            {m.upper() for m in doc["paths"][path]}
            <= allowed
            <= {m.upper() for m in doc["paths"][path]} | {"HEAD"}
        )


def test_a_null_list_is_refused(client: TestClient) -> None:
    r = client.post("/v1/webhooks", headers={"Authorization": f"Bearer {TOKEN}"},
                    json={"url": "https://example.org/hook", "entity_ids": None})  # fmt: skip
    assert r.status_code == 422
    assert r.json()["error"]["message"] == "entity_ids: entity_ids must be a list"


def test_every_error_answer_is_declared_with_the_error_body(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if status.startswith(("4", "5")):
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema["$ref"].endswith("/ErrorBody"), (method, path, status)
            if method in ("post", "delete") and path.startswith("/v1/"):
                assert {"401", "403"} <= set(operation["responses"]), (method, path)
            if "requestBody" in operation:
                assert "400" in operation["responses"] and "422" in operation["responses"], (method, path)


def test_query_parameters_are_never_declared_nullable(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                assert "anyOf" not in parameter["schema"], (method, path, parameter["name"])


def test_a_silence_too_long_to_compute_is_refused_not_a_server_error() -> None:
    # Found by schemathesis: 613722w after 2036 is past the year 9999 (OverflowError, a 500).
    from datetime import UTC, datetime

    from services.api.alert_models import SilenceIn

    body = SilenceIn.model_validate(
        {"type": "account_gone", "duration": "999999w", "starts_at": "2099-12-31T00:00:00Z", "comment": "x"}
    )
    with pytest.raises(ValueError, match="a silence lasts at most 366 days"):
        body.period(datetime(2026, 12, 7, tzinfo=UTC))
