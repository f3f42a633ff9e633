"""Alerts through a real scoring worker, on a real broker and ClickHouse: a live drop after weeks of
daily history is written to ``alerts`` and published once on ``alerts.v1`` as a valid Alert v1, and
stays published once through a replay of its snapshots, a restart of the worker and a redelivered
candidate; a silence in ClickHouse mutes an account; imported history raises nothing; an account gone
silent is found by the periodic check; many accounts of one platform dropping at once make one
incident (``incidents``, ``incidents.v1``) and no per-account alert on ``alerts.v1``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from jsonschema import Draft202012Validator
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from services.common.clickhouse import make_client
from services.common.events import Alert
from services.common.names import Topic
from services.common.settings import REPO_ROOT, Settings
from tests.integration.scoring.test_dead_letters import Producer, Sent, Worker, end_offsets

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.slow]

PORT = 18781  # test_alert_outage.py has 18782
GROUP_WAIT_S = 3
T = TypeVar("T")


def worker_of(settings: Settings) -> Worker:
    worker = Worker(settings)
    worker.env["BAROMETRE_ALERT_GROUP_WAIT_S"] = str(GROUP_WAIT_S)
    worker.env["BAROMETRE_ALERT_SILENCE_CHECK_S"] = "2"
    return worker


@pytest.fixture
def settings(app_settings: Settings, tmp_path: Path) -> Settings:
    return app_settings.model_copy(update={"scoring_port": PORT, "data_dir": tmp_path})


@pytest.fixture
def worker(settings: Settings) -> Iterator[Worker]:
    w = worker_of(settings)
    w.start()
    try:
        yield w
    finally:
        w.stop()


NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def record(account_id: str, days_ago: int, followers: int) -> tuple[bytes | None, bytes | None]:
    observed = NOW - timedelta(days=days_ago)
    value = {
        "account_id": account_id,
        "platform": account_id.partition(":")[0],
        "entity_id": "COM:38185",
        "observed_at": observed.isoformat().replace("+00:00", "Z"),
        "followers": followers,
    }
    return account_id.encode(), json.dumps(value).encode()


def history(account_id: str, days: range, start: int = 5000) -> list[tuple[bytes | None, bytes | None]]:
    """Daily points growing by about 10 a day, with a little deterministic noise."""
    return [record(account_id, k, start + 10 * (200 - k) + (k * 7919) % 7 - 3) for k in days]


def followers_on(account_id: str, days_ago: int, start: int = 5000) -> int:
    return start + 10 * (200 - days_ago) + (days_ago * 7919) % 7 - 3


def read_topic(settings: Settings, topic: Topic) -> list[tuple[bytes | None, bytes]]:
    """Every record of ``topic`` now (key, value), read to its current end."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap.split(","), enable_auto_commit=False)
    try:
        name = settings.topic(topic)
        partitions = [TopicPartition(name, p) for p in range(settings.kafka_partitions)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        out: list[tuple[bytes | None, bytes]] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, f"{name} could not be read to its end"
            for records in consumer.poll(timeout_ms=500).values():
                out.extend((r.key, r.value) for r in records)
        return out
    finally:
        consumer.close()


def eventually(probe: Callable[[], T | None], what: str, worker: Worker, timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{worker.log_tail()}")
        time.sleep(0.5)


def alert_schema() -> Draft202012Validator:
    schema = json.loads((REPO_ROOT / "schemas/events/alert.v1.json").read_text())
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def alerts_on_topic(settings: Settings) -> list[tuple[bytes | None, dict[str, Any]]]:
    return [(key, json.loads(value)) for key, value in read_topic(settings, Topic.ALERTS)]


def send(worker: Worker, producer: Producer, records: list[tuple[bytes | None, bytes | None]]) -> list[Sent]:
    sent = producer.send(records)
    worker.wait(end_offsets(sent))
    return sent


def test_a_live_drop_is_published_once_silences_and_history_raise_nothing(
    settings: Settings, worker: Worker
) -> None:
    db = settings.clickhouse_database
    ch = make_client(settings)
    # A silence of one account, made before its drop (the API's store; the worker reloads it).
    ch.command(
        f"INSERT INTO {db}.silences (silence_id, starts_at, ends_at, account_id, created_by, comment, "
        "created_at, version) VALUES ('s-muted', now64(3) - INTERVAL 1 DAY, now64(3) + INTERVAL 1 DAY, "
        "'x:muted', 'test', 'maintenance', now64(3), 1)"
    )
    producer = Producer(settings)
    # 40 days of daily history each; x:old is an import of last winter (a drop 80 days ago), x:quiet
    # stopped being seen 46 days ago.
    send(
        worker,
        producer,
        [
            *history("x:drop", range(40, 0, -1)),
            *history("x:muted", range(40, 0, -1)),
            *history("x:old", range(120, 80, -1)),
            record("x:old", 80, followers_on("x:old", 81) - 900),
            *history("x:old", range(79, 60, -1)),
            *history("x:quiet", range(100, 45, -1)),
        ],
    )
    # Today: x:drop and x:muted lose 14 % of their followers.
    today = [record("x:drop", 0, followers_on("x:drop", 1) - 1000), record("x:muted", 0, 6000)]
    send(worker, producer, today)

    def stored() -> dict[str, tuple[Any, ...]]:
        rows = ch.query(
            f"SELECT account_id, alert_id, type, value, expected, score, severity, details, inhibited_by, "
            f"observed_at FROM {db}.alerts FINAL"
        ).result_rows
        by_account = {row[0]: tuple(row) for row in rows}
        return by_account if {"x:drop", "x:quiet"} <= by_account.keys() else {}

    rows = eventually(stored, "the drop and the silent account in ClickHouse alerts", worker)
    assert set(rows) == {"x:drop", "x:quiet"}, rows  # not x:muted (silenced), not x:old (history)
    _, alert_id, alert_type, value, expected, score, severity, details, inhibited_by, _ = rows["x:drop"]
    assert (alert_type, value, severity, inhibited_by) == (
        "audience_drop",
        followers_on("x:drop", 1) - 1000,
        "critical",
        None,
    )
    assert expected > value and score >= 7
    explanation = json.loads(details)
    assert explanation["change"] == -1000 and explanation["baseline_intervals"] >= 8
    quiet = rows["x:quiet"]
    assert quiet[2] == "account_gone" and json.loads(quiet[7])["reason"] == "silent"

    published = eventually(
        lambda: (
            [a for a in alerts_on_topic(settings) if a[1]["account_id"] in ("x:drop", "x:quiet")]
            if len(alerts_on_topic(settings)) >= 2
            else None
        ),
        "two alerts on alerts.v1",
        worker,
    )
    validator = alert_schema()
    by_account = {}
    for key, alert in published:
        validator.validate(alert)
        Alert.model_validate(alert)
        assert key == alert["account_id"].encode()
        by_account[alert["account_id"]] = alert
    assert len(published) == 2 == len(by_account)
    drop = by_account["x:drop"]
    assert drop["alert_id"] == alert_id and drop["status"] == "open" and drop["entity_id"] == "COM:38185"
    assert drop["observed_at"] == (NOW.isoformat().replace("+00:00", "Z"))
    assert worker.metric("barometre_alert_outcomes_total", verdict="silenced") == 1
    assert worker.metric("barometre_alerts_published_total", severity="critical", type="audience_drop") == 1
    # Imported history raised nothing at all, not even a candidate.
    candidates = read_topic(settings, Topic.ALERT_CANDIDATES)
    assert not [v for _, v in candidates if b'"x:old"' in v]
    drop_candidate = next(v for _, v in candidates if b'"x:drop"' in v)

    # Replaying the same snapshots publishes nothing new.
    send(worker, producer, today)
    # A restart recovers the stage's state: a redelivered candidate is a duplicate, not a new alert,
    # and the silent account found again by the new worker's periodic check is one too.
    worker.stop()
    restarted = worker_of(settings)
    restarted.start()
    try:
        candidate_producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap.split(","), acks="all")
        candidate_producer.send(settings.topic(Topic.ALERT_CANDIDATES), key=b"x", value=drop_candidate).get(
            30
        )
        candidate_producer.close()
        eventually(
            lambda: restarted.metric("barometre_alert_outcomes_total", verdict="duplicate") >= 2,
            "the redelivered candidate and the silent account judged duplicates",
            restarted,
        )
        time.sleep(GROUP_WAIT_S + 1)
        assert len(alerts_on_topic(settings)) == 2
        assert (
            restarted.metric("barometre_alerts_published_total", severity="critical", type="audience_drop")
            == 0
        )
        assert restarted.alive() and restarted.get("/readyz").status_code == 200
    finally:
        restarted.stop()
        producer.close()
        ch.close()


def test_many_accounts_of_a_platform_dropping_at_once_are_one_incident(
    settings: Settings, worker: Worker
) -> None:
    db = settings.clickhouse_database
    producer = Producer(settings)
    accounts = [f"facebook:page{i}" for i in range(12)]
    send(worker, producer, [r for a in accounts for r in history(a, range(40, 0, -1))])
    send(worker, producer, [record(a, 0, followers_on(a, 1) - 600) for a in accounts])

    ch = make_client(settings)

    def incident() -> tuple[Any, ...] | None:
        rows = ch.query(
            f"SELECT incident_id, type, platform, accounts, members, status, severity FROM {db}.incidents FINAL"
        ).result_rows
        inhibited = ch.query(
            f"SELECT count() FROM {db}.alerts FINAL WHERE inhibited_by IS NOT NULL"
        ).result_rows[0][0]
        whole = len(rows) == 1 and rows[0][3] == len(accounts) and inhibited == len(accounts)
        return tuple(rows[0]) if whole else None

    incident_id, alert_type, platform, _, members, status, _ = eventually(
        incident, "one incident of 12 accounts, each inhibited", worker
    )
    assert (alert_type, platform, sorted(members)) == ("audience_drop", "facebook", sorted(accounts))
    assert status == "open"
    rows = ch.query(f"SELECT account_id, inhibited_by FROM {db}.alerts FINAL").result_rows
    assert sorted(tuple(r) for r in rows) == sorted((a, incident_id) for a in accounts)

    records = read_topic(settings, Topic.INCIDENTS)
    assert records and {key for key, _ in records} == {b"facebook"}
    latest = json.loads(records[-1][1])
    assert latest["incident_id"] == incident_id and latest["accounts"] == len(accounts)
    assert latest["type"] == "audience_drop" and latest["first_observed_at"].endswith("Z")
    # Held for the group wait, then inhibited: no per-account alert was published.
    time.sleep(GROUP_WAIT_S + 1)
    assert alerts_on_topic(settings) == []
    assert worker.metric("barometre_alert_incidents_opened_total", type="audience_drop") == 1
    assert worker.metric("barometre_alert_outcomes_total", verdict="inhibited") == len(accounts)
    producer.close()
    ch.close()
