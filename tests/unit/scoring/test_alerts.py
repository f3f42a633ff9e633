"""Alerts on hand-made series: what the detectors find (and do not), and what noise control lets through.

Every series is built day by day with a seeded ``random.Random`` where it needs noise, so failures are
reproducible; the detectors run on an ``AccountSeries`` fed in arrival order, as the worker runs them.
"""

from __future__ import annotations

import dataclasses
import pickle
import random
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import pytest

from bench._alerts_evaluation import evaluate
from services.common.events import Alert
from services.common.names import AccountStatus, AlertSeverity, AlertStatus, AlertType
from services.scoring.alerts import (
    DEFAULT_NOISE,
    DEFAULT_PARAMS,
    Candidate,
    Detection,
    NoiseControl,
    NoiseParams,
    Silence,
    Verdict,
    detect_point,
    detect_silence,
    matching_silence,
    round_value,
    to_alert,
)
from services.scoring.maths import DAY_MS, AccountSeries, DailyPoint

ACCOUNT = "facebook:villedegrenoble"
ENTITY = "COM:38185"
D0 = 19_723  # 2024-01-01, a Monday
HOUR = 3_600_000
NOW_LIVE = None  # detect as if every point arrived when observed

ACTIVE, DELETED, SUSPENDED = AccountStatus.ACTIVE, AccountStatus.DELETED, AccountStatus.SUSPENDED


def at(day: int, hour: float = 9.0) -> int:
    """Epoch ms of ``hour`` o'clock on day ``day`` after D0."""
    return (D0 + day) * DAY_MS + round(hour * HOUR)


def pt(
    day: int,
    followers: int,
    status: AccountStatus = ACTIVE,
    posts_30d: int | None = 10,
    hour: float = 9.0,
) -> DailyPoint:
    return DailyPoint.with_derived_id(ACCOUNT, at(day, hour), followers, status, posts_30d)


def feed(
    points: Iterable[DailyPoint], now: Callable[[DailyPoint], int | None] = lambda p: None
) -> list[Detection]:
    """Add ``points`` in this order to a new series; every detection, in order."""
    series = AccountSeries(ACCOUNT)
    out: list[Detection] = []
    for p in points:
        change = series.add(p)
        out += detect_point(series, p, replaced=change.replaced, now=now(p))
    return out


def audience(detections: list[Detection]) -> list[Detection]:
    return [d for d in detections if d.type in (AlertType.AUDIENCE_SPIKE, AlertType.AUDIENCE_DROP)]


def growing(
    days: int, start: int = 20_000, daily: float = 60.0, noise: float = 10.0, seed: int = 1
) -> list[int]:
    """Followers of an account growing ``daily`` a day with gaussian noise."""
    rng = random.Random(seed)
    followers, out = float(start), []
    for _ in range(days):
        followers += daily + rng.gauss(0, noise)
        out.append(round(followers))
    return out


def points_of(followers: list[int], skip: Iterable[int] = ()) -> list[DailyPoint]:
    skipped = set(skip)
    return [pt(d, f) for d, f in enumerate(followers) if d not in skipped]


# --- No alert where there is nothing to say.


def test_no_alert_on_a_steady_trend() -> None:
    # +100 a day with little noise: every day's change is large, none is unusual.
    followers = growing(150, daily=100.0, noise=3.0)
    detections = feed(points_of(followers))
    assert [d.type for d in detections] == [AlertType.ACCOUNT_NEW]


def test_no_alert_on_a_declining_trend() -> None:
    followers = growing(150, start=50_000, daily=-80.0, noise=15.0)
    assert audience(feed(points_of(followers))) == []


def test_no_alert_on_a_weekly_pattern() -> None:
    # Every Monday brings ten times the usual follows (a weekly newsletter), weekends nearly none.
    rng = random.Random(2)
    followers, series = 30_000.0, []
    for day in range(200):
        weekday = (D0 + day + 3) % 7
        mean = {0: 600.0, 5: 5.0, 6: 5.0}.get(weekday, 60.0)
        followers += mean * rng.uniform(0.8, 1.2)
        series.append(round(followers))
    assert audience(feed(points_of(series))) == []


def test_no_alert_on_a_gap() -> None:
    # A week, then ten days, without observation: the growth of those days arrives at once.
    followers = growing(150, daily=80.0)
    detections = feed(points_of(followers, skip=[*range(70, 77), *range(100, 110)]))
    assert audience(detections) == []


def test_no_alert_on_irregular_polling_hours() -> None:
    rng = random.Random(3)
    followers = growing(120, daily=60.0, noise=10.0)
    points = [pt(d, f, hour=rng.uniform(0, 23.9)) for d, f in enumerate(followers)]
    assert audience(feed(points)) == []


def test_late_points_do_not_fire_on_a_normal_series() -> None:
    followers = growing(150, daily=60.0)
    points = points_of(followers)
    rng = random.Random(4)
    order = list(range(len(points)))
    for _ in range(30):  # swap neighbours: a point arrives after the next one
        i = rng.randrange(60, len(points) - 1)
        order[i], order[i + 1] = order[i + 1], order[i]
    assert audience(feed(points[i] for i in order)) == []


def test_history_raises_nothing() -> None:
    # A whole past year imported today: spikes, deletions and a new account are not news.
    followers = growing(120)
    followers[100:] = [f + 5_000 for f in followers[100:]]
    points = [*points_of(followers), pt(120, 0, DELETED, None)]
    now = at(400)
    assert feed(points, now=lambda p: now) == []


# --- Spikes and drops, with their explanation.


def test_a_spike_is_detected_with_its_explanation() -> None:
    followers = growing(120, daily=60.0, noise=10.0)
    followers[100:] = [f + 10_000 for f in followers[100:]]  # day 100 is a Wednesday
    detections = audience(feed(points_of(followers)))
    assert len(detections) == 1
    spike = detections[0]
    assert spike.type is AlertType.AUDIENCE_SPIKE
    assert spike.observed_at == at(100)
    assert spike.value == followers[100]
    assert spike.expected is not None and abs(spike.expected - (followers[99] + 60)) < 40
    assert spike.score is not None and spike.score > 100
    assert spike.severity is AlertSeverity.CRITICAL  # +38 % of the audience
    details = spike.details
    assert details["change"] == followers[100] - followers[99]
    assert details["elapsed_days"] == 1.0
    assert details["baseline_days"] == 56 and details["baseline_intervals"] == 56
    assert details["baseline_to"] == at(99) and details["baseline_from"] == at(43)
    assert "round_number" in spike.flags and details["round_value"] == 10_000
    assert "weekend" not in spike.flags


def test_a_drop_is_detected_and_flags_a_weekend() -> None:
    followers = growing(120, start=80_000, daily=60.0, noise=10.0)
    followers[104:] = [f - 3_000 for f in followers[104:]]  # day 104 is a Sunday
    detections = audience(feed(points_of(followers)))
    assert [(d.type, d.observed_at) for d in detections] == [(AlertType.AUDIENCE_DROP, at(104))]
    drop = detections[0]
    assert drop.value == followers[104] and drop.expected is not None and drop.expected > followers[103]
    assert drop.severity is AlertSeverity.WARNING  # 3.75 % of the audience
    assert "weekend" in drop.flags and "round_number" not in drop.flags


def test_small_changes_stay_below_the_floors() -> None:
    # A very regular account: +40 is statistically huge, but not 50 followers.
    followers = growing(120, start=5_000, daily=10.0, noise=1.0)
    followers[100:] = [f + 40 for f in followers[100:]]
    assert audience(feed(points_of(followers))) == []
    # Nor 0.5 % of a large audience: +2,000 on 1 million.
    followers = growing(120, start=1_000_000, daily=300.0, noise=30.0)
    followers[100:] = [f + 2_000 for f in followers[100:]]
    assert audience(feed(points_of(followers))) == []


def test_a_spike_hidden_in_a_gap_is_judged_on_the_gap() -> None:
    followers = growing(120, daily=60.0, noise=10.0)
    followers[100:] = [f + 5_000 for f in followers[100:]]
    detections = audience(feed(points_of(followers, skip=range(98, 102))))
    assert [(d.type, d.observed_at) for d in detections] == [(AlertType.AUDIENCE_SPIKE, at(102))]
    assert "gap" in detections[0].flags and detections[0].details["elapsed_days"] == 5.0


def test_no_drop_when_contest_followers_leave_again() -> None:
    followers = growing(130, daily=60.0, noise=10.0)
    followers[100:] = [f + 3_000 for f in followers[100:]]
    for day in range(101, 110):  # half of them unfollow within days
        followers[day:] = [f - 300 for f in followers[day:]]
    detections = audience(feed(points_of(followers)))
    assert [d.type for d in detections] == [AlertType.AUDIENCE_SPIKE]


def test_a_real_drop_after_a_spike_is_still_a_drop() -> None:
    followers = growing(130, daily=60.0, noise=10.0)
    followers[100:] = [f + 1_000 for f in followers[100:]]
    followers[105:] = [f - 5_000 for f in followers[105:]]  # more than the contest brought
    detections = audience(feed(points_of(followers)))
    assert [d.type for d in detections] == [AlertType.AUDIENCE_SPIKE, AlertType.AUDIENCE_DROP]


def test_an_event_split_over_two_snapshots_is_found_on_the_second() -> None:
    # A contest of 80 followers during day 100, polled at noon: 40 show on day 100, 40 on day 101;
    # neither half reaches the 50-follower floor, the two together do.
    followers = growing(120, start=5_000, daily=10.0, noise=3.0)
    followers[100:] = [f + 40 for f in followers[100:]]
    followers[101:] = [f + 40 for f in followers[101:]]
    detections = audience(feed(points_of(followers)))
    assert [(d.type, d.observed_at) for d in detections] == [(AlertType.AUDIENCE_SPIKE, at(101))]
    assert "split" in detections[0].flags and detections[0].since == at(99)


def test_no_audience_alert_before_four_weeks_of_history() -> None:
    followers = growing(40, daily=60.0, noise=10.0)
    followers[20:] = [f + 5_000 for f in followers[20:]]
    assert audience(feed(points_of(followers))) == []


# --- Late data.


def test_a_late_spike_day_is_not_reported_twice() -> None:
    # Day 100 (the spike) arrives after day 101: day 101 shows it over two days and is reported;
    # day 100, once arrived, splits that interval but tells nothing new.
    followers = growing(120, daily=60.0, noise=10.0)
    followers[100:] = [f + 5_000 for f in followers[100:]]
    points = points_of(followers)
    order = [*points[:100], points[101], points[100], *points[102:]]
    detections = audience(feed(order))
    assert [(d.type, d.observed_at) for d in detections] == [(AlertType.AUDIENCE_SPIKE, at(101))]


def test_a_late_point_reveals_what_a_longer_interval_hid() -> None:
    # Day 100 arrives after day 101: over two days the spike does not stand out from this noisy
    # account (z about 5); once day 100 is in, within the lateness window, the day it happened does.
    followers = growing(120, daily=60.0, noise=50.0)
    followers[100:] = [f + 420 for f in followers[100:]]
    points = points_of(followers)
    order = [*points[:100], points[101], points[100], *points[102:]]
    detections = audience(feed(order))
    assert [(d.type, d.observed_at) for d in detections] == [(AlertType.AUDIENCE_SPIKE, at(100))]
    assert "late" in detections[0].flags
    assert audience(feed([*points[:100], points[101]])) == []  # what was seen before day 100 came


def test_a_point_later_than_the_lateness_window_is_not_evaluated() -> None:
    followers = growing(120, daily=60.0, noise=10.0)
    followers[100] += 5_000  # a one-day blip, seen only in the late point
    points = points_of(followers)
    order = [*points[:100], *points[101:104], points[100], *points[104:]]  # 3 days late
    assert audience(feed(order)) == []


def test_an_intraday_update_does_not_repeat_the_alert() -> None:
    followers = growing(101, daily=60.0, noise=10.0)
    points = points_of(followers[:100])
    # Day 100 is seen every hour; the contest brings 5,000 followers between 10:00 and 12:00.
    for hour in range(8, 16):
        extra = 0 if hour < 10 else 2_500 if hour == 10 else 5_000
        points.append(pt(100, followers[99] + hour * 3 + extra, hour=hour))
    detections = audience(feed(points))
    assert [(d.type, d.observed_at) for d in detections] == [(AlertType.AUDIENCE_SPIKE, at(100, 10))]
    assert "partial_day" not in detections[0].flags  # from 09:00 the day before: a whole day


# --- account_gone, account_new, dormant.


def test_account_gone_on_deletion_and_only_once() -> None:
    followers = growing(60)
    points = [*points_of(followers), pt(60, 0, DELETED, None), pt(61, 0, DELETED, None)]
    gone = [d for d in feed(points) if d.type is AlertType.ACCOUNT_GONE]
    assert len(gone) == 1
    assert gone[0].observed_at == at(60) and gone[0].value == 0 and gone[0].expected is None
    assert gone[0].details["reason"] == "deleted" and gone[0].details["previous_followers"] == followers[-1]
    assert gone[0].severity is AlertSeverity.CRITICAL


def test_account_gone_on_suspension_and_no_spike_on_reinstatement() -> None:
    followers = growing(80)
    points = [
        *points_of(followers[:60]),
        *(pt(d, 0, SUSPENDED, None) for d in range(60, 65)),
        *(pt(d, followers[d]) for d in range(65, 80)),
    ]
    detections = feed(points)
    assert [(d.type, d.details.get("reason")) for d in detections[1:]] == [
        (AlertType.ACCOUNT_GONE, "suspended")
    ]
    assert detections[1].severity is AlertSeverity.WARNING


def test_account_gone_on_a_collapse_is_not_also_a_drop() -> None:
    followers = growing(80)
    followers[70:] = [300 + d for d in range(10)]  # from ~24,000 to 300, still active (hacked, reset)
    detections = feed(points_of(followers))
    assert [(d.type, d.observed_at) for d in detections[1:]] == [(AlertType.ACCOUNT_GONE, at(70))]
    lost = detections[1].details["lost_share"]
    assert detections[1].details["reason"] == "collapse" and isinstance(lost, float) and lost > 0.98


def test_account_gone_on_silence() -> None:
    series = AccountSeries.from_points(ACCOUNT, points_of(growing(30)))
    last = at(29)
    assert detect_silence(series, last + 44 * DAY_MS) is None
    first = detect_silence(series, last + 45 * DAY_MS + HOUR)
    again = detect_silence(series, last + 46 * DAY_MS)
    assert first is not None and again is not None
    assert first.type is AlertType.ACCOUNT_GONE and first.details["reason"] == "silent"
    assert first.observed_at == again.observed_at == last + 45 * DAY_MS  # one alert id, however often
    assert detect_silence(series, last + 60 * DAY_MS) is None  # history by then
    deleted = AccountSeries.from_points(ACCOUNT, [*points_of(growing(30)), pt(30, 0, DELETED, None)])
    assert detect_silence(deleted, at(30) + 50 * DAY_MS) is None  # reported when it was deleted


def test_account_new_once() -> None:
    detections = feed([pt(10, 40), pt(11, 42), pt(12, 45)])
    assert [(d.type, d.observed_at, d.value) for d in detections] == [(AlertType.ACCOUNT_NEW, at(10), 40)]
    # Its first day seen again later that day, or an earlier point arriving late: no second alert.
    assert [d.type for d in feed([pt(10, 40), pt(10, 41, hour=15), pt(9, 38)])] == [AlertType.ACCOUNT_NEW]


def test_account_new_not_for_an_old_or_gone_first_point() -> None:
    assert feed([pt(10, 40)], now=lambda p: at(30)) == []  # an import of history
    assert feed([pt(10, 40)], now=lambda p: at(12)) != []  # two days late is still news
    assert feed([pt(10, 0, DELETED, None)]) == []


def test_account_new_only_when_a_first_point_is_news() -> None:
    series = AccountSeries(ACCOUNT)
    first = pt(10, 40)
    series.add(first)
    assert detect_point(series, first, new_account=False) == []  # a platform watched for days only
    assert [d.type for d in detect_point(series, first)] == [AlertType.ACCOUNT_NEW]
    # Later points raise what they raise either way.
    drop = pt(11, 10)
    series.add(drop)
    assert detect_point(series, drop, new_account=False) == detect_point(series, drop)


def test_dormant_once_on_the_transition() -> None:
    posts = [8] * 100 + [2, 1, 0, 0, 0, 0] + [8] * 60 + [0] * 5
    points = [pt(d, 20_000 + d, posts_30d=p) for d, p in enumerate(posts)]
    dormant = [d for d in feed(points) if d.type is AlertType.DORMANT]
    assert [d.observed_at for d in dormant] == [at(102), at(166)]  # twice silent, twice reported
    first = dormant[0]
    # 8 posts a month over the three months before: one every 3.75 days was expected.
    assert first.value == 30.0 and first.expected == 3.75 and first.score == 8.0
    assert first.details["months"] == [8, 8, 8] and first.severity is AlertSeverity.INFO


def test_no_dormant_for_an_account_that_posts_now_and_then() -> None:
    # Two or three posts a month: a month without any is its rhythm (a 5-10 % chance), not news.
    posts = ([3] * 20 + [1] * 15 + [0] * 5) * 4
    points = [pt(d, 20_000, posts_30d=p) for d, p in enumerate(posts)]
    assert [d for d in feed(points) if d.type is AlertType.DORMANT] == []


def test_dormant_needs_months_of_history() -> None:
    points = [pt(d, 20_000, posts_30d=20) for d in range(40)] + [pt(40, 20_000, posts_30d=0)]
    assert [d for d in feed(points) if d.type is AlertType.DORMANT] == []  # one month known only


def test_dormant_looks_past_points_without_counts() -> None:
    points = [pt(d, 20_000, posts_30d=15) for d in range(100)]
    points += [pt(100, 0, SUSPENDED, None), pt(101, 20_000, posts_30d=0)]
    dormant = [d for d in feed(points) if d.type is AlertType.DORMANT]
    assert dormant == []  # just back from a suspension: the silence is the suspension's
    points = [pt(d, 20_000, posts_30d=15) for d in range(100)] + [pt(100, 20_000, posts_30d=None)]
    points.append(pt(101, 20_000, posts_30d=0))
    dormant = [d for d in feed(points) if d.type is AlertType.DORMANT]
    assert len(dormant) == 1 and dormant[0].severity is AlertSeverity.WARNING  # 15 posts a month


def test_round_numbers() -> None:
    assert round_value(10_050) == 10_000
    assert round_value(-4_930) == 5_000
    assert round_value(1_990) == 2_000
    assert round_value(990) == 1_000
    assert round_value(3_000) is None
    assert round_value(500) is None  # too small to mean anything


def test_detect_point_ignores_a_point_the_series_did_not_keep() -> None:
    series = AccountSeries.from_points(ACCOUNT, [pt(1, 10, hour=12)])
    assert detect_point(series, pt(1, 99_999, hour=8)) == []  # older than its day's point


# --- Noise control.


def detection(
    kind: AlertType = AlertType.AUDIENCE_DROP,
    day: float = 100.0,
    value: float = 900.0,
    expected: float = 1000.0,
) -> Detection:
    return Detection(kind, at(0, day * 24), value, expected, 9.0, AlertSeverity.WARNING, {})


def candidate(account: str = ACCOUNT, entity: str | None = ENTITY, **kwargs: float | AlertType) -> Candidate:
    return Candidate(account, entity, detection(**kwargs))  # type: ignore[arg-type]


def verdicts(control: NoiseControl, now: float, *candidates: Candidate) -> list[Verdict]:
    """Process at day ``now`` and flush a minute later: the final verdict of each candidate."""
    step = control.process(at(0, now * 24), candidates)
    outcomes = [o for o in step.outcomes if o.verdict is not Verdict.PENDING]
    outcomes += control.flush(at(0, now * 24) + control.params.group_wait_ms).outcomes
    return [o.verdict for o in outcomes]


def test_cooldown_and_one_open_alert_per_account_and_type() -> None:
    control = NoiseControl()
    assert verdicts(control, 100, candidate(day=100)) == [Verdict.EMIT]
    assert verdicts(control, 100, candidate(day=100)) == [Verdict.DUPLICATE]  # delivered again
    assert verdicts(control, 100.5, candidate(day=100.5)) == [Verdict.ONGOING]  # still dropping
    assert verdicts(control, 101.3, candidate(day=101.3)) == [Verdict.ONGOING]  # within a day of the last
    assert verdicts(control, 101.3, candidate(kind=AlertType.AUDIENCE_SPIKE, day=101.3)) == [Verdict.EMIT]
    assert verdicts(control, 101.3, candidate(account="facebook:other", day=101.3)) == [Verdict.EMIT]
    assert verdicts(control, 103, candidate(day=103)) == [Verdict.EMIT]  # quiet for a day: a new story


def test_the_rest_of_a_change_seen_after_a_gap_is_the_same_alert() -> None:
    control = NoiseControl()
    assert verdicts(control, 100, candidate(day=100)) == [Verdict.EMIT]
    # Four days without data, then the rest of the drop: it began right after the first detection.
    rest = Candidate(ACCOUNT, ENTITY, dataclasses.replace(detection(day=104), since=at(100)))
    assert verdicts(control, 104, rest) == [Verdict.ONGOING]
    assert verdicts(control, 110, candidate(day=110)) == [Verdict.EMIT]


def test_cooldown_after_an_alert_that_closed() -> None:
    control = NoiseControl(NoiseParams(cooldown_ms=3 * DAY_MS, resolve_after_ms=DAY_MS // 2))
    assert verdicts(control, 100, candidate(day=100)) == [Verdict.EMIT]
    assert verdicts(control, 101, candidate(day=101)) == [Verdict.COOLDOWN]
    assert verdicts(control, 103.5, candidate(day=103.5)) == [Verdict.EMIT]


def test_a_late_detection_joins_the_open_alert() -> None:
    control = NoiseControl()
    assert verdicts(control, 101, candidate(day=101)) == [Verdict.EMIT]
    assert verdicts(control, 102, candidate(day=100.5)) == [Verdict.ONGOING]


def test_many_accounts_dropping_at_once_are_one_incident() -> None:
    control = NoiseControl()
    control.set_active_accounts({"facebook": 500, "x": 5_000})
    # Three accounts before the purge are alerted on their own (they were alone then).
    early = [candidate(account=f"facebook:early{i}", day=100) for i in range(3)]
    assert verdicts(control, 100, *early) == [Verdict.EMIT] * 3
    # Then 30 within an hour: threshold max(10, 1 % of 500) = 10 is crossed.
    purge = [candidate(account=f"facebook:a{i}", day=100 + i / 24 / 30) for i in range(30)]
    step = control.process(at(100, 1), purge)
    assert {o.verdict for o in step.outcomes} == {Verdict.PENDING}
    [incident] = step.incidents
    assert incident.platform == "facebook" and incident.type is AlertType.AUDIENCE_DROP
    assert len(incident.members) == 33 and set(incident.emitted_before) == {
        f"facebook:early{i}" for i in range(3)
    }
    assert incident.total_change == pytest.approx(-100.0 * 33)
    assert incident.severity is AlertSeverity.WARNING  # 6.6 % of the platform
    assert incident.threshold == 10 and incident.share == pytest.approx(33 / 500)
    record = incident.to_dict()
    assert record["accounts"] == 33 and record["status"] == "open" and record["type"] == "audience_drop"
    assert record["first_observed_at"] == "2024-04-10T00:00:00Z"
    released = control.flush(at(100, 1) + DEFAULT_NOISE.group_wait_ms).outcomes
    assert [o.verdict for o in released] == [Verdict.INHIBITED] * 30
    assert {o.by for o in released} == {incident.incident_id}
    # Latecomers of the same purge join the incident; other platforms and types are not affected.
    step = control.process(at(100, 3), [candidate(account="facebook:late", day=100.1)])
    assert [i.members[-1] for i in step.incidents] == ["facebook:late"]
    assert [o.verdict for o in control.flush(at(100, 4)).outcomes] == [Verdict.INHIBITED]
    assert verdicts(control, 100.2, candidate(account="facebook:late2", day=100.15)) == [Verdict.INHIBITED]
    assert verdicts(control, 100.2, candidate(account="x:someone", day=100.15)) == [Verdict.EMIT]
    spike = candidate(account="facebook:z", kind=AlertType.AUDIENCE_SPIKE, day=100.15)
    assert verdicts(control, 100.2, spike) == [Verdict.EMIT]
    # The incident is resolved once no member joined for the window; a drop days later is news.
    resolved = control.flush(at(101)).incidents
    assert [i.resolved for i in resolved] == [True]
    assert verdicts(control, 105, candidate(account="facebook:b", day=105)) == [Verdict.EMIT]


def test_an_inhibited_detection_seen_again_is_a_duplicate() -> None:
    control = NoiseControl()
    drops = [candidate(account=f"facebook:a{i}", day=100) for i in range(12)]
    assert set(verdicts(control, 100, *drops)) == {Verdict.INHIBITED}
    assert verdicts(control, 100.5, drops[0]) == [Verdict.DUPLICATE]  # delivered twice


def test_the_incident_threshold_follows_the_platform_size() -> None:
    control = NoiseControl()
    control.set_active_accounts({"facebook": 20_000})  # 1 % is 200 accounts
    drops = [candidate(account=f"facebook:a{i}", day=100) for i in range(50)]
    assert verdicts(control, 100, *drops) == [Verdict.EMIT] * 50
    control = NoiseControl()  # platform size unknown: 10 accounts are enough
    assert set(verdicts(control, 100, *drops)) == {Verdict.INHIBITED}


def test_silences() -> None:
    start, end = at(99), at(102)
    by_account = Silence("s1", start, end, account_id=ACCOUNT)
    by_entity = Silence("s2", start, end, entity_id="COM:69123")
    by_platform_type = Silence("s3", start, end, platform="x", type=AlertType.AUDIENCE_SPIKE)
    silences = [by_account, by_entity, by_platform_type]
    assert matching_silence(silences, candidate(), at(100)) is by_account
    assert matching_silence(silences, candidate(), at(102)) is None  # ended
    assert matching_silence(silences, candidate(account="x:lyon", entity="COM:69123"), at(100)) is by_entity
    spike = candidate(account="x:paris", entity="COM:75056", kind=AlertType.AUDIENCE_SPIKE)
    assert matching_silence(silences, spike, at(100)) is by_platform_type
    drop = candidate(account="x:paris", entity="COM:75056")
    assert matching_silence(silences, drop, at(100)) is None

    control = NoiseControl(silences=silences)
    assert verdicts(control, 100, candidate()) == [Verdict.SILENCED]
    control.set_silences([])
    assert verdicts(control, 100, candidate(day=100.1)) == [Verdict.EMIT]  # silenced ones open nothing


def test_a_silence_mutes_an_incident_not_its_inhibition() -> None:
    control = NoiseControl(silences=[Silence("s", at(99), at(102), platform="facebook")])
    step = control.process(at(100), [candidate(account=f"facebook:a{i}", day=100) for i in range(12)])
    assert [i.silenced_by for i in step.incidents] == ["s"]
    released = control.flush(at(101)).outcomes
    assert {o.verdict for o in released} == {Verdict.INHIBITED}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "at least one matcher"),
        ({"platform": "myspace"}, "unknown platform"),
        ({"account_id": "x:paris", "platform": "facebook"}, "is not on platform"),
    ],
)
def test_silence_validation(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Silence("s", 0, 1, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="end after"):
        Silence("s", 1, 1, platform="x")


def test_to_alert_is_a_valid_contract_alert() -> None:
    c = candidate()
    alert = to_alert(c, datetime(2024, 4, 10, 9, 5, tzinfo=UTC))
    assert isinstance(alert, Alert)
    assert alert.alert_id == c.alert_id and alert.status is AlertStatus.OPEN
    assert (alert.account_id, alert.entity_id, alert.platform.value) == (ACCOUNT, ENTITY, "facebook")
    assert Alert.from_event_bytes(alert.to_event_bytes()) == alert


def test_noise_control_state_survives_pickling() -> None:
    control = NoiseControl()
    assert verdicts(control, 100, candidate(day=100)) == [Verdict.EMIT]
    restored = pickle.loads(pickle.dumps(control))  # noqa: S301 - our own bytes, just written
    assert verdicts(restored, 100.5, candidate(day=100.5)) == [Verdict.ONGOING]


# --- The evaluation harness runs (the figures are bench/alerts_eval.py's).


def test_the_evaluation_harness_runs_small() -> None:
    params = dataclasses.replace(DEFAULT_PARAMS)
    report = evaluate(seed=3, n=4, clean=4, params=params, purge_accounts=60, sizes=(10.0,))
    names = [c.name for c in report.cells]
    assert names[:2] == ["spike 10x", "drop 10x"] and "dormant" in names
    assert all(c.series == 4 for c in report.cells)
    assert report.history.fp == 0
    assert len(report.purges[0].incidents) == 1  # synchronous polling
    assert {target for target, _, _ in report.targets()} >= {"no alert on imported history"}
