"""Test-wide fixtures. Kafka and the ClickHouse endpoint are the real ones, started once per session
by the plugins below on test ports; tests that need them carry the ``kafka`` / ``clickhouse`` markers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.clickhouse", "tests.fixtures.replay"]


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


@pytest.fixture
def app_settings(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Settings of a barometre instance of its own: a fresh migrated database (registry loaded) on the
    test ClickHouse endpoint and, for tests marked ``kafka``, a unique topic prefix on the test broker."""
    import uuid

    from services.common.bootstrap import prepare_database
    from services.common.settings import Settings

    values: dict[str, Any] = {
        "clickhouse_database": f"t_{uuid.uuid4().hex[:12]}",
        "bootstrap_token": "test-bootstrap-token-0123456789abcdef",  # 32+ characters
    }
    if request.node.get_closest_marker("kafka") is not None:
        values["kafka_bootstrap"] = request.getfixturevalue("kafka_bootstrap")
        values["kafka_topic_prefix"] = f"t{uuid.uuid4().hex[:8]}."
        values["kafka_partitions"] = 3
    url = request.getfixturevalue("clickhouse_url")
    settings = Settings.model_validate({**values, "clickhouse_url": url})
    prepare_database(settings)
    try:
        yield settings
    finally:
        import clickhouse_connect

        client = clickhouse_connect.get_client(dsn=url)
        client.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        client.close()
