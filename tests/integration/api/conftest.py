"""Fixtures of the api tests: a database seeded through the real scoring Processor and sink
(tests/integration/api/seed.py), and a TestClient of the api application on it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.common.settings import Settings
from tests.integration.api.seed import Seeded, seed


@pytest.fixture
def seeded(app_settings: Settings) -> Seeded:
    return seed(app_settings, datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def api(seeded: Seeded) -> Iterator[TestClient]:
    with TestClient(create_app(seeded.settings)) as client:
        yield client
