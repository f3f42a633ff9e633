"""The alert stage without Faust, Kafka or ClickHouse: it reads the silences and the platforms' sizes
before its first decision, then for each platform writes the rows, publishes, and only then stores the
control's state; a step that fails half-way leaves the stored state as it was, and the next try starts
from it (the alert is published again, same id: at least once)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from services.common.retry import Health, Retry, Retrying
from services.scoring.alerts.codec import encode_candidate, load_control
from services.scoring.alerts.noise import Candidate, NoiseParams
from services.scoring.alerts.stage import AlertStage
from tests.unit.scoring.test_alert_codec import DROP


class Table(dict[bytes, bytes]):
    def __init__(self, calls: list[str]) -> None:
        super().__init__()
        self.calls = calls

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.calls.append(f"store {key.decode()}")
        super().__setitem__(key, value)


class Store:
    """What the stage asks of its ClickHouse clients (services.scoring.alerts.store.AlertStore)."""

    def __init__(self, calls: list[str], health: Health) -> None:
        self.calls, self.health = calls, health
        self.rows: list[Any] = []

    def retry(self, name: str, key: Retrying, detail: str, **kwargs: Any) -> Retry:
        return Retry(name, self.health, key, detail, first_s=0.001, **kwargs)

    def write(self, tables: Mapping[Any, tuple[Sequence[str], Sequence[Sequence[object]]]]) -> None:
        self.calls.append("write")
        for _, rows in tables.values():
            self.rows.extend(rows)

    def silences(self, now_ms: int) -> list[Any]:
        self.calls.append("silences")
        return []

    def active_accounts(self, staleness_days: int) -> dict[str, int]:
        self.calls.append("active")
        return {"x": 1000}

    def watched_since(self) -> dict[str, int]:
        return {"x": 0}

    def drop_client(self) -> None:
        pass


class World:
    def __init__(self, fail_sends: int = 0) -> None:
        self.calls: list[str] = []
        self.fail_sends = fail_sends
        self.published: list[tuple[bytes | None, bytes]] = []
        health = Health()
        self.table = Table(self.calls)
        self.stage = AlertStage(
            table=self.table,
            params=NoiseParams(group_wait_ms=0),
            writer=Store(self.calls, health),  # type: ignore[arg-type]
            reader=Store(self.calls, health),  # type: ignore[arg-type]
            send_alerts=self.send,
            send_incidents=self.send,
            watched_since=lambda since: None,
            staleness_days=45,
            health=health,
        )

    async def send(self, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        self.calls.append("publish")
        if self.fail_sends:
            self.fail_sends -= 1
            raise ConnectionError("Kafka is down")
        self.published.extend(records)

    def handle(self, *values: bytes) -> None:
        asyncio.run(self.stage.handle((f"candidates[0]@{i}", v) for i, v in enumerate(values)))


DETECTION = encode_candidate(Candidate("x:grenoble", "COM:38185", DROP))


def test_rows_then_alerts_then_the_state_and_the_unreadable_skipped() -> None:
    world = World()
    world.handle(DETECTION, b"{not a candidate")
    assert world.calls == ["silences", "active", "write", "publish", "store x"]
    assert len(world.published) == 1 and world.published[0][0] == b"x:grenoble"
    assert load_control(world.table[b"x"], NoiseParams(group_wait_ms=0)).pending == 0


def test_the_same_detection_again_is_a_duplicate_and_publishes_nothing() -> None:
    world = World()
    world.handle(DETECTION)
    world.calls.clear()
    world.handle(DETECTION)
    assert "publish" not in world.calls and len(world.published) == 1


def test_a_step_failing_half_way_leaves_the_stored_state_and_is_decided_again() -> None:
    world = World(fail_sends=1)
    with pytest.raises(ConnectionError):
        world.handle(DETECTION)
    assert world.calls == ["silences", "active", "write", "publish"]  # nothing stored
    assert b"x" not in world.table
    world.handle(DETECTION)  # the batch again, after the retry
    assert len(world.published) == 1 and world.calls[-1] == "store x"


def test_nothing_is_released_before_the_silences_are_known() -> None:
    world = World()
    assert asyncio.run(world.stage.release(["x"])) is False
    assert world.calls == []
