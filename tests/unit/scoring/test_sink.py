"""The sink's retries end when it is stopped: a write waiting to retry raises SinkStopped at once."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from clickhouse_connect.driver.client import Client

from services.scoring.sink import ClickHouseSink, SinkStopped, TableRows


def unreachable() -> Client:
    raise ConnectionRefusedError("ClickHouse is down")


def rows() -> dict[str, TableRows]:
    return {"snapshots": TableRows(("event_id",), [["e1"]])}


def test_stop_ends_a_write_that_waits_to_retry() -> None:
    sink = ClickHouseSink(unreachable, "db", max_backoff_s=60.0)
    outcome: list[BaseException] = []

    def write() -> None:
        try:
            sink.write(rows(), {0: (0, 0)})
        except BaseException as exc:
            outcome.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(2.0)  # failed at 0, 0.5 and 1.5 s: now waiting 2 s, then 4, 8...
    assert writer.is_alive() and not sink.healthy
    stopped = time.monotonic()
    sink.stop()
    writer.join(5)
    assert not writer.is_alive()
    assert time.monotonic() - stopped < 0.5
    assert len(outcome) == 1 and isinstance(outcome[0], SinkStopped)
    assert isinstance(outcome[0].__cause__, ConnectionRefusedError)


def test_a_stopped_sink_gives_up_after_one_failed_attempt() -> None:
    sink = ClickHouseSink(unreachable, "db")
    sink.stop()
    started = time.monotonic()
    with pytest.raises(SinkStopped):
        sink.write(rows(), {0: (0, 0)})
    assert time.monotonic() - started < 0.5


def test_retries_back_off_until_the_sink_is_stopped() -> None:
    attempts: list[float] = []

    def failing_then_stop() -> Client:
        attempts.append(time.monotonic())
        if len(attempts) == 4:
            sink.stop()
        raise ConnectionRefusedError("ClickHouse is down")

    sink = ClickHouseSink(failing_then_stop, "db")
    with pytest.raises(SinkStopped):
        sink.write(rows(), {0: (0, 0)})
    waits = [round(b - a, 1) for a, b in itertools.pairwise(attempts)]
    assert waits == [0.5, 1.0, 2.0]
