"""Rows ClickHouse refuses do not stall the worker: their accounts' events go to the dead-letter topic
(``write_rejected``, with ClickHouse's error), the other accounts of the same batches are written and
the offsets committed; a ClickHouse that does not answer is still waited out, never dead-lettered.

The refusal is made in the test's own database: ``snapshots.followers`` narrowed to ``UInt16``, so an
account with 70,000 followers (a valid event) has a value its column cannot hold.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from services.common.clickhouse import make_client
from services.common.names import DeadLetterCode, Table
from services.common.settings import Settings
from services.scoring.sink import ClickHouseSink, TableRows
from tests.integration.scoring.test_dead_letters import (
    Producer,
    Worker,
    end_offsets,
    good_records,
    read_dead_letters,
    snapshot,
    started,
)

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

PORT = 18750


def narrow_followers(settings: Settings) -> None:
    client = make_client(settings)
    db = settings.clickhouse_database
    client.command(f"ALTER TABLE {db}.{Table.SNAPSHOTS} MODIFY COLUMN followers UInt16")
    client.close()


@pytest.fixture
def narrow_worker(app_settings: Settings, tmp_path: Path) -> Iterator[Worker]:
    narrow_followers(app_settings)
    yield from started(app_settings.model_copy(update={"scoring_port": PORT, "data_dir": tmp_path}))


def test_rows_clickhouse_rejects_are_dead_lettered_and_the_rest_written(narrow_worker: Worker) -> None:
    worker = narrow_worker
    settings = worker.settings
    producer = Producer(settings)
    big = [(b"x:big", snapshot("x:big", day, 70_000 + day)) for day in (1, 2)]
    good = good_records("ok", accounts=10, days=2)
    sent = producer.send(good[:7] + big[:1] + good[7:] + big[1:])
    worker.wait(end_offsets(sent))  # the offsets are committed: nothing stalls

    letters = read_dead_letters(settings)
    by_record = {(s.key, s.value): s for s in sent}
    assert {(letter.partition, letter.offset) for _, letter in letters} == {
        (by_record[r].partition, by_record[r].offset) for r in big
    }
    for key, letter in letters:
        assert key == b"x:big"
        assert letter.error.code is DeadLetterCode.WRITE_REJECTED
        assert "writing account 'x:big' failed: ClickHouse rejects its rows" in letter.error.message
        assert "`followers`" in letter.error.message and "65535" in letter.error.message

    ch = make_client(settings)
    db = settings.clickhouse_database
    rows = ch.query(f"SELECT account_id, count() FROM {db}.snapshots FINAL GROUP BY account_id").result_rows
    assert dict(rows) == {f"x:ok{i}": 2 for i in range(10)}
    latest = ch.query(f"SELECT account_id FROM {db}.account_latest FINAL").result_rows
    assert {row[0] for row in latest} == {f"x:ok{i}" for i in range(10)}
    ch.close()
    assert worker.metric("barometre_scoring_events_total", outcome="dead_letter") == 2
    assert worker.metric("barometre_scoring_events_total", outcome="processed") == len(good)
    assert worker.alive() and worker.get("/readyz").status_code == 200
    producer.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(60)
def test_a_clickhouse_that_does_not_answer_is_waited_out_not_dead_lettered(app_settings: Settings) -> None:
    """The same sink, its endpoint unreachable for a while (a stopped server: connection refused), then
    back: the write waits, says it is not healthy meanwhile, and writes every row once it answers."""
    down = app_settings.model_copy(update={"clickhouse_url": f"http://127.0.0.1:{free_port()}"})
    back = threading.Event()

    def client() -> Client:
        return make_client(app_settings if back.is_set() else down)

    sink = ClickHouseSink(client, app_settings.clickhouse_database, max_backoff_s=1.0)
    tables = {
        Table.SNAPSHOTS: TableRows(
            ("event_id", "account_id", "platform", "entity_id", "handle", "observed_at", "followers"),
            [["e1", "x:a", "x", "COM:38185", "a", datetime(2024, 5, 1, tzinfo=UTC), 5]],
        )
    }
    result: list[object] = []
    writer = threading.Thread(target=lambda: result.append(sink.write(tables, {0: (0, 0)})))
    writer.start()
    time.sleep(2.0)
    assert writer.is_alive() and not sink.healthy
    back.set()
    writer.join(10)
    assert not writer.is_alive() and result == [{}] and sink.healthy
    ch = make_client(app_settings)
    assert ch.command(f"SELECT count() FROM {app_settings.clickhouse_database}.snapshots") == 1
    ch.close()
