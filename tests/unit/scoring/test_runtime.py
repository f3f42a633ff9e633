"""The scoring worker's runtime without Faust, Kafka or ClickHouse: what its agents, timers and pages do.

The Faust app (``services.scoring.app``) only declares them; here they run on plain objects: sends that
wait for every acknowledgement and send again only what failed, batches held back out of every commit
when given up, a bug retried in place while ``/readyz`` says so, silence checks that skip accounts just
fed and follow the event clock through a backlog, and timers that survive their failures.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.common.names import DeadLetterCode
from services.common.retry import Health, Retrying
from services.common.settings import Settings
from services.scoring import pages
from services.scoring.alerts.noise import Candidate
from services.scoring.alerts.store import StoreStopped
from services.scoring.pipeline import Batch
from services.scoring.processor import BatchOutput, wall_ms
from services.scoring.runtime import BatchGuard, EventClock, ScoringRuntime, SilenceWatch, Topics
from services.scoring.sending import send_acked
from services.scoring.sink import SinkStopped

DAY_MS = 86_400_000


class Topic:
    """A topic as Faust's: ``send`` queues a record and returns a future resolved on acknowledgement.
    ``refuse`` lists values refused once each."""

    def __init__(self, name: str = "t", refuse: Sequence[bytes] = ()) -> None:
        self.name, self.refuse = name, list(refuse)
        self.acked: list[tuple[bytes | None, bytes]] = []
        self.attempts = 0

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, *, key: Any = None, value: Any = None) -> asyncio.Future[None]:
        self.attempts += 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if value in self.refuse:
            self.refuse.remove(value)
            future.set_exception(ConnectionError("not enough replicas"))
        else:
            self.acked.append((key, value))
            future.set_result(None)
        return future


class StatesTable(dict[bytes, bytes]):
    """The account-state table as the runtime reads it (its local store is ``data``)."""

    @property
    def data(self) -> dict[bytes, bytes]:
        return self


class Place:
    """The Faust app as the runtime asks it (services.scoring.app.FaustPlace)."""

    def __init__(self) -> None:
        self.is_ready = True
        self.flushed = 0

    def ready(self) -> bool:
        return self.is_ready

    def local_keys(self, table: Any, topic: Any) -> list[bytes]:
        return list(table.keys())

    async def flush(self) -> None:
        self.flushed += 1

    async def lags(self, topic: Any) -> list[tuple[str, int, int]]:
        return [(topic.get_topic_name(), 3, 42)]


def events(*values: bytes, partition: int = 0) -> list[Any]:
    """Faust events of the snapshots topic (what ``take_events`` gives an agent)."""
    return [
        SimpleNamespace(
            message=SimpleNamespace(
                topic="account-snapshots.v1",
                partition=partition,
                offset=offset,
                key=b"bluesky:a",
                value=value,
                timestamp=1.7e9,
                acked=False,
            )
        )
        for offset, value in enumerate(values)
    ]


def runtime() -> tuple[ScoringRuntime, Topics, Place]:
    topics = Topics(
        Topic("account-snapshots.v1"), Topic("dlq"), Topic("candidates"), Topic("alerts"), Topic("inc")
    )
    place = Place()
    run = ScoringRuntime(
        Settings(), group="g", states=StatesTable(), noise_states={}, topics=topics, place=place
    )
    return run, topics, place


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- Sending, acknowledged


def test_send_acked_returns_once_every_record_is_acknowledged_sending_again_only_the_refused() -> None:
    topic, health = Topic(refuse=[b"2"]), Health()
    records = [(b"k", b"1"), (b"k", b"2"), (b"k", b"3")]
    asyncio.run(send_acked(topic, records, "Things", health))
    assert sorted(topic.acked) == sorted(records)
    assert topic.attempts == 4  # three, then the refused one alone
    assert Retrying.KAFKA_SENDS not in health


# --- Batches: retried in place, or held back out of every commit


def test_a_batch_given_up_on_a_shutdown_is_held_back_and_the_agent_goes_on() -> None:
    taken = events(b"a", b"b")

    async def batch(events: Sequence[Any]) -> None:
        raise SinkStopped("ClickHouse down and the worker stopping")

    asyncio.run(BatchGuard(Health()).handle(taken, batch))
    assert all(e.message.acked for e in taken)  # marked: take_events' acks become no-ops


def test_a_cancelled_batch_is_held_back_and_stays_cancelled() -> None:
    taken = events(b"a")

    async def batch(events: Sequence[Any]) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(BatchGuard(Health()).handle(taken, batch))
    assert taken[0].message.acked


def test_a_bug_is_retried_in_place_and_readiness_says_so_meanwhile() -> None:
    health, taken, seen = Health(), events(b"a"), []

    async def batch(events: Sequence[Any]) -> None:
        seen.append(pages.readiness(health, recovering=False))
        if len(seen) == 1:
            raise ValueError("a bug of ours")

    asyncio.run(BatchGuard(health).handle(taken, batch))
    (body, status) = seen[1]  # during the second try
    assert status == 503 and body["checks"]["batches"] == "a batch keeps failing, retrying"
    assert pages.readiness(health, recovering=False) == (
        {
            "status": "ready",
            "service": "scoring",
            "checks": {"clickhouse": "ok", "kafka": "ok", "state": "ok", "batches": "ok", "alerts": "ok"},
        },
        200,
    )
    assert not taken[0].message.acked  # went through: its offsets may be committed


def test_readiness_waits_for_the_tables_recovery() -> None:
    body, status = pages.readiness(Health(), recovering=True)
    assert status == 503 and body["status"] == "not_ready" and body["checks"]["state"] == "recovering"


# --- The snapshots agent's batch through the runtime


def test_invalid_snapshots_become_dead_letters_and_the_batch_goes_through() -> None:
    run, topics, _ = runtime()
    before = sample("barometre_scoring_events_total", outcome="dead_letter")
    taken = events(b"not json", b'{"account_id": 1}')
    asyncio.run(run.handle_snapshots(taken))
    letters = [json.loads(value) for _, value in topics.dead_letters.acked]  # type: ignore[attr-defined]
    assert len(letters) == 2
    assert {letter["error"]["code"] for letter in letters} <= {c.value for c in DeadLetterCode}
    assert all(letter["consumer_group"] == "g" for letter in letters)
    assert sample("barometre_scoring_events_total", outcome="dead_letter") == before + 2
    assert not any(e.message.acked for e in taken)  # not held back: committed once Faust acks them
    assert Retrying.BATCHES not in run.health


# --- Silent accounts


def watch(
    found: list[Candidate] | None = None, every_ms: int = DAY_MS
) -> tuple[SilenceWatch, dict[str, Any]]:
    states = {b"bluesky:a": b"state a", b"bluesky:b": b"state b"}
    seen: dict[str, Any] = {"held": None, "sent": [], "ready": True}

    def find(held: list[tuple[bytes, bytes]], now: int) -> list[Candidate]:
        seen["held"], seen["now"] = held, now
        return found or []

    async def send(candidates: Sequence[Candidate]) -> None:
        seen["sent"].append(list(candidates))

    silence = SilenceWatch(
        keys=lambda: list(states),
        get=states.get,
        find=find,
        send=send,
        ready=lambda: bool(seen["ready"]),
        clock=EventClock(idle_s=60),
        every_ms=every_ms,
    )
    return silence, seen


def fed(*keys: bytes, received: int = 0) -> Batch:
    batch = Batch(records=[])
    batch.received = {"e": received} if received else {}
    batch.out = BatchOutput(tables={}, after=[], states=dict.fromkeys(keys, b"new"), candidates=[])
    return batch


def test_accounts_fed_since_the_last_check_are_not_looked_at_once() -> None:
    silence, seen = watch(found=[SimpleNamespace(account_id="bluesky:b")])  # type: ignore[list-item]
    silence.processed(fed(b"bluesky:a"))
    asyncio.run(silence.check())
    assert seen["held"] == [(b"bluesky:b", b"state b")]
    assert len(seen["sent"]) == 1
    asyncio.run(silence.check())  # fed before the last check only: looked at again
    assert [key for key, _ in seen["held"]] == [b"bluesky:a", b"bluesky:b"]


def test_nothing_is_looked_for_while_the_worker_rebalances() -> None:
    silence, seen = watch()
    seen["ready"] = False
    asyncio.run(silence.check())
    assert seen["held"] is None


def test_a_backlog_starts_a_check_each_day_of_receipt_time_judged_as_of_then() -> None:
    silence, seen = watch()
    month_ago = wall_ms() - 30 * DAY_MS

    async def catch_up() -> list[int]:
        started = []
        for hour in range(0, 49, 6):  # two days of backlog, a batch each 6 hours of receipt time
            silence.classified(fed(received=month_ago + hour * 3_600_000))
            started.append(len(silence.background))
            await asyncio.gather(*silence.background)
        return started

    started = asyncio.run(catch_up())
    assert started == [1, 0, 0, 0, 1, 0, 0, 0, 1]  # the first batch, then one a day
    assert seen["now"] == month_ago + 48 * 3_600_000  # the receipt time, not the wall clock


# --- Timers


def test_releasing_held_detections_waits_for_a_rebalance_and_survives_failures(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _, place = runtime()
    released: list[list[str]] = []

    async def release(platforms: list[str]) -> bool:
        released.append(platforms)
        if len(released) == 2:
            raise StoreStopped("stopping")
        if len(released) == 3:
            raise ValueError("a bug of ours")
        return True

    monkeypatch.setattr(run.stage, "release", release)
    run.noise_states[b"bluesky"] = b"control"
    place.is_ready = False
    asyncio.run(run.release_held())
    assert released == []
    place.is_ready = True
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            asyncio.run(run.release_held())  # none raises: a crashed timer would stop the worker
    assert released == [["bluesky"]] * 3
    assert place.flushed == 1  # after the one that changed something: states on their changelog
    assert "held alert detections undelivered" in caplog.text
    assert "Releasing held alert detections failed" in caplog.text


def test_the_lag_timer_sets_the_gauge_per_partition() -> None:
    run, _, _ = runtime()
    asyncio.run(run.report_lag())
    assert sample("barometre_scoring_consumer_lag", topic="account-snapshots.v1", partition="3") == 42


def test_stopping_gives_up_the_clickhouse_retries() -> None:
    run, _, _ = runtime()
    run.stop()
    with pytest.raises(SinkStopped):
        asyncio.run(run.reads.acall(lambda: asyncio.to_thread(_unreachable)))


def _unreachable() -> None:
    raise ConnectionError("ClickHouse is down")
