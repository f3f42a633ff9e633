"""The answer cache (services/api/cache.py) on a fake clock: fresh answers are reused, stale ones are
served while one refresh runs, old ones are never served, identical concurrent requests share one
computation, failures are not kept."""

from __future__ import annotations

import asyncio
import threading

import pytest

from services.api.cache import AnswerCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_fresh_stale_and_expired() -> None:
    clock = Clock()
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    async def scenario() -> list[int]:
        cache = AnswerCache(None, fresh=0.5, max_age=1.0, clock=clock)
        got = [await cache.get("k", compute)]  # computed
        clock.now += 0.4
        got.append(await cache.get("k", compute))  # fresh
        clock.now += 0.3
        got.append(await cache.get("k", compute))  # stale: served, one refresh started
        await asyncio.sleep(0.05)  # let the refresh run
        got.append(await cache.get("k", compute))  # the refreshed answer, fresh
        clock.now += 1.0
        got.append(await cache.get("k", compute))  # too old: computed again
        got.append(await cache.get("other", compute))  # another key
        return got

    assert run(scenario()) == [1, 1, 1, 2, 3, 4]


def test_single_flight() -> None:
    release = threading.Event()
    calls: list[int] = []

    def compute() -> str:
        calls.append(1)
        release.wait(5)
        return "answer"

    async def scenario() -> list[str]:
        cache = AnswerCache(None, clock=Clock())
        tasks = [asyncio.create_task(cache.get("k", compute)) for _ in range(20)]
        await asyncio.sleep(0.05)
        release.set()
        return list(await asyncio.gather(*tasks))

    assert run(scenario()) == ["answer"] * 20
    assert len(calls) == 1


def test_failures_are_not_cached() -> None:
    outcomes: list[Exception | str] = [RuntimeError("ClickHouse is down"), "answer"]

    def compute() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def scenario() -> str:
        cache = AnswerCache(None, clock=Clock())
        with pytest.raises(RuntimeError, match="down"):
            await cache.get("k", compute)
        return await cache.get("k", compute)

    assert run(scenario()) == "answer"


def test_size_is_bounded() -> None:
    clock = Clock()

    async def scenario() -> AnswerCache:
        cache = AnswerCache(None, max_entries=3, clock=clock)
        for k in range(10):
            clock.now += 0.01
            await cache.get(k, lambda k=k: k)  # type: ignore[misc]
        return cache

    cache = run(scenario())
    assert isinstance(cache, AnswerCache)
    assert list(cache._entries) == [7, 8, 9]
