"""`barometre rebuild` on the real Kafka and ClickHouse engine: a live worker scores a realistic mix
(the 2012-2013 panel, its first months arriving late and in reverse order, daily Instagram figures with
scores, late same-day replacements, duplicates, invalid records); rebuilt from the topic, every scoring
table has the same content as live processing left; the rebuild refuses to run beside a live worker,
restores rows lost from a table, and leaves out an account the processor fails on, as the worker does."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.structs import TopicPartition

from services.common.clickhouse import make_client
from services.common.events import AccountSnapshot
from services.common.names import Category, Topic
from services.common.settings import Settings
from services.ingest.wait import wait_until_consumed
from services.scoring import rebuild as rebuild_module
from services.scoring.processor import Processor
from services.scoring.rebuild import active_members, run_rebuild
from tests.integration.scoring.test_barometer_2012 import (
    MONTHS,
    Instance,
    Member,
    panel_members,
    snapshot_lines,
)

PORT = 18720  # scoring ports 18720-18739 belong to this module
DAY0 = datetime(2013, 3, 1, 9, tzinfo=UTC)


def instagram_lines(cities: list[Member], days: range) -> list[str]:
    """Daily Instagram figures with every score component, so daily and latest scores are not null."""
    lines = []
    for m in cities:
        slug = m.entity.entity_id.lower().replace(":", "-")
        for d in days:
            lines.append(json.dumps({
                "account_id": f"instagram:{slug}", "platform": "instagram", "entity_id": m.entity.entity_id,
                "handle": slug, "observed_at": (DAY0 + timedelta(days=d)).isoformat(),
                "followers": 2000 + 13 * m.index + (5 + m.index % 7) * d, "posts_30d": 4 + (m.index + d) % 15,
                "interactions_30d": 40 * (1 + m.index % 5) + d, "replies_30d": (m.index + d) % 6,
                "automated_posts_30d": m.index % 3, "status": "active", "source": "import",
            }))  # fmt: skip
    return lines


def month_of(line: str) -> int:
    observed = datetime.fromisoformat(json.loads(line)["observed_at"])
    return max(k for k, m in enumerate(MONTHS) if m <= observed)


def entity_latest(inst: Instance) -> list[tuple[Any, ...]]:
    ch = make_client(inst.settings)
    db = inst.settings.clickhouse_database
    rows = ch.query(f"SELECT * EXCEPT version FROM {db}.entity_latest FINAL ORDER BY platform, entity_id")
    ch.close()
    return rows.result_rows


def content(inst: Instance) -> dict[str, list[tuple[Any, ...]]]:
    """Every scoring table's content, version columns left out."""
    return {**inst.tables(), "entity_latest": entity_latest(inst)}


def leftovers(inst: Instance) -> list[str]:
    ch = make_client(inst.settings)
    names = ch.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND name LIKE '%\\_\\_%'",
        parameters={"db": inst.settings.clickhouse_database},
    ).result_rows
    ch.close()
    return [n for (n,) in names]


def rebuild(inst: Instance, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "rebuild", *args],
        env=inst.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def wait_group_empty(inst: Instance, timeout: float = 30.0) -> None:
    admin = KafkaAdminClient(bootstrap_servers=inst.settings.kafka_bootstrap.split(","))
    try:
        deadline = time.monotonic() + timeout
        while active_members(admin, inst.settings.scoring_group()):
            assert time.monotonic() < deadline, "the stopped worker is still a member of its group"
            time.sleep(0.5)
    finally:
        admin.close()


def end_offsets(settings: Settings) -> dict[int, int]:
    topic = settings.topic(Topic.ACCOUNT_SNAPSHOTS)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap.split(","))
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


@pytest.fixture
def instance(app_settings: Settings, tmp_path: Path) -> Iterator[Instance]:
    inst = Instance(app_settings, tmp_path / "i", PORT)
    inst.settings.data_dir.mkdir(parents=True)
    yield inst
    inst.stop()


@pytest.mark.kafka
@pytest.mark.clickhouse
@pytest.mark.slow
def test_rebuild_equals_live_processing(
    instance: Instance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = panel_members()
    panel = snapshot_lines(members)
    cities = members[Category.COMMUNE][:30]
    daily = instagram_lines(cities, range(60))
    # 1. The panel from its sixth month (August 2012) on, daily Instagram figures from March 2013, and
    #    one line twice in the file.
    recent = [line for line in panel if month_of(line) >= 5]
    first = [*recent, *daily, recent[7]]
    # 2. Late: the panel's first five months in reverse order (some older than the worker's horizon),
    #    and a later snapshot of each Instagram account's last day, which replaces that day's point.
    late = [line for line in reversed(panel) if month_of(line) < 5]
    for line in instagram_lines(cities, range(59, 60)):
        event = json.loads(line)
        event["observed_at"] = (datetime.fromisoformat(event["observed_at"]) + timedelta(hours=8)).isoformat()
        event["followers"] += 3
        late.append(json.dumps(event))
    # 3. The same events again.
    again = first[:400]

    instance.register(members)
    instance.start_worker()
    for name, lines in (("first", first), ("late", late)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        instance.import_wait(path)
    # Records that only a direct producer can put on the topic: the worker dead-letters them.
    topic = instance.settings.topic(Topic.ACCOUNT_SNAPSHOTS)
    producer = KafkaProducer(bootstrap_servers=instance.settings.kafka_bootstrap.split(","))
    producer.send(topic, key=b"facebook:bogus", value=b"{not json")
    producer.send(topic, key=b"x:someone-else", value=first[0].encode())  # key is not its account_id
    producer.flush()
    producer.close()
    path = tmp_path / "again.jsonl"
    path.write_text("\n".join(again) + "\n")
    instance.import_wait(path)
    wait_until_consumed(instance.settings, end_offsets(instance.settings), timeout=60)

    # Refused beside a live worker, and nothing is left behind.
    refused = rebuild(instance)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "stop the scoring worker first (or pass --force)" in refused.stderr
    assert leftovers(instance) == []

    instance.stop()
    wait_group_empty(instance)
    live = content(instance)
    assert live["snapshot_rows"] == [(len(panel) + len(daily) + len(cities),)]
    assert any(row[12] is not None for row in live["account_daily"])  # scores were computed
    assert len(live["entity_latest"]) > 0

    done = rebuild(instance)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 invalid and 0 unscorable skipped" in done.stdout, done.stdout
    assert "EXCHANGE TABLES" in done.stdout
    print(done.stderr + done.stdout)  # the progress lines and the throughput, for the record
    assert content(instance) == live
    assert leftovers(instance) == []

    # Damage: rows lost from account_latest. A rebuild restores them; this one runs over the whole
    # topic in two processes and small batches, so the late months arrive after their accounts' later
    # points, as they did live (the points older than the horizon take the path that reads history).
    ch = make_client(instance.settings)
    db = instance.settings.clickhouse_database
    ch.command(f"DELETE FROM {db}.account_latest WHERE platform = 'facebook'")
    ch.close()
    assert content(instance)["account_latest"] != live["account_latest"]
    lines: list[str] = []
    monkeypatch.setattr(rebuild_module, "RECORDS_PER_JOB", 1)  # two processes even for a few records
    result = run_rebuild(instance.settings, to_end=True, jobs=2, batch_size=500, report=lines.append)
    assert result.jobs == 2
    assert (result.events, result.invalid, result.unscorable) == (len(first) + len(late) + len(again), 2, 0)
    assert content(instance) == live
    assert leftovers(instance) == []

    # An account the processor fails on is left out, with its events counted, as the worker
    # dead-letters them; the others are rebuilt all the same.
    poison = json.loads(first[0])["account_id"]
    process = Processor.process

    def failing(self: Processor, snapshots: Any, states: Any) -> Any:
        snapshots = list(snapshots)
        if any(s.account_id == poison for s in snapshots):
            raise ValueError("a bug")
        return process(self, snapshots, states)

    monkeypatch.setattr(Processor, "process", failing)
    result = run_rebuild(instance.settings, jobs=1, report=lines.append)
    events_of_poison = [x for x in (*first, *late, *again) if json.loads(x)["account_id"] == poison]
    assert result.unscorable == len(events_of_poison)
    rebuilt = content(instance)["account_latest"]
    assert rebuilt == [row for row in live["account_latest"] if row[1] != poison]


def test_daily_scores_do_not_depend_on_batch_boundaries() -> None:
    def snap(day: int, followers: int) -> AccountSnapshot:
        return AccountSnapshot.model_validate({
            "account_id": "facebook:a", "platform": "facebook", "entity_id": "COM:38185",
            "observed_at": (DAY0 + timedelta(days=day)).isoformat(), "followers": followers,
            "posts_30d": 12, "interactions_30d": 50, "replies_30d": 3,
        })  # fmt: skip

    def scores(batches: list[list[AccountSnapshot]]) -> dict[object, object]:
        processor = Processor(Settings(), fetch_history=lambda ids: {})
        states: dict[bytes, bytes | None] = {}
        out: dict[object, object] = {}
        for batch in batches:
            result = processor.process(batch, states)
            states.update(result.states)
            out.update({row[1]: row[12] for row in result.tables["account_daily"].rows})
        return out

    events = [snap(1, 1000), snap(40, 1010), snap(5, 1005)]  # the day-5 point arrives last
    assert scores([events]) == scores([events[:2], events[2:]])
