"""Settings come from BAROMETRE_* variables; ClickHouse is reached over HTTP only."""

from __future__ import annotations

import pytest

from services.common.clickhouse import ClickHouseConfigError, parse_url
from services.common.settings import Settings


def test_environment_variables_set_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAROMETRE_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    monkeypatch.setenv("BAROMETRE_API_PORT", "9000")
    monkeypatch.setenv("BAROMETRE_BOOTSTRAP_TOKEN", "s3cret-of-at-least-32-characters!")
    s = Settings()
    assert s.kafka_bootstrap == "k1:9092,k2:9092"
    assert s.api_port == 9000
    assert (
        s.bootstrap_token is not None
        and s.bootstrap_token.get_secret_value() == "s3cret-of-at-least-32-characters!"
    )
    assert "s3cret" not in repr(s)


def test_secrets_have_no_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BAROMETRE_BOOTSTRAP_TOKEN", raising=False)
    assert Settings().bootstrap_token is None


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValueError):
        s.api_port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8123", ("127.0.0.1", 8123, False)),
        ("http://clickhouse", ("clickhouse", 8123, False)),
        ("https://ch.example.org", ("ch.example.org", 8443, True)),
    ],
)
def test_clickhouse_urls(url: str, expected: tuple[str, int, bool]) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize("url", ["clickhouse://127.0.0.1:9000", "127.0.0.1:8123", "http://"])
def test_non_http_clickhouse_urls_are_refused(url: str) -> None:
    with pytest.raises(ClickHouseConfigError, match="http"):
        parse_url(url)
