"""Test-wide fixtures. Kafka and the ClickHouse endpoint are the real ones, started once per session
by the plugins below on test ports; tests that need them carry the ``kafka`` / ``clickhouse`` markers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.clickhouse"]


@pytest.fixture(autouse=True)
def _clickhouse_only_when_marked(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Unmarked tests are stopped from reaching ClickHouse, so the marker tells the truth about a test."""
    if request.node.get_closest_marker("clickhouse") is None:
        import clickhouse_connect

        def refuse(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError(
                f"{request.node.nodeid} opens a ClickHouse client but is not marked @pytest.mark.clickhouse"
            )

        monkeypatch.setattr(clickhouse_connect, "get_client", refuse)
    yield
