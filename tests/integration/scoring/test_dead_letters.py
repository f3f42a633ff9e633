"""Bad records written to the snapshots topic by another client (not ingest, which refuses them at the
edge) reach a real scoring worker: each lands on ``account-snapshots.dlq`` with its code, its original
partition, offset, key and value and a reason, acknowledged before the batch's offsets are committed;
the good events of the same batches are scored, and the worker goes on with new events."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from services.common.clickhouse import make_client
from services.common.events import DeadLetter
from services.common.names import DeadLetterCode, Topic
from services.common.settings import Settings
from services.ingest.wait import wait_until_consumed

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

PORT = 18740


class Worker:
    """A scoring worker subprocess (``python -m services.scoring``) on ``settings``."""

    def __init__(self, settings: Settings, argv: list[str] | None = None) -> None:
        self.settings = settings
        self.argv = argv or ["-m", "services.scoring"]
        self.log_path = settings.data_dir / "scoring.log"
        s = settings
        self.env = {
            **os.environ,
            "BAROMETRE_CLICKHOUSE_URL": s.clickhouse_url,
            "BAROMETRE_CLICKHOUSE_DATABASE": s.clickhouse_database,
            "BAROMETRE_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
            "BAROMETRE_KAFKA_TOPIC_PREFIX": s.kafka_topic_prefix,
            "BAROMETRE_KAFKA_PARTITIONS": str(s.kafka_partitions),
            "BAROMETRE_SCORING_PORT": str(s.scoring_port),
            "BAROMETRE_DATA_DIR": str(s.data_dir),
            "BAROMETRE_LOG_LEVEL": "WARNING",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.scoring_host}:{self.settings.scoring_port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start it and wait until its web server answers (it consumes from the start of the topic)."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, *self.argv], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.alive(), "the worker exited at start:\n" + self.log_tail()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("the worker did not answer:\n" + self.log_tail())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=5)

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample of the worker's /metrics (0 when absent)."""
        wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
        pattern = re.compile(rf"^{re.escape(name)}(?:\{{{re.escape(wanted)}\}})? (\S+)$", re.MULTILINE)
        found = pattern.search(self.get("/metrics").text)
        return float(found.group(1)) if found else 0.0

    def wait(self, end_offsets: dict[int, int], timeout: float = 60.0) -> None:
        """What ``import --wait`` does: return once the worker committed ``end_offsets``."""
        try:
            wait_until_consumed(self.settings, end_offsets, timeout=timeout, poll_s=0.2)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from exc

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@dataclass(frozen=True)
class Sent:
    """A record as the broker acknowledged it."""

    key: bytes | None
    value: bytes | None
    partition: int
    offset: int


class Producer:
    """Another client: a raw kafka-python producer that writes whatever it is given to the snapshots topic."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic(Topic.ACCOUNT_SNAPSHOTS)
        self._producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap.split(","), acks="all")

    def send(self, records: list[tuple[bytes | None, bytes | None]]) -> list[Sent]:
        futures = [self._producer.send(self.topic, key=key, value=value) for key, value in records]
        self._producer.flush(30)
        out = []
        for (key, value), future in zip(records, futures, strict=True):
            meta = future.get(timeout=30)
            out.append(Sent(key, value, meta.partition, meta.offset))
        return out

    def close(self) -> None:
        self._producer.close(10)


def end_offsets(sent: list[Sent]) -> dict[int, int]:
    """Per partition, the offset after the last record sent there (what the worker must commit)."""
    ends: dict[int, int] = {}
    for record in sent:
        ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
    return ends


def snapshot(account_id: str, day: int, followers: int, **fields: Any) -> bytes:
    return json.dumps(
        {
            "account_id": account_id,
            "platform": account_id.partition(":")[0],
            "entity_id": "COM:38185",
            "observed_at": f"2024-05-{day:02d}T09:00:00Z",
            "followers": followers,
            **fields,
        }
    ).encode()


def good_records(prefix: str, accounts: int, days: int) -> list[tuple[bytes | None, bytes | None]]:
    return [
        (f"x:{prefix}{i}".encode(), snapshot(f"x:{prefix}{i}", day, 1000 + 10 * i + day))
        for day in range(1, days + 1)
        for i in range(accounts)
    ]


def read_dead_letters(settings: Settings) -> list[tuple[bytes | None, DeadLetter]]:
    """Every record on the dead-letter topic now (key, parsed envelope), read to its current end."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap.split(","), enable_auto_commit=False)
    try:
        topic = settings.topic(Topic.ACCOUNT_SNAPSHOTS_DLQ)
        partitions = [TopicPartition(topic, p) for p in range(settings.kafka_partitions)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        out: list[tuple[bytes | None, DeadLetter]] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, "the dead-letter topic could not be read to its end"
            for records in consumer.poll(timeout_ms=500).values():
                out.extend((r.key, DeadLetter.from_event_bytes(r.value)) for r in records)
        return out
    finally:
        consumer.close()


# The worker with a processor that has a bug on one account (x:poison: it always raises) and meets a
# dependency failure on another (x:flaky: a connection error the first three times), patched in from
# outside: the production code has no test hooks.
FAULTY_WORKER = """
import services.scoring.processor as processor

original = processor.Processor.process
seen = {"flaky": 0}

def process(self, snapshots, states, *args, **kwargs):
    snapshots = list(snapshots)
    accounts = {s.account_id for s in snapshots}
    if "x:poison" in accounts:
        raise ZeroDivisionError("a bug on this account")
    if "x:flaky" in accounts and seen["flaky"] < 3:
        seen["flaky"] += 1
        raise ConnectionRefusedError("ClickHouse is restarting")
    return original(self, snapshots, states, *args, **kwargs)

processor.Processor.process = process

from services.common.settings import get_settings
from services.scoring.__main__ import run_worker

run_worker(get_settings())
"""


def started(settings: Settings, argv: list[str] | None = None) -> Iterator[Worker]:
    w = Worker(settings, argv)
    w.start()
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture
def worker(app_settings: Settings, tmp_path: Path) -> Iterator[Worker]:
    yield from started(app_settings.model_copy(update={"scoring_port": PORT, "data_dir": tmp_path}))


@pytest.fixture
def faulty_worker(app_settings: Settings, tmp_path: Path) -> Iterator[Worker]:
    settings = app_settings.model_copy(update={"scoring_port": PORT + 1, "data_dir": tmp_path})
    yield from started(settings, ["-c", FAULTY_WORKER])


def test_bad_records_go_to_the_dead_letter_topic_and_the_good_ones_are_scored(worker: Worker) -> None:
    settings = worker.settings
    producer = Producer(settings)
    bad: dict[str, tuple[tuple[bytes | None, bytes | None], DeadLetterCode, str]] = {
        "not utf-8": (
            (b"x:latin1", b'{"account_id": "x:caf\xe9", "platform": "x"}'),
            DeadLetterCode.INVALID_ENCODING,
            "not UTF-8",
        ),
        "not json": (
            (b"x:truncated", b'{"account_id": "x:truncated", "plat'),
            DeadLetterCode.INVALID_JSON,
            "JSON",
        ),
        "not an object": ((b"x:array", b"[1, 2, 3]"), DeadLetterCode.INVALID_EVENT, "object"),
        "contract": (
            (b"x:negative", snapshot("x:negative", 3, -5, follower=3)),
            DeadLetterCode.INVALID_EVENT,
            "followers:",
        ),
        "wrong key": (
            (b"x:someone-else", snapshot("x:wrong-key", 3, 10)),
            DeadLetterCode.INVALID_EVENT,
            "key",
        ),
        "no key": ((None, snapshot("x:no-key", 3, 10)), DeadLetterCode.INVALID_EVENT, "no key"),
        "tombstone": ((b"x:tomb", None), DeadLetterCode.INVALID_EVENT, "tombstone"),
    }
    good = good_records("dl", accounts=12, days=2)
    # the raw form of an account id is fine in the value, as long as the key is the normalised id
    good.append((b"x:grenoble", snapshot("twitter:@Grenoble", 3, 5000, platform="twitter")))
    # bad records in the middle of good ones, so that they share batches
    records = good[:10] + [record for record, _, _ in bad.values()] + good[10:]
    sent = producer.send(records)
    worker.wait(end_offsets(sent))

    # The batch's offsets were committed: every dead letter is already acknowledged on the DLQ.
    letters = read_dead_letters(settings)
    by_origin = {(letter.partition, letter.offset): (key, letter) for key, letter in letters}
    assert len(by_origin) == len(letters) == len(bad), [letter.error for _, letter in letters]
    sent_by_record = {(s.key, s.value): s for s in sent}
    for name, (record, code, reason) in bad.items():
        origin = sent_by_record[record]
        key, letter = by_origin.pop((origin.partition, origin.offset))
        assert letter.error.code is code, (name, letter.error)
        assert reason in letter.error.message, (name, letter.error.message)
        assert letter.topic == settings.topic(Topic.ACCOUNT_SNAPSHOTS)
        assert (letter.service, letter.consumer_group) == ("scoring", settings.scoring_group())
        assert letter.timestamp is not None and letter.failed_at >= letter.timestamp
        # the original record, byte for byte, under its original key
        assert key == origin.key
        assert (None if letter.key is None else letter.key.to_bytes()) == origin.key
        assert (None if letter.value is None else letter.value.to_bytes()) == origin.value
    assert not by_origin

    ch = make_client(settings)
    db = settings.clickhouse_database
    accounts = ch.query(
        f"SELECT account_id, count() FROM {db}.snapshots FINAL GROUP BY account_id"
    ).result_rows
    assert {row[0]: row[1] for row in accounts} == {**{f"x:dl{i}": 2 for i in range(12)}, "x:grenoble": 1}
    assert worker.metric("barometre_scoring_events_total", outcome="dead_letter") == len(bad)
    assert worker.metric("barometre_scoring_events_total", outcome="processed") == len(good)

    # Still alive, still ready, and still scoring.
    assert worker.alive()
    assert worker.get("/readyz").status_code == 200
    more = producer.send([*good_records("after", accounts=5, days=1), (b"x:after-bad", b"\xff")])
    worker.wait(end_offsets(more))
    count = ch.query(f"SELECT count() FROM {db}.snapshots FINAL WHERE account_id LIKE 'x:after%'").result_rows
    assert count == [(5,)]
    assert len(read_dead_letters(settings)) == len(bad) + 1
    assert worker.alive()
    ch.close()
    producer.close()


def test_events_the_processor_fails_on_are_dead_lettered_and_the_rest_scored(faulty_worker: Worker) -> None:
    worker = faulty_worker
    settings = worker.settings
    producer = Producer(settings)
    poison: list[tuple[bytes | None, bytes | None]] = [
        (b"x:poison", snapshot("x:poison", day, 100 + day)) for day in (1, 2)
    ]
    flaky: list[tuple[bytes | None, bytes | None]] = [
        (b"x:flaky", snapshot("x:flaky", day, 200 + day)) for day in (1, 2)
    ]
    good = good_records("ok", accounts=10, days=2)
    sent = producer.send(good[:7] + poison[:1] + flaky + good[7:] + poison[1:])
    worker.wait(end_offsets(sent))

    letters = read_dead_letters(settings)
    sent_by_record = {(s.key, s.value): s for s in sent}
    expected = {(sent_by_record[r].partition, sent_by_record[r].offset) for r in poison}
    assert {(letter.partition, letter.offset) for _, letter in letters} == expected
    for key, letter in letters:
        assert key == b"x:poison"
        assert letter.error.code is DeadLetterCode.PROCESSING_ERROR
        assert "scoring account 'x:poison' failed: ZeroDivisionError: a bug on this account" in (
            letter.error.message
        )
        assert letter.value is not None and letter.value.to_bytes() in {value for _, value in poison}

    # The other accounts of the same batches are scored; the dependency failure was waited out.
    ch = make_client(settings)
    db = settings.clickhouse_database
    accounts = ch.query(
        f"SELECT account_id, count() FROM {db}.snapshots FINAL GROUP BY account_id"
    ).result_rows
    assert {row[0]: row[1] for row in accounts} == {**{f"x:ok{i}": 2 for i in range(10)}, "x:flaky": 2}
    ch.close()
    assert worker.metric("barometre_scoring_events_total", outcome="dead_letter") == 2
    assert worker.alive() and worker.get("/readyz").status_code == 200
    producer.close()
