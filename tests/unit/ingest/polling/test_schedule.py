"""The poller's scheduling policy (services/ingest/polling/schedule.py), on simulated time: cadences,
back-off, the schedule's order, resuming from stored state, and requests paced within a budget over a
whole simulated day."""

from __future__ import annotations

import bisect
import itertools
import random

import pytest

from services.ingest.polling.schedule import (
    DAY_S,
    CadencePolicy,
    RateBudget,
    Schedule,
    Stored,
    WindowPacer,
    cadence_for,
    chunk_size,
    format_plan,
    jittered,
    plan_platform,
    retry_delay,
)

POLICY = CadencePolicy()  # hourly, 6-hourly, daily; large >= 10,000; small < 1,000; moving 1%/day


def max_in_window(times: list[float], window: float) -> int:
    """The most requests any half-open window (t - window, t] holds."""
    ordered = sorted(times)
    best = 0
    for i, t in enumerate(ordered):
        first = bisect.bisect_right(ordered, t - window)
        best = max(best, i - first + 1)
    return best


# --- Cadences.


def test_large_accounts_are_read_hourly() -> None:
    assert cadence_for(POLICY, 10_000) == POLICY.fast_s == 3_600
    assert cadence_for(POLICY, 2_500_000, 2_500_000, DAY_S) == 3_600


def test_small_quiet_accounts_are_read_daily_and_the_rest_every_six_hours() -> None:
    assert cadence_for(POLICY, 300, 300, 86_400) == DAY_S
    assert cadence_for(POLICY, 999) == DAY_S
    assert cadence_for(POLICY, 1_000) == 6 * 3_600
    assert cadence_for(POLICY, 9_999, 9_990, DAY_S) == 6 * 3_600  # 0.09% a day: quiet


def test_a_new_account_is_read_at_the_normal_cadence_until_its_first_reading() -> None:
    assert cadence_for(POLICY, None) == POLICY.normal_s


def test_moving_accounts_are_read_hourly_whatever_their_size() -> None:
    # 500 -> 520 followers in a day: 4% a day.
    assert cadence_for(POLICY, 520, 500, DAY_S) == 3_600
    # Losing followers moves too.
    assert cadence_for(POLICY, 4_800, 5_000, DAY_S) == 3_600
    # The change is a rate: 2% over ten days is 0.2% a day, quiet.
    assert cadence_for(POLICY, 510, 500, 10 * DAY_S) == DAY_S
    # 0.5% in one hour is 12% a day.
    assert cadence_for(POLICY, 2_010, 2_000, 3_600) == 3_600
    # From zero followers, any gain moves.
    assert cadence_for(POLICY, 3, 0, DAY_S) == 3_600


def test_gone_accounts_are_read_daily() -> None:
    assert cadence_for(POLICY, 0, 50_000, 3_600, gone=True) == DAY_S


def test_cadences_follow_the_policy() -> None:
    policy = CadencePolicy(fast_s=600, normal_s=7_200, slow_s=43_200, large_followers=500, small_followers=50)
    assert cadence_for(policy, 500) == 600
    assert cadence_for(policy, 49) == 43_200
    assert cadence_for(policy, 100) == 7_200


@pytest.mark.parametrize(
    "bad",
    [
        {"fast_s": 7_200, "normal_s": 3_600},
        {"fast_s": 0},
        {"small_followers": 20_000},
        {"backoff_s": 0},
        {"backoff_s": 600, "backoff_max_s": 300},
        {"jitter_share": 1.0},
    ],
)
def test_an_incoherent_policy_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CadencePolicy(**bad)  # type: ignore[arg-type]


# --- Back-off.


def test_back_off_doubles_and_is_bounded() -> None:
    delays = [retry_delay(POLICY, n, DAY_S) for n in range(1, 10)]
    assert delays[:5] == [900, 1_800, 3_600, 7_200, 14_400]
    assert max(delays) == DAY_S  # backoff_max_s
    assert delays == sorted(delays)
    assert retry_delay(POLICY, 1_000, DAY_S) == DAY_S  # no overflow after many failures


def test_back_off_never_exceeds_the_cadence_of_an_hourly_account() -> None:
    assert retry_delay(POLICY, 10, 3_600) == 3_600
    assert retry_delay(POLICY, 1, 3_600) == 900


def test_back_off_is_for_failures() -> None:
    with pytest.raises(ValueError):
        retry_delay(POLICY, 0, 3_600)


def test_jitter_is_stable_and_within_its_share() -> None:
    values = [jittered(POLICY, f"bluesky:a{i}.fr", 3_600) for i in range(200)]
    assert all(3_600 * 0.9 <= v <= 3_600 for v in values)
    assert len(set(values)) > 150  # spread, not one instant
    assert jittered(POLICY, "bluesky:a1.fr", 3_600) == values[1]


# --- The schedule.


def test_new_accounts_are_due_at_once_most_overdue_first() -> None:
    schedule = Schedule(POLICY)
    added, removed = schedule.sync([("bluesky:a", "bluesky"), ("bluesky:b", "bluesky")], now=1_000)
    assert (added, removed) == (2, 0)
    stored = {"bluesky:c": Stored(next_due=500, cadence_s=3_600)}
    schedule.sync(
        [("bluesky:a", "bluesky"), ("bluesky:b", "bluesky"), ("bluesky:c", "bluesky")], 1_000, stored
    )
    taken = schedule.take_due("bluesky", 1_000, limit=10)
    assert next(e.account_id for e in taken) == "bluesky:c"  # due since 500
    assert {e.account_id for e in taken} == {"bluesky:a", "bluesky:b", "bluesky:c"}
    assert schedule.take_due("bluesky", 1_000, limit=10) == []  # in flight: never handed out twice


def test_take_due_respects_the_limit_and_the_platform() -> None:
    schedule = Schedule(POLICY)
    schedule.sync([(f"bluesky:a{i}", "bluesky") for i in range(30)] + [("mastodon:x@m.fr", "mastodon")], 0)
    assert len(schedule.take_due("bluesky", 0, limit=25)) == 25
    assert len(schedule.take_due("bluesky", 0, limit=25)) == 5
    assert [e.account_id for e in schedule.take_due("mastodon", 0, limit=25)] == ["mastodon:x@m.fr"]
    assert schedule.due_count("bluesky", 0) == 0


def test_a_read_account_is_due_again_after_its_cadence() -> None:
    schedule = Schedule(POLICY)
    schedule.sync([("bluesky:big", "bluesky"), ("bluesky:small", "bluesky")], 0)
    big, small = sorted(schedule.take_due("bluesky", 0, 10), key=lambda e: e.account_id)
    due_big = schedule.succeeded(big, 0, 50_000)
    due_small = schedule.succeeded(small, 0, 200)
    assert 3_600 * 0.9 <= due_big <= 3_600
    assert DAY_S * 0.9 <= due_small <= DAY_S
    assert schedule.take_due("bluesky", due_big - 1, 10) == []
    assert [e.account_id for e in schedule.take_due("bluesky", due_big, 10)] == ["bluesky:big"]
    assert schedule.next_due("bluesky") == due_small


def test_an_account_that_starts_moving_is_read_more_often() -> None:
    schedule = Schedule(POLICY)
    schedule.sync([("bluesky:v", "bluesky")], 0)
    (entry,) = schedule.take_due("bluesky", 0, 1)
    first = schedule.succeeded(entry, 0, 500)
    assert entry.cadence_s == DAY_S
    (entry,) = schedule.take_due("bluesky", first, 1)
    schedule.succeeded(entry, first, 600)  # +20% in under a day
    assert entry.cadence_s == 3_600


def test_a_failing_account_backs_off_and_a_success_resets_it() -> None:
    schedule = Schedule(POLICY)
    schedule.sync([("bluesky:f", "bluesky")], 0)
    now = 0.0
    waits = []
    for _ in range(6):
        (entry,) = schedule.take_due("bluesky", now, 1)
        due = schedule.failed(entry, now)
        waits.append(due - now)
        assert schedule.take_due("bluesky", due - 0.001, 1) == []
        now = due
    assert waits == [900, 1_800, 3_600, 7_200, 14_400, 21_600]  # capped by the 6-hour cadence
    assert entry.failures == 6
    (entry,) = schedule.take_due("bluesky", now, 1)
    schedule.succeeded(entry, now, 5_000)
    assert entry.failures == 0


def test_accounts_no_longer_registered_are_dropped_even_in_flight() -> None:
    schedule = Schedule(POLICY)
    schedule.sync([("bluesky:a", "bluesky"), ("bluesky:b", "bluesky")], 0)
    (entry,) = schedule.take_due("bluesky", 0, 1)
    assert schedule.sync(
        [("bluesky:b", "bluesky")] if entry.account_id == "bluesky:a" else [("bluesky:a", "bluesky")], 0
    ) == (0, 1)
    schedule.succeeded(entry, 0, 10)  # its poll ends after it was dropped: not scheduled again
    assert len(schedule.entries) == 1
    assert schedule.take_due("bluesky", 10 * DAY_S, 10)[0].account_id != entry.account_id
    schedule.drop("bluesky:nobody")  # dropping an unknown account is harmless


def test_a_restart_resumes_from_the_stored_state() -> None:
    before = Schedule(POLICY)
    accounts = [(f"bluesky:a{i}", "bluesky") for i in range(50)]
    before.sync(accounts, 0)
    for entry in before.take_due("bluesky", 0, 50):
        before.succeeded(entry, 0, 20_000 if entry.account_id.endswith("7") else 500)
    stored = {
        e.account_id: Stored(next_due=e.next_due, cadence_s=e.cadence_s, failures=e.failures, last_success=0)
        for e in before.entries.values()
    }
    after = Schedule(POLICY)
    assert after.sync(accounts, 1_800, stored) == (50, 0)
    # Half an hour after the readings nothing is due: the restart does not read anyone again.
    assert after.take_due("bluesky", 1_800, 50) == []
    assert after.next_due("bluesky") == min(s.next_due for s in stored.values())
    due_hourly = [e for e in after.take_due("bluesky", 3_600, 50)]
    assert {e.account_id for e in due_hourly} == {a for a, _ in accounts if a.endswith("7")}
    assert all(e.read_at == 0 for e in due_hourly)


def test_lag_is_the_age_of_the_most_overdue_account() -> None:
    schedule = Schedule(POLICY)
    assert schedule.lag("bluesky", 100) == 0
    schedule.sync([("bluesky:a", "bluesky")], 100)
    assert schedule.lag("bluesky", 160) == 60
    schedule.take_due("bluesky", 160, 1)
    assert schedule.lag("bluesky", 200) == 0  # in flight is not waiting


# --- Pacing.


def test_requests_are_spread_evenly_over_the_window() -> None:
    pacer = WindowPacer(RateBudget(300, 300.0))
    sent = []
    now = 0.0
    for _ in range(5):
        now = pacer.next_at(now)
        pacer.record(now)
        sent.append(now)
    assert sent == [0.0, 1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("budget", [RateBudget(300, 300.0), RateBudget(10, 60.0), RateBudget(1, 5.0)])
def test_a_budget_is_never_exceeded_over_a_simulated_day(budget: RateBudget) -> None:
    # A demand far above the budget, arriving in bursts at random instants.
    rng = random.Random(4)
    pacer = WindowPacer(budget)
    sent: list[float] = []
    now = 0.0
    while now < DAY_S:
        for _ in range(rng.randrange(1, 50)):
            at = pacer.next_at(now)
            pacer.record(at)
            sent.append(at)
            now = at
        now += rng.random() * budget.window_s / 3
    assert max_in_window(sent, budget.window_s) <= budget.requests


@pytest.mark.parametrize("budget", [RateBudget(300, 300.0), RateBudget(10, 60.0)])
def test_a_saturated_pacer_uses_the_whole_budget(budget: RateBudget) -> None:
    pacer = WindowPacer(budget)
    sent = []
    now = 0.0
    while True:
        now = pacer.next_at(now)
        if now >= DAY_S:
            break
        pacer.record(now)
        sent.append(now)
    assert len(sent) == round(DAY_S / budget.window_s) * budget.requests
    assert max_in_window(sent, budget.window_s) == budget.requests


def test_the_pacer_waits_for_a_window_to_clear_after_a_quiet_spell_then_a_rush() -> None:
    budget = RateBudget(3, 10.0)
    pacer = WindowPacer(budget)
    times = []
    now = 0.0
    for _ in range(7):
        now = pacer.next_at(now)
        pacer.record(now)
        times.append(now)
    assert max_in_window(times, 10.0) <= 3


def test_a_budget_share_keeps_headroom() -> None:
    assert RateBudget(3_000, 300).share(0.9) == RateBudget(2_700, 300)
    assert RateBudget(1, 60).share(0.5) == RateBudget(1, 60)
    with pytest.raises(ValueError):
        RateBudget(0, 60)
    with pytest.raises(ValueError):
        RateBudget(10, 60).share(1.5)


def test_chunks_are_whole_batches_of_about_a_minute_of_budget() -> None:
    bluesky = RateBudget(2_700, 300)  # 9 requests/s
    assert chunk_size(bluesky, 25, 1 / 25, 60) == 13_500  # 540 requests of 25 profiles
    assert chunk_size(bluesky, 25, 1 + 1 / 25, 60) == 500  # a feed request per account too
    youtube = RateBudget(9_000, DAY_S)
    assert chunk_size(youtube, 50, 1 / 50, 60) == 300  # 6.25 requests a minute: 6 batches
    assert chunk_size(RateBudget(10, DAY_S), 50, 1 / 50, 60) == 50  # at least one batch
    with pytest.raises(ValueError):
        chunk_size(bluesky, 0, 1, 60)


# --- A simulated day of the whole policy: schedule, chunks and pacer together.


def simulate_day(
    accounts: int, budget: RateBudget, batch: int, followers_of: dict[str, int]
) -> tuple[list[float], dict[str, list[float]], Schedule]:
    schedule = Schedule(POLICY)
    schedule.sync([(f"bluesky:a{i}", "bluesky") for i in range(accounts)], 0)
    pacer = WindowPacer(budget)
    requests: list[float] = []
    reads: dict[str, list[float]] = {}
    now = 0.0
    while now < DAY_S:
        taken = schedule.take_due("bluesky", now, chunk_size(budget, batch, 1 / batch, 60))
        if not taken:
            nxt = schedule.next_due("bluesky")
            assert nxt is not None
            now = max(now, nxt)
            continue
        for start in range(0, len(taken), batch):
            now = pacer.next_at(now)
            pacer.record(now)
            requests.append(now)
            for entry in taken[start : start + batch]:
                reads.setdefault(entry.account_id, []).append(now)
                schedule.succeeded(entry, now, followers_of.get(entry.account_id, 5_000))
    return requests, reads, schedule


def test_a_simulated_day_keeps_every_cadence_within_the_budget() -> None:
    followers = {
        f"bluesky:a{i}": (50_000 if i % 10 == 0 else 300 if i % 3 == 0 else 5_000) for i in range(3_000)
    }
    budget = RateBudget(30, 300)  # tight: 8,640 requests a day for 3,000 accounts in batches of 25
    requests, reads, _schedule = simulate_day(3_000, budget, 25, followers)
    assert max_in_window(requests, 300) <= 30
    for account_id, times in reads.items():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        cadence = cadence_for(POLICY, followers[account_id])
        # Read at its cadence (jitter shortens it by at most 10%), never much later.
        assert all(cadence * 0.9 - 1 <= gap <= cadence + 120 for gap in gaps), (account_id, gaps)
    hourly = sum(1 for f in followers.values() if f >= 10_000)
    assert len(reads["bluesky:a0"]) >= 24  # hourly accounts read every hour of the day
    assert hourly == 300


def test_an_oversubscribed_day_falls_behind_but_never_bursts() -> None:
    budget = RateBudget(3, 300)  # 864 requests a day for 3,000 hourly accounts: impossible
    followers = {f"bluesky:a{i}": 50_000 for i in range(3_000)}
    requests, _reads, schedule = simulate_day(3_000, budget, 25, followers)
    assert max_in_window(requests, 300) <= 3
    assert schedule.lag("bluesky", DAY_S) > 3_600


# --- The plan.


def test_the_plan_says_how_often_a_platform_can_be_read() -> None:
    accounts = [("bluesky", 3_600.0)] * 1_000 + [("bluesky", DAY_S)] * 9_000
    plan = plan_platform("bluesky", accounts, batch_size=25, budget=RateBudget(2_700, 300))
    assert plan.requests_per_round == 400
    assert plan.shortest_cadence_s == pytest.approx(400 / 9)
    assert plan.wanted_per_day == pytest.approx(1_000 * 24 / 25 + 9_000 / 25)
    assert plan.late == 0


def test_the_plan_counts_the_accounts_a_budget_leaves_late() -> None:
    # YouTube: 9,000 requests a day; 20,000 hourly channels would need 9,600 (50 a request).
    plan = plan_platform(
        "youtube", [("youtube", 3_600.0)] * 20_000, batch_size=50, budget=RateBudget(9_000, DAY_S)
    )
    assert plan.late == 20_000 - 18_750
    assert plan.shortest_cadence_s == pytest.approx(400 / (9_000 / DAY_S))


def test_mastodon_servers_each_have_their_own_budget() -> None:
    accounts = [("mastodon.social", 3_600.0)] * 900 + [("piaille.fr", 3_600.0)] * 100
    plan = plan_platform(
        "mastodon", accounts, batch_size=1, budget=RateBudget(270, 300), requests_per_account=2
    )
    assert plan.keys == 2
    assert plan.requests_per_round == 2_000
    assert plan.shortest_cadence_s == pytest.approx(1_800 / 0.9)  # the busiest server
    # 270 requests / 5 min = 77,760 a day per server; 900 hourly accounts x 2 x 24 = 43,200: all fit.
    assert plan.late == 0
    text = format_plan([plan])
    assert "mastodon" in text and "270/5m/key" in text


def test_the_plan_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        plan_platform("x", [("x", 0.0)], batch_size=100, budget=RateBudget(300, 900))
    with pytest.raises(ValueError):
        plan_platform("x", [], batch_size=0, budget=RateBudget(300, 900))
