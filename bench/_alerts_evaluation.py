"""How good are the alerts? Seeded, labelled series run through the detectors and noise control.

The core of ``bench/alerts_eval.py``. It generates accounts with known truth — noise, trend (with a
drifting rate), weekly seasonality, missing days and multi-day gaps, late deliveries — injects
anomalies of several kinds and sizes, delivers the points in arrival order to the same pure path the
worker runs (``AccountSeries.add`` → :func:`~services.scoring.alerts.detection.detect_point` →
:class:`~services.scoring.alerts.noise.NoiseControl`, plus the periodic
:func:`~services.scoring.alerts.detection.detect_silence`), and scores what was published:

- per cell (anomaly kind x size): precision, recall, F1, detection delay;
- on clean series: false alerts per 1,000 account-days;
- a platform-wide purge (many accounts dropping at once): incidents, inhibition, leaks.

The account model follows the simulator's (docs/simulator.md): Poisson new follows and unfollows,
log-normal daily shocks bounded at 3 sigma (a normal day never brings more than ~2.3 times the usual
follows: bigger jumps are events), weekday multipliers; it adds what the simulator keeps regular —
stronger or peaked weekly patterns, a growth rate that drifts, irregular observation, late data.
Sizes are multiples ``k`` of the account's *typical daily change* (its expected daily follows plus
unfollows, as the simulator counts contests). An anomaly smaller than the detectors' reporting floor
(``reporting_floor`` of the audience, docs/ALERTS.md) is labelled not reportable: recall is counted on
reportable anomalies (the floor is a product decision, not a miss), and shown on all of them too.

numpy generates the series (this is a bench, not the hot path); detection itself is the pure Python
the worker runs. Everything is a function of the seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final

import numpy as np

from services.common.names import AccountStatus, AlertType
from services.scoring.alerts.detection import (
    DEFAULT_PARAMS,
    HOUR_MS,
    DetectorParams,
    detect_point,
    detect_silence,
    months_before,
    reporting_floor,
)
from services.scoring.alerts.noise import (
    DEFAULT_NOISE,
    Candidate,
    Incident,
    NoiseControl,
    NoiseParams,
    Outcome,
    Verdict,
)
from services.scoring.maths.points import DAY_MS, DailyPoint
from services.scoring.maths.series import AccountSeries, ChangeKind

START_DAY: Final = 19_723  # 2024-01-01, a Monday
MINUTE_MS: Final = 60_000
SIM_WEEKDAYS: Final = (1.08, 1.10, 1.10, 1.08, 1.04, 0.82, 0.78)  # the simulator's Mon…Sun follows
SIZES: Final = (2.0, 5.0, 10.0, 20.0)
# Monitoring starts on this day of every generated account, with an import of its past: barometre
# is not told about accounts the day they are created (except in the ``new`` cell).
IMPORT_DAYS: Final = 60
_DELIVERED: Final = frozenset({Verdict.EMIT, Verdict.INHIBITED})
_GONE: Final = frozenset({AccountStatus.DELETED, AccountStatus.SUSPENDED})


class Kind(StrEnum):
    """An injected event, and the alert it should raise (:data:`ALERT_OF`)."""

    SPIKE = "spike"
    DROP = "drop"
    DELETED = "deleted"
    SUSPENDED = "suspended"
    COLLAPSE = "collapse"
    SILENT = "silent"
    NEW = "new"
    DORMANT = "dormant"


ALERT_OF: Final = {
    Kind.SPIKE: AlertType.AUDIENCE_SPIKE,
    Kind.DROP: AlertType.AUDIENCE_DROP,
    Kind.DELETED: AlertType.ACCOUNT_GONE,
    Kind.SUSPENDED: AlertType.ACCOUNT_GONE,
    Kind.COLLAPSE: AlertType.ACCOUNT_GONE,
    Kind.SILENT: AlertType.ACCOUNT_GONE,
    Kind.NEW: AlertType.ACCOUNT_NEW,
    Kind.DORMANT: AlertType.DORMANT,
}


@dataclass(frozen=True, slots=True)
class Truth:
    """One injected event: what alert it should raise, from when it shows, and how big it is.

    ``observable_at`` is the observed_at of the first point that shows it (epoch ms); ``deadline`` the
    instant by which it should be detected: when the next point arrived (one snapshot interval), or
    the observable point itself plus a day when none follows. ``size`` is in followers (signed) for
    audience events; ``k`` the multiple of the typical daily change.
    """

    kind: Kind
    observable_at: int
    deadline: int
    size: float = 0.0
    k: float | None = None
    reportable: bool = True
    injected: bool = True  # False: a dormancy that happened by chance (matched, not counted in recall)

    @property
    def alert_type(self) -> AlertType:
        """The alert type a detector should raise."""
        return ALERT_OF[self.kind]


@dataclass(frozen=True, slots=True)
class LabelledSeries:
    """One account's deliveries (arrival ms, point) in arrival order, with its truth; ``ends_at`` is
    the end of the simulated period (silence checks stop there)."""

    account_id: str
    deliveries: tuple[tuple[int, DailyPoint], ...]
    truths: tuple[Truth, ...]
    account_days: int
    typical: float
    ends_at: int


@dataclass(frozen=True, slots=True)
class Profile:
    """How one generated account behaves."""

    followers: float
    gain: float  # gross new follows a day, share of followers
    churn: float  # unfollows a day, share of followers
    weekly: tuple[float, ...]  # Mon…Sun multipliers of new follows, mean 1
    shock_sigma: float
    rate_drift: float  # daily sd of the log growth rate's random walk
    posts_per_day: float
    hour: float  # observation hour (UTC)
    jitter_hours: float
    missing: float  # chance that a day is not observed
    gap_rate: float  # chance a day starts a 2-7 day gap
    late: float  # chance that a point arrives late (1 h to 3 days)


def random_profile(
    rng: np.random.Generator,
    *,
    hour: float | None = None,
    followers: tuple[float, float] = (2_000, 500_000),
) -> Profile:
    """A plausible account: from 2,000 to 500,000 followers (``followers``, log-uniform), growing
    0.03-1 % a day (gross), a fifth of them declining, with a weekly pattern from none to one strong
    day, and irregular polling."""
    low, high = followers
    audience = math.exp(rng.uniform(math.log(low), math.log(high)))
    gain = math.exp(rng.uniform(math.log(0.0003), math.log(0.01)))
    churn = gain * (rng.uniform(1.1, 1.6) if rng.random() < 0.2 else rng.uniform(0.1, 0.8))
    pattern = rng.random()
    if pattern < 0.3:
        weekly = [1.0] * 7
    elif pattern < 0.7:  # the simulator's weekday shape, up to three times as marked
        amplitude = rng.uniform(1.0, 3.0)
        weekly = [max(0.05, 1 + amplitude * (w - 1)) for w in SIM_WEEKDAYS]
    else:  # one strong day a week (a newsletter, a weekly show)
        peak = int(rng.integers(0, 7))
        strength = rng.uniform(2.0, 4.0)
        weekly = [strength if d == peak else 1.0 for d in range(7)]
    mean = sum(weekly) / 7
    return Profile(
        followers=audience,
        gain=gain,
        churn=churn,
        weekly=tuple(w / mean for w in weekly),
        shock_sigma=rng.uniform(0.1, 0.4),
        rate_drift=rng.uniform(0.0, 0.03),
        posts_per_day=math.exp(rng.uniform(math.log(0.3), math.log(3.0))),
        hour=float(rng.uniform(0, 24)) if hour is None else hour,
        jitter_hours=rng.uniform(0.0, 1.0),
        missing=rng.uniform(0.0, 0.05),
        gap_rate=rng.uniform(0.0, 1 / 40),
        late=rng.uniform(0.0, 0.1),
    )


@dataclass(slots=True)
class _Day:
    followers: int
    status: AccountStatus = AccountStatus.ACTIVE
    posts_30d: int | None = None
    observed: bool = True


def _simulate(
    rng: np.random.Generator,
    profile: Profile,
    days: int,
    kind: Kind | None,
    event_day: int,
    k: float,
) -> tuple[list[_Day], float, float]:
    """Day states (after each day's change) and the anomaly's signed size and typical daily change."""
    followers = profile.followers
    log_rate = 0.0
    posts = rng.poisson(profile.posts_per_day, days)
    out: list[_Day] = []
    size = 0.0
    typical = 0.0
    excess_left = 0.0  # followers of a spike who will unfollow again
    carry = 0.0  # the part of the event after the day's observation
    decay = 0.0
    gone_until = -1
    for d in range(days):
        rate = profile.gain * math.exp(log_rate)
        log_rate += rng.normal(0.0, profile.rate_drift) if profile.rate_drift else 0.0
        log_rate = min(max(log_rate, -1.0), 1.0)
        wd = (START_DAY + d + 3) % 7
        shock = math.exp(profile.shock_sigma * float(np.clip(rng.standard_normal(), -3, 3)))
        shock /= math.exp(profile.shock_sigma**2 / 2)
        typical_today = (rate + profile.churn) * followers
        gained = int(rng.poisson(max(rate * followers * profile.weekly[wd] * shock, 0.0)))
        lost = int(rng.poisson(profile.churn * followers))
        change = gained - lost
        if excess_left > 0:
            leaving = min(excess_left, excess_left * decay)
            excess_left -= leaving
            change -= round(leaving)
        if d == event_day and kind in (Kind.SPIKE, Kind.DROP):
            typical = typical_today
            size = (k if kind is Kind.SPIKE else -k) * typical_today
            # As in the simulator, the event takes its calendar day: the observation of that day
            # sees the share of it before the polling hour, the next one the rest.
            change += round(size * profile.hour / 24)
            carry = size - round(size * profile.hour / 24)
            if kind is Kind.SPIKE:
                excess_left = rng.uniform(0.2, 0.6) * size
                decay = 1 - math.exp(-1 / 7)
        elif d == event_day + 1 and kind in (Kind.SPIKE, Kind.DROP):
            change += round(carry)
        followers = max(followers + change, 0.0)
        day = _Day(round(followers))
        if kind is Kind.DORMANT and d >= event_day:
            posts[d] = 0
        day.posts_30d = int(posts[max(0, d - 29) : d + 1].sum())
        if kind is Kind.COLLAPSE and d == event_day:
            followers *= rng.uniform(0.0, 0.08)
            day.followers = round(followers)
            size = -1.0
        if kind in (Kind.DELETED, Kind.SUSPENDED) and d == event_day:
            gone_until = d + (7 if kind is Kind.DELETED else int(rng.integers(3, 21)))
        if event_day <= d < gone_until:
            day.status = AccountStatus.DELETED if kind is Kind.DELETED else AccountStatus.SUSPENDED
            day.followers, day.posts_30d = 0, None
        elif kind is Kind.DELETED and d >= gone_until > 0:
            day.observed = False  # a deleted account is reported a week, then not at all
        if kind is Kind.SILENT and d >= event_day:
            day.observed = False
        if kind is Kind.NEW and d < event_day:
            day.observed = False
        out.append(day)
    if not typical:
        typical = (profile.gain + profile.churn) * profile.followers
    return out, size, typical


def generate(
    seed: int,
    cell: int,
    n: int,
    kind: Kind | None,
    k: float = 0.0,
    *,
    days: int = 160,
    params: DetectorParams = DEFAULT_PARAMS,
    history: bool = False,
    hour: float | None = None,
    followers: tuple[float, float] = (2_000, 500_000),
) -> list[LabelledSeries]:
    """``n`` labelled accounts of one cell: ``kind`` injected once (None: clean) with size ``k``.

    ``history``: the whole series arrives at once ten days after its end (an import of the past),
    where nothing should be reported.
    """
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, cell, i])
        profile = random_profile(rng, hour=hour, followers=followers)
        # Events come after ten weeks of history (the baseline's eight weeks and some), and early
        # enough to show before the end: a silence needs 45 days, a dormancy 30.
        last_start = {Kind.SILENT: days - 50, Kind.DORMANT: days - 40}.get(kind or Kind.SPIKE, days - 10)
        event_day = int(rng.integers(IMPORT_DAYS + 10, last_start))
        states, size, typical = _simulate(rng, profile, days, kind, event_day, k)
        account_id = f"x:eval_{cell}_{i}"
        points: list[tuple[int, DailyPoint]] = []
        skip_until = -1
        for d, state in enumerate(states):
            if d < skip_until or not state.observed:
                continue
            if d > 0 and rng.random() < profile.gap_rate:
                skip_until = d + int(rng.integers(2, 8))
                continue
            if rng.random() < profile.missing:
                continue
            jitter = float(np.clip(rng.normal(0, profile.jitter_hours), -profile.hour, 23.99 - profile.hour))
            at = (START_DAY + d) * DAY_MS + round((profile.hour + jitter) * HOUR_MS)
            point = DailyPoint.with_derived_id(account_id, at, state.followers, state.status, state.posts_30d)
            points.append((d, point))
        end = (START_DAY + days) * DAY_MS
        truths = _truths(kind, points, states, event_day, size, typical, k, params, end)
        monitored_from = (START_DAY + IMPORT_DAYS) * DAY_MS
        truths += _natural_silences(points, truths, monitored_from, params)
        deliveries = []
        for _, point in points:
            if history:
                arrival = end + 10 * DAY_MS
            elif point.observed_at < monitored_from:
                arrival = monitored_from  # the account's past, imported when monitoring starts
            elif rng.random() < profile.late:
                arrival = point.observed_at + int(rng.uniform(HOUR_MS, 3 * DAY_MS))
            else:
                arrival = point.observed_at + MINUTE_MS
            deliveries.append((arrival, point))
        deliveries.sort(key=lambda x: (x[0], x[1].observed_at))
        # Detection is due by the time the next snapshot has arrived (one snapshot interval).
        arrivals = sorted((p.observed_at, a) for a, p in deliveries)
        for n, truth in enumerate(truths):
            later = [a for t, a in arrivals if t > truth.observable_at]
            if later and truth.kind is not Kind.SILENT:
                truths[n] = replace(truth, deadline=later[0])
        out.append(
            LabelledSeries(
                account_id, tuple(deliveries), () if history else tuple(truths), len(states), typical, end
            )
        )
    return out


def _truths(
    kind: Kind | None,
    points: list[tuple[int, DailyPoint]],
    states: list[_Day],
    event_day: int,
    size: float,
    typical: float,
    k: float,
    params: DetectorParams,
    ends_at: int,
) -> list[Truth]:
    if kind is None:
        return []
    gone = (Kind.DELETED, Kind.SUSPENDED)
    seen_gone = any(d >= event_day and p.status != AccountStatus.ACTIVE for d, p in points)
    if kind is Kind.SILENT or (kind is Kind.DELETED and not seen_gone):
        # A deletion never observed (it fell in a gap, and the account is then no longer reported)
        # shows as a silence.
        last = max(p.observed_at for d, p in points if d < event_day)
        stale = last + params.staleness_ms
        return [Truth(Kind.SILENT, stale, stale + DAY_MS)] if stale <= ends_at else []
    if kind is Kind.SUSPENDED and not seen_gone:
        return []  # suspended and reinstated between two observations: nothing to see
    if kind is Kind.DORMANT:
        shows = [i for i, (_, p) in enumerate(points) if p.posts_30d == 0]
        first_zero = next((i for i in shows if points[i][0] >= event_day), None)
        if first_zero is None:
            return []  # the series ended before the month of silence: nothing to detect yet
        observable = points[first_zero][1].observed_at
        deadline = (
            points[first_zero + 1][1].observed_at if first_zero + 1 < len(points) else observable + DAY_MS
        )
        regular = _regular(points, first_zero, params)
        return [Truth(kind, observable, deadline, reportable=regular)]
    elif kind in gone:
        first_zero = next(i for i, (d, p) in enumerate(points) if d >= event_day and p.status in _GONE)
    else:
        first_zero = next((i for i, (d, _) in enumerate(points) if d >= event_day), None)
        if first_zero is None:
            return []
    observable = points[first_zero][1].observed_at
    deadline = points[first_zero + 1][1].observed_at if first_zero + 1 < len(points) else observable + DAY_MS
    if kind in (Kind.SPIKE, Kind.DROP):
        before = states[event_day - 1].followers if event_day else states[0].followers
        floor = reporting_floor(before, params)
        return [Truth(kind, observable, deadline, size, k, abs(size) >= floor)]
    return [Truth(kind, observable, deadline)]


def _regular(points: list[tuple[int, DailyPoint]], i: int, params: DetectorParams) -> bool:
    """Whether the account's silent month at point ``i`` was unlikely by the detector's rule: posts a
    month, one to three months earlier, at least ``dormant_min_posts`` on average (a sporadic
    poster's silent month is no event)."""
    series = [p for _, p in points[: i + 1]]
    months = months_before(series, i, series[i].observed_at)
    return (
        len(months) >= 2 and sum(m.posts_30d or 0 for m in months) / len(months) >= params.dormant_min_posts
    )


def _natural_silences(
    points: list[tuple[int, DailyPoint]], truths: list[Truth], monitored_from: int, params: DetectorParams
) -> list[Truth]:
    """Months without a post that happened by chance (an account posting once a week can be silent a
    month): true dormancies too, though not injected ones."""
    out = []
    known = {t.observable_at for t in truths if t.kind is Kind.DORMANT}
    previous: int | None = None
    for i, (_, p) in enumerate(points):
        if p.status != AccountStatus.ACTIVE:
            previous = None  # a silence right after a suspension is the suspension's
            continue
        if p.posts_30d is None:
            continue
        if (
            p.posts_30d == 0
            and previous
            and p.observed_at >= monitored_from
            and p.observed_at not in known
            and _regular(points, i, params)
        ):
            deadline = points[i + 1][1].observed_at if i + 1 < len(points) else p.observed_at + DAY_MS
            out.append(Truth(Kind.DORMANT, p.observed_at, deadline, injected=False))
        previous = p.posts_30d
    return out


# --- Running the pure path.


@dataclass(frozen=True, slots=True)
class Published:
    """A candidate that reached users (emitted, or inhibited into an incident), and when."""

    outcome: Outcome
    raised_at: int  # processing time of the point that triggered it


def run_series(
    series: LabelledSeries,
    params: DetectorParams = DEFAULT_PARAMS,
    noise: NoiseParams = DEFAULT_NOISE,
) -> list[Published]:
    """Deliver one account's points in arrival order; what noise control let through.

    The periodic silence check runs once a simulated day (as the worker would, more often).
    """
    control = NoiseControl(noise)
    account = AccountSeries(series.account_id)
    out: list[Published] = []
    deliveries = series.deliveries
    first = deliveries[0][0] if deliveries else 0
    checks = list(range(first - first % DAY_MS + DAY_MS, series.ends_at + 1, DAY_MS))
    queue = sorted([(at, 0, i) for i, (at, _) in enumerate(deliveries)] + [(at, 1, -1) for at in checks])
    for now, what, i in queue:
        detections = []
        if what == 0:
            point = deliveries[i][1]
            change = account.add(point)
            if change.kind not in (ChangeKind.NEW_DAY, ChangeKind.REPLACED):
                continue
            detections = detect_point(account, point, replaced=change.replaced, now=now, params=params)
        else:
            silence = detect_silence(account, now, params)
            detections = [] if silence is None else [silence]
        outcomes = control.process(now, [Candidate(series.account_id, None, d) for d in detections]).outcomes
        # The worker's timer flushes held detections group_wait later.
        outcomes += control.flush(now + noise.group_wait_ms).outcomes
        out.extend(Published(o, now) for o in outcomes if o.verdict in _DELIVERED)
    return out


# --- Scoring.


@dataclass(slots=True)
class CellResult:
    """The figures of one cell."""

    name: str
    kind: Kind | None
    k: float | None
    series: int = 0
    account_days: int = 0
    truths: int = 0
    reportable: int = 0
    found: int = 0  # reportable truths detected
    found_all: int = 0  # truths detected, reportable or not
    tp: int = 0
    fp: int = 0
    fp_types: dict[str, int] = field(default_factory=dict)
    delays: list[float] = field(default_factory=list)  # in snapshot intervals
    delays_days: list[float] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        """TP / (TP + FP) over published alerts; None without any."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        """Reportable truths detected / reportable truths."""
        return self.found / self.reportable if self.reportable else None

    @property
    def recall_all(self) -> float | None:
        """All truths detected / all truths."""
        return self.found_all / self.truths if self.truths else None

    @property
    def f1(self) -> float | None:
        """The harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p is not None and r is not None and p + r else None

    @property
    def false_per_1000(self) -> float:
        """False alerts per 1,000 account-days."""
        return 1000 * self.fp / self.account_days if self.account_days else 0.0

    def delay(self, q: float) -> float | None:
        """The ``q`` quantile of the delays, in snapshot intervals."""
        return _quantile(self.delays, q)

    def delay_days(self, q: float) -> float | None:
        """The ``q`` quantile of the delays, in days."""
        return _quantile(self.delays_days, q)


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def score_cell(
    name: str,
    kind: Kind | None,
    k: float | None,
    population: Sequence[LabelledSeries],
    params: DetectorParams = DEFAULT_PARAMS,
    noise: NoiseParams = DEFAULT_NOISE,
    runner: Callable[[LabelledSeries], list[Published]] | None = None,
) -> CellResult:
    """Run every series of a cell and match published alerts to truths.

    A truth is matched by the first published alert of its type observed between 12 h before the
    point that shows it and three days after, or the next point if later (late points and gaps move
    the point that reveals it);
    every other published alert, a second one for the same truth included, is a false alert. Chance
    dormancies are truths too (their alert is no false alert) but not the cell's: recall and delays
    are the injected events'.
    """
    run = runner or (lambda s: run_series(s, params, noise))
    result = CellResult(name, kind, k)
    for series in population:
        result.series += 1
        result.account_days += series.account_days
        published = run(series)
        used: set[int] = set()
        for truth in series.truths:
            if truth.injected:
                result.truths += 1
                result.reportable += truth.reportable
            # Until three days after, or the next point when it came later (an event split over two
            # snapshots, the second after a gap, shows there).
            since = truth.observable_at - 12 * HOUR_MS
            until = max(truth.observable_at + 3 * DAY_MS, truth.deadline + 12 * HOUR_MS)
            match = None
            for j, p in enumerate(published):
                d = p.outcome.candidate.detection
                if j not in used and d.type is truth.alert_type and since <= d.observed_at <= until:
                    match = j
                    break
            if match is None:
                continue
            used.add(match)
            if not truth.injected:
                continue
            result.found_all += 1
            result.found += truth.reportable
            raised = max(published[match].raised_at, truth.observable_at)
            interval = max(truth.deadline - truth.observable_at, HOUR_MS)
            result.delays.append((raised - truth.observable_at) / interval)
            result.delays_days.append((raised - truth.observable_at) / DAY_MS)
        result.tp += len(used)
        for j, p in enumerate(published):
            if j not in used:
                result.fp += 1
                t = p.outcome.candidate.detection.type.value
                result.fp_types[t] = result.fp_types.get(t, 0) + 1
    return result


# --- Grouping: a platform-wide purge.


@dataclass(slots=True)
class PurgeResult:
    """A purge of many accounts of one platform, through one noise control."""

    name: str
    accounts: int
    hit: int  # accounts that lost followers in the purge
    detected: int  # of them, accounts whose drop was detected (published or inhibited)
    incidents: list[Incident]
    inhibited: int
    emitted_drops: int  # per-account drop alerts published on the purge day (leaks)
    other_alerts: int  # alerts on other days or of other types (to read against the clean rate)


def run_purge(
    seed: int,
    accounts: int = 1_500,
    days: int = 100,
    *,
    spread: bool,
    params: DetectorParams = DEFAULT_PARAMS,
    noise: NoiseParams = DEFAULT_NOISE,
) -> PurgeResult:
    """A platform of ``accounts`` accounts; on day 80, 60 % of those with at least 50 followers lose
    a log-normal share (median 4 %, 0.5-30 %) of them, as the simulator's purges do. ``spread``:
    each account is polled at its own hour (a poller's cycle), else all at 09:00 (the simulator)."""
    purge_day = 80
    deliveries: list[tuple[int, int, DailyPoint]] = []
    hit = 0
    for i in range(accounts):
        rng = np.random.default_rng([seed, 9_999, i, int(spread)])
        profile = random_profile(rng, hour=None if spread else 9.0)
        profile = replace(profile, late=0.0, gap_rate=0.0, missing=0.0)
        states, _, _ = _simulate(rng, profile, days, None, 0, 0.0)
        share = 0.0
        if rng.random() < 0.6:
            share = float(np.clip(0.04 * math.exp(0.5 * rng.standard_normal()), 0.005, 0.3))
            hit += 1
        account_id = f"facebook:purge_{i}"
        factor = 1.0
        for d, state in enumerate(states):
            if d == purge_day:
                factor = 1.0 - share
            at = (START_DAY + d) * DAY_MS + round(profile.hour * HOUR_MS)
            point = DailyPoint.with_derived_id(
                account_id, at, round(state.followers * factor), state.status, state.posts_30d
            )
            monitored_from = (START_DAY + IMPORT_DAYS) * DAY_MS
            deliveries.append((max(at + MINUTE_MS, monitored_from), i, point))
    deliveries.sort(key=lambda x: (x[0], x[1]))
    control = NoiseControl(noise)
    control.set_active_accounts({"facebook": accounts})
    series = {i: AccountSeries(f"facebook:purge_{i}") for i in range(accounts)}
    purge_start = (START_DAY + purge_day) * DAY_MS
    purge_end = purge_start + DAY_MS
    incidents: dict[str, Incident] = {}
    detected: set[str] = set()
    inhibited = emitted_drops = other = 0
    batch: list[Candidate] = []
    batch_at = deliveries[0][0] if deliveries else 0

    def decide(outcomes: Iterable[Outcome]) -> None:
        nonlocal inhibited, emitted_drops, other
        for o in outcomes:
            c = o.candidate
            on_purge_day = purge_start <= c.observed_at < purge_end
            if o.verdict in _DELIVERED and c.type is AlertType.AUDIENCE_DROP and on_purge_day:
                detected.add(c.account_id)
                if o.verdict is Verdict.INHIBITED:
                    inhibited += 1
                else:
                    emitted_drops += 1
            elif o.verdict is Verdict.EMIT:
                other += 1

    for arrival, i, point in deliveries:
        if arrival - batch_at >= MINUTE_MS:  # the worker handles a batch of snapshots at a time
            step = control.process(batch_at, batch)
            decide(step.outcomes)
            incidents.update((x.incident_id, x) for x in step.incidents)
            batch, batch_at = [], arrival
        change = series[i].add(point)
        for found in detect_point(series[i], point, replaced=change.replaced, now=arrival, params=params):
            batch.append(Candidate(series[i].account_id, None, found))
    for now in (batch_at, batch_at + noise.group_wait_ms, batch_at + DAY_MS):
        step = control.process(now, batch)
        batch = []
        decide(step.outcomes)
        incidents.update((x.incident_id, x) for x in step.incidents)
    return PurgeResult(
        "spread polling" if spread else "synchronous polling",
        accounts,
        hit,
        len(detected),
        list(incidents.values()),
        inhibited,
        emitted_drops,
        other,
    )


# --- The whole evaluation.


@dataclass(slots=True)
class Report:
    """Every figure of one evaluation run."""

    cells: list[CellResult]
    clean: CellResult
    history: CellResult
    purges: list[PurgeResult]

    def targets(self) -> list[tuple[str, str, bool]]:
        """(target, measured, met) for each target of the alerts issue."""
        out = []
        big = [c for c in self.cells if c.kind in (Kind.SPIKE, Kind.DROP) and (c.k or 0) >= 5]
        tp = sum(c.tp for c in big)
        fp = sum(c.fp for c in big)
        found = sum(c.found for c in big)
        reportable = sum(c.reportable for c in big)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = found / reportable if reportable else 0.0
        out.append(("precision >= 0.95 (spikes and drops >= 5x)", f"{precision:.3f}", precision >= 0.95))
        out.append(("recall >= 0.90 (spikes and drops >= 5x)", f"{recall:.3f}", recall >= 0.90))
        worst = min((c.precision or 0.0 for c in big), default=0.0)
        out.append(("precision >= 0.95 in every cell >= 5x", f"{worst:.3f}", worst >= 0.95))
        worst_recall = min((c.recall or 0.0 for c in big), default=0.0)
        out.append(("recall >= 0.90 in every cell >= 5x", f"{worst_recall:.3f}", worst_recall >= 0.90))
        rate = self.clean.false_per_1000
        out.append(("<= 1 false alert per 1,000 account-days (clean)", f"{rate:.3f}", rate <= 1.0))
        delays = [d for c in self.cells for d in c.delays]
        p95 = _quantile(delays, 0.95) or 0.0
        out.append(("delay <= 1 snapshot interval (p95, all cells)", f"{p95:.2f}", p95 <= 1.0))
        out.append(("no alert on imported history", str(self.history.fp), self.history.fp == 0))
        for purge in self.purges:
            one = len(purge.incidents) == 1
            out.append((f"a purge is one incident ({purge.name})", str(len(purge.incidents)), one))
        return out


def evaluate(
    seed: int = 0,
    n: int = 300,
    clean: int = 1_000,
    *,
    params: DetectorParams = DEFAULT_PARAMS,
    noise: NoiseParams = DEFAULT_NOISE,
    purge_accounts: int = 1_500,
    sizes: Iterable[float] = SIZES,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Generate and score every cell: spikes and drops of each size, the other kinds, clean series,
    imported history and two purges. ``n`` series per cell, ``clean`` clean series."""
    say = progress or (lambda _: None)
    cells = []
    cell = 0
    for kind in (Kind.SPIKE, Kind.DROP):
        for k in sizes:
            cell += 1
            population = generate(seed, cell, n, kind, k, params=params)
            cells.append(score_cell(f"{kind.value} {k:g}x", kind, k, population, params, noise))
            say(cells[-1].name)
    for kind in (Kind.DELETED, Kind.SUSPENDED, Kind.COLLAPSE, Kind.SILENT, Kind.NEW, Kind.DORMANT):
        cell += 1
        days = 200 if kind is Kind.DORMANT else 160
        population = generate(seed, cell, n, kind, params=params, days=days)
        cells.append(score_cell(kind.value, kind, None, population, params, noise))
        say(cells[-1].name)
    clean_result = score_cell(
        "clean", None, None, generate(seed, 100, clean, None, params=params), params, noise
    )
    say("clean")
    history = score_cell(
        "history",
        None,
        None,
        generate(seed, 101, max(n // 3, 1), Kind.SPIKE, 10.0, history=True),
        params,
        noise,
    )
    say("history")
    purges = [
        run_purge(seed, purge_accounts, spread=spread, params=params, noise=noise) for spread in (False, True)
    ]
    say("purges")
    return Report(cells, clean_result, history, purges)
