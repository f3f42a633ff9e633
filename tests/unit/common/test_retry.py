"""The one retry helper: back-off from 0.5 s doubling to a cap, non-transient errors raised at once, a
stop that ends a wait at once, and a Health told of failures and of the recovery."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest

from services.common.retry import Health, Retry, Retrying


def test_waits_double_up_to_the_cap_and_health_follows() -> None:
    health = Health()
    waits: list[float] = []
    calls = itertools.count()

    def flaky() -> str:
        if next(calls) < 5:
            assert len(waits) == 0 or Retrying.CLICKHOUSE_WRITES in health
            raise ConnectionError("down")
        return "done"

    retry = Retry("test", health, Retrying.CLICKHOUSE_WRITES, "writes failing", max_s=3.0, sleep=waits.append)
    assert retry.call(flaky) == "done"
    assert waits == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert Retrying.CLICKHOUSE_WRITES not in health


def test_a_non_transient_error_is_raised_at_once() -> None:
    waits: list[float] = []

    def rejected() -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError):
        Retry("test", transient=lambda e: not isinstance(e, ValueError), sleep=waits.append).call(rejected)
    assert waits == []


def test_async_callers_may_pass_a_lambda_returning_an_awaitable() -> None:
    calls = itertools.count()

    async def flaky() -> int:
        if next(calls) < 2:
            raise OSError("down")
        return 7

    started = time.monotonic()
    assert asyncio.run(Retry("test", first_s=0.01).acall(lambda: flaky())) == 7
    assert time.monotonic() - started < 1


class Stopped(Exception):
    pass


def test_a_stop_ends_the_wait_at_once_with_the_stopped_error() -> None:
    stop = threading.Event()
    health = Health()

    def down() -> None:
        raise ConnectionRefusedError("down")

    retry = Retry(
        "test", health, Retrying.KAFKA_SENDS, "sends failing", stop=stop, stopped=lambda e: Stopped(str(e))
    )
    threading.Timer(0.8, stop.set).start()  # while waiting 1 s after the second failure
    started = time.monotonic()
    with pytest.raises(Stopped) as raised:
        asyncio.run(retry.acall(lambda: asyncio.to_thread(down)))
    assert time.monotonic() - started < 1.2
    assert isinstance(raised.value.__cause__, ConnectionRefusedError)
    assert health.get(Retrying.KAFKA_SENDS) == "sends failing"
