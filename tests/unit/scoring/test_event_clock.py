"""The worker's clock for silence checks: receipt time while catching up, the wall clock when idle."""

from __future__ import annotations

import time

from services.scoring.app import EventClock
from services.scoring.processor import wall_ms


def test_an_idle_worker_uses_the_wall_clock() -> None:
    clock = EventClock(idle_s=0.05)
    before = wall_ms()
    assert clock.now() >= before


def test_a_busy_worker_uses_the_receipt_time_of_what_it_processes() -> None:
    clock = EventClock(idle_s=60)
    past = wall_ms() - 30 * 86_400_000  # a backlog received a month ago
    clock.advance(past)
    assert clock.now() == past
    # A record timestamp ahead of the wall clock (a producer's wrong clock) never moves now past it.
    clock.advance(wall_ms() + 86_400_000)
    assert clock.now() <= wall_ms()


def test_the_receipt_time_lapses_when_the_worker_goes_idle() -> None:
    clock = EventClock(idle_s=0.05)
    past = wall_ms() - 86_400_000
    clock.advance(past)
    assert clock.now() == past
    time.sleep(0.1)
    assert clock.now() > past + 86_000_000
