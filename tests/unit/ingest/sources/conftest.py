"""Fixtures of the poller tests: the local platform (``server``) and the fake clock (``time``)."""

from __future__ import annotations

import pytest

from tests.fixtures.replay import FakeTime, LocalService


@pytest.fixture
def server(local_service: LocalService) -> LocalService:
    return local_service


@pytest.fixture
def time(fake_time: FakeTime) -> FakeTime:
    return fake_time
