"""The consumption rate and the time to catch up, from successive lag readings (pure)."""

from __future__ import annotations

from services.common.lag import Lag, Progress


def lag(at: float, committed: int, behind: int) -> Lag:
    return Lag(committed + behind, committed, behind, 6, committed > 0, at)


def test_rate_and_time_to_catch_up() -> None:
    p = Progress(window_s=60.0)
    assert p.rate() is None
    p.add(lag(0.0, 0, 100_000))
    assert p.seconds_to_catch_up(lag(0.0, 0, 100_000)) is None  # one reading: no rate
    p.add(lag(0.5, 1_000, 99_000))
    assert p.rate() is None  # readings less than a second apart
    last = lag(10.0, 30_000, 70_000)
    p.add(last)
    assert p.rate() == 3_000.0
    assert p.seconds_to_catch_up(last) == 70_000 / 3_000
    assert p.seconds_to_catch_up(lag(11.0, 100_000, 0)) == 0.0


def test_old_readings_leave_the_window_and_a_reset_starts_again() -> None:
    p = Progress(window_s=10.0)
    for t in range(0, 31):
        p.add(lag(float(t), t * 100, 1_000))
    assert p.rate() == 100.0
    p.add(lag(31.0, 0, 5_000))  # offsets went back: a new topic
    assert p.rate() is None


def test_a_stuck_worker_has_no_estimate() -> None:
    p = Progress()
    p.add(lag(0.0, 500, 1_000))
    p.add(lag(5.0, 500, 2_000))
    assert p.rate() == 0.0
    assert p.seconds_to_catch_up(lag(5.0, 500, 2_000)) is None
