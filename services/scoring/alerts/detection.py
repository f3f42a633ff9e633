"""Alert detection: pure functions from one account's daily points to :class:`Detection` s.

The stream worker keeps each account's daily points in an
:class:`~services.scoring.maths.series.AccountSeries`; after adding a snapshot it calls
:func:`detect_point` with the point it added (and the current time), and once in a while
:func:`detect_silence` for every account it holds. Both return what is unusual, with its explanation;
turning that into the contract's ``Alert`` (ids, entity, status) and keeping the noise down (one open
alert per account and type, cooldowns, platform-wide incidents, silences) is :mod:`.noise`'s job.

The detectors (docs/ALERTS.md gives the rules with their reasons):

- :func:`detect_audience`: ``audience_spike`` / ``audience_drop``, the change since the previous point
  against a robust, weekday-aware baseline of the account's recent changes (median and MAD);
- :func:`detect_gone`: ``account_gone``, the status becomes deleted or suspended, or followers collapse;
- :func:`detect_silence`: ``account_gone`` too, when an active account has not been seen for the
  staleness window (this one needs "now");
- :func:`detect_new`: ``account_new``, the first point of an account, unless it is history;
- :func:`detect_dormant`: ``dormant``, ``posts_30d`` falls to 0 after having been positive.

Everything is plain Python on integers and floats: this runs for every snapshot of every account, and
the common case (an ordinary day) is settled from the last two points, without building the baseline.
Times are epoch milliseconds, as in :mod:`services.scoring.maths`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from services.common.names import AccountStatus, AlertSeverity, AlertType
from services.scoring.maths.points import DAY_MS, DEFAULT_STALENESS_MS, DailyPoint

HOUR_MS: Final = 3_600_000
_MAD_TO_SIGMA: Final = 1.4826  # MAD x this estimates the standard deviation of normal noise
_Q90_TO_SIGMA: Final = 1.2816  # the 90th percentile of normal noise, in standard deviations
_ACTIVE: Final = AccountStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class DetectorParams:
    """Every threshold of the detectors; the defaults are the tuned ones (docs/ALERTS.md)."""

    # --- audience_spike / audience_drop
    baseline_days: int = 56  # eight weeks: eight samples of each weekday
    min_baseline_intervals: int = 8  # fewer past changes than this: no audience alert...
    min_baseline_days: int = 28  # ... nor when they span less: four samples of each weekday
    min_weekday_samples: int = 3  # a weekday effect needs this many samples, else it is 0
    z_threshold: float = 7.0  # robust z of the change against the baseline
    min_change: int = 50  # followers: both the change and its excess over expected...
    min_change_share: float = 0.005  # ... or this share of the previous followers, if more
    # Small audiences (docs/ALERTS.md, "The reporting floor"): below min_change / small_change_share
    # (2,500 followers) the floor is this share of the audience, never under small_change_min.
    small_change_share: float = 0.02
    small_change_min: int = 5
    drift: float = 0.05  # variance of a D-day change is sigma^2 (D + drift D^2): rates drift too
    min_sigma: float = 1.0  # followers a day: no series is steadier than Poisson noise of ~1
    min_sigma_share: float = 0.1  # of the typical daily change: day-to-day variation is at least 10 %
    round_min: int = 1_000  # a change is "round" only from this size
    round_tolerance: float = 0.02  # within 2 % of 1, 2 or 5 x 10^n
    warning_share: float = 0.03  # severity: warning from 3 % of the audience...
    warning_z: float = 20.0  # ... or from this robust z
    critical_share: float = 0.10  # critical from 10 % of the audience with a robust z of 2 x threshold
    reversion_days: int = 14  # a change undoing an opposite anomaly this recent is its aftermath
    # --- account_gone
    collapse_share: float = 0.9  # followers lost between two active points
    collapse_min_followers: int = 100  # a collapse needs this many followers before
    gone_critical_followers: int = 1_000  # a gone account with this audience is critical
    staleness_ms: int = DEFAULT_STALENESS_MS  # silence past this is account_gone (docs/SCORING.md)
    # --- dormant
    dormant_lookback: int = 10  # points searched back for the last known posts_30d
    dormant_min_posts: float = 4.6  # posts a month before: a silent month had a chance e^-4.6 = 1 %
    dormant_warning_posts: int = 12  # an account that posted this much a month: warning, not info
    # --- late data and history
    lateness_ms: int = 2 * DAY_MS  # a point this much older than the latest is still evaluated
    max_alert_age_ms: int | None = 7 * DAY_MS  # points older than this before "now" are history


DEFAULT_PARAMS: Final = DetectorParams()


@dataclass(frozen=True, slots=True)
class Detection:
    """Something unusual about one account, with what explains it.

    ``observed_at`` (epoch ms) is the instant of the point that shows it (for a silence: the instant
    the account became stale), which with the type and the account makes the alert id. ``value`` and
    ``expected`` follow the contract: followers (seen, and expected from the baseline) for spikes and
    drops, followers seen and no expected figure for ``account_gone`` and ``account_new``, days without
    posts (at least) and the usual days between posts for ``dormant``. ``score`` is the strength of
    evidence: the absolute robust z for spikes and drops, the posts of the month before for dormant.
    ``details`` holds the rest of the explanation, JSON-ready (docs/ALERTS.md lists the keys).
    ``since`` is where a spike or drop began (the previous point): noise control folds a change that
    began while an alert of its type was open into that alert.
    """

    type: AlertType
    observed_at: int
    value: float | None
    expected: float | None
    score: float | None
    severity: AlertSeverity
    details: Mapping[str, object] = field(default_factory=dict)
    since: int | None = None  # spikes and drops: the previous point's instant, where the change began

    @property
    def flags(self) -> tuple[str, ...]:
        """The flags of the explanation: ``round_number``, ``weekend``, ``gap``, ``late``, ``partial_day``."""
        flags = self.details.get("flags", ())
        return tuple(str(flag) for flag in flags) if isinstance(flags, list | tuple) else ()


# --- Small helpers.


def weekday(ms: int) -> int:
    """Monday = 0 … Sunday = 6, of the UTC day of an instant (1970-01-01 was a Thursday)."""
    return (ms // DAY_MS + 3) % 7


def _median(values: list[float]) -> float:
    values.sort()
    n = len(values)
    mid = n // 2
    return values[mid] if n % 2 else (values[mid - 1] + values[mid]) / 2


def index_of(points: Sequence[DailyPoint], point: DailyPoint) -> int | None:
    """The index of ``point`` in ``points`` (sorted by day), None when its day holds another point."""
    n = len(points)
    if n == 0:
        return None
    last = points[n - 1]
    if last.day == point.day:  # the live case, without a search
        return n - 1 if last.observed_at == point.observed_at else None
    lo, hi = 0, n - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if points[mid].day < point.day:
            lo = mid + 1
        else:
            hi = mid
    found = points[lo]
    if found.day == point.day and found.observed_at == point.observed_at:
        return lo
    return None


def round_value(change: float, params: DetectorParams = DEFAULT_PARAMS) -> int | None:
    """The round number (1, 2 or 5 x 10^n, at least ``round_min``) that ``change`` is close to, if any.

    Bought followers come in packs of round sizes (1,000, 5,000, 10,000…): a jump within a few percent
    of one is worth a flag, though organic growth comes on top and makes it approximate.
    """
    size = abs(change)
    if size < params.round_min * (1 - params.round_tolerance):
        return None
    unit = int(10 ** math.floor(math.log10(size)))  # size >= 980 here, so a whole power of ten
    for candidate in (unit, 2 * unit, 5 * unit, 10 * unit):
        if candidate >= params.round_min and abs(size - candidate) <= params.round_tolerance * candidate:
            return candidate
    return None


def _historical(observed_at: int, now: int | None, params: DetectorParams) -> bool:
    """Whether something observed at ``observed_at`` is history at ``now`` (too old to be news)."""
    return (
        now is not None
        and params.max_alert_age_ms is not None
        and now - observed_at > params.max_alert_age_ms
    )


# --- The baseline of an account's recent changes.


@dataclass(frozen=True, slots=True)
class Baseline:
    """What the account's recent changes look like, per day: a level, weekday effects and noise scales.

    ``level`` is the median change a day and ``effects[w]`` the median deviation from it on weekday
    ``w`` (0 when fewer than ``min_weekday_samples`` daily intervals fell on it): the expected change
    of a day is their sum. ``typical`` is the median absolute change a day.

    The noise of a day, in followers, is the largest of:

    - ``noise``: 1.4826 x the MAD of the deseasonalised changes (each divided by :func:`unit` of its
      length), and per side ``noise_up``/``noise_down``, from the 90th and 10th percentiles when they
      say more (follows come in bursts: the noise is skewed, its upper tail longer than the MAD says);
    - ``weekly[w]``, the noise of weekday ``w`` alone: noise grows with the flow of follows, so a weekly
      peak day is noisier than the others, and judging it by the quiet days' scale would cry wolf
      every week. From so few samples (eight in eight weeks) a MAD is unreliable, so it is the root
      mean square of that weekday's deviations without the largest (a past anomaly), corrected for
      that trimming (0 below four samples);
    - ``floor`` (``min_sigma``, and ``min_sigma_share`` of ``typical``).

    ``intervals`` holds the (start, end, change) of the changes it was built from, newest first.
    """

    level: float
    effects: tuple[float, ...]
    typical: float
    noise: float
    noise_up: float
    noise_down: float
    weekly: tuple[float, ...]
    floor: float
    intervals: tuple[tuple[int, int, int], ...]

    @property
    def first_at(self) -> int:
        """The start of the oldest change used."""
        return self.intervals[-1][0]

    @property
    def last_at(self) -> int:
        """The end of the newest change used."""
        return self.intervals[0][1]

    def expected_rate(self, start: int, end: int) -> float:
        """The expected change a day between two instants: level + the weekday effect(s) covered."""
        return self.level + _over_days(self.effects, start, end)

    def sigma(self, start: int, end: int, up: bool) -> float:
        """The noise of one day's change up (or down) between two instants (see the class)."""
        side = self.noise_up if up else self.noise_down
        return max(side, _over_days(self.weekly, start, end), self.floor)

    def excess(self, start: int, end: int, change: int, drift: float) -> tuple[float, float, float]:
        """(expected change, excess over it, robust z) of a change between two instants."""
        days = (end - start) / DAY_MS
        expected = self.expected_rate(start, end) * days
        excess = change - expected
        return expected, excess, excess / (self.sigma(start, end, excess > 0) * unit(days, drift))


def _over_days(values: tuple[float, ...], start: int, end: int) -> float:
    """A weekday's value for a daily change, the mean over the days covered for a longer one."""
    if end - start <= DAY_MS * 3 // 2:
        # A daily change is filed under the UTC day of its end point: the same weekday for the same
        # weekday's change, which is all the effects need, whatever the polling hour (a daily point
        # is the last snapshot of its day, so that day is the point's own).
        return values[weekday(end)]
    first, last = start // DAY_MS + 1, end // DAY_MS
    n = max(last - first + 1, 1)
    weeks, rest = divmod(n, 7)
    return (weeks * sum(values) + sum(values[(first + j + 3) % 7] for j in range(rest))) / n


# The mean of the root mean square of n absolute standard normal values without the largest, for
# n = 4…12 (computed once by simulation): what corrects the trimmed estimate of a weekday's noise.
_TRIMMED_RMS: Final = (0.650, 0.696, 0.729, 0.755, 0.774, 0.791, 0.806, 0.818, 0.827)


def _trimmed_sigma(deviations: list[float]) -> float:
    n = len(deviations)
    kept = sorted(abs(d) for d in deviations)[:-1]
    rms = math.sqrt(sum(d * d for d in kept) / len(kept))
    return rms / _TRIMMED_RMS[min(n, 12) - 4]


def unit(days: float, drift: float) -> float:
    """The standard deviation of a change over ``days`` days, in units of one day's noise.

    Daily noise adds up (variance D) and the rate itself drifts (variance drift x D^2): a long gap is
    judged with more tolerance than the square root of its length would give. Shorter than a day counts
    as a day: a partial day is never extrapolated into a full one (its noise does not shrink that much).
    """
    d = max(days, 1.0)
    return math.sqrt(d + drift * d * d)


def baseline(
    points: Sequence[DailyPoint], end: int, params: DetectorParams = DEFAULT_PARAMS
) -> Baseline | None:
    """The baseline of the changes between consecutive active points up to ``points[end]``.

    Only intervals ending within ``baseline_days`` of ``points[end]`` count, and only when at least
    ``min_baseline_intervals`` of them do, spanning at least ``min_baseline_days`` (within half a day of
    polling jitter; None otherwise): a weekly pattern needs a few weeks to be learnt, and a new
    account's first weeks are its baseline. The baseline is what was known just before
    the change being judged, whatever came after it (late points are judged as they would have been live).
    """
    if end < 1:
        return None
    horizon = points[end].day - params.baseline_days
    intervals: list[tuple[int, int, int]] = []
    later = points[end]
    i = end
    while i >= 1 and later.day > horizon:
        earlier = points[i - 1]
        if earlier.status == _ACTIVE and later.status == _ACTIVE:
            elapsed = later.observed_at - earlier.observed_at
            if elapsed >= DAY_MS // 2:  # a few hours' change is too noisy to learn from
                intervals.append(
                    (earlier.observed_at, later.observed_at, later.followers - earlier.followers)
                )
        later = earlier
        i -= 1
    if len(intervals) < params.min_baseline_intervals:
        return None
    if intervals[0][1] - intervals[-1][0] < params.min_baseline_days * DAY_MS - DAY_MS // 2:
        return None
    rates = [c * DAY_MS / (e - s) for s, e, c in intervals]
    level = _median(list(rates))
    by_weekday: list[list[float]] = [[] for _ in range(7)]
    for rate, (s, e, _) in zip(rates, intervals, strict=True):
        if e - s <= DAY_MS * 3 // 2:
            by_weekday[weekday(e)].append(rate - level)
    effects = tuple(
        _median(deviations) if len(deviations) >= params.min_weekday_samples else 0.0
        for deviations in by_weekday
    )
    typical = _median([abs(r) for r in rates])
    floor = max(params.min_sigma, params.min_sigma_share * typical)
    shape = Baseline(level, effects, typical, 0.0, 0.0, 0.0, (0.0,) * 7, floor, ())
    residuals = []
    weekly: list[list[float]] = [[] for _ in range(7)]
    for s, e, change in intervals:
        days = (e - s) / DAY_MS
        residual = (change - shape.expected_rate(s, e) * days) / unit(days, params.drift)
        residuals.append(residual)
        if e - s <= DAY_MS * 3 // 2:
            weekly[weekday(e)].append(residual)
    centre = _median(list(residuals))
    noise = _MAD_TO_SIGMA * _median([abs(r - centre) for r in residuals])
    residuals.sort()
    n = len(residuals)
    upper = (residuals[(9 * (n - 1)) // 10] - centre) / _Q90_TO_SIGMA
    lower = (centre - residuals[(n - 1) // 10]) / _Q90_TO_SIGMA
    return Baseline(
        level,
        effects,
        typical,
        noise,
        max(noise, upper),
        max(noise, lower),
        tuple(_trimmed_sigma(r) if len(r) >= 4 else 0.0 for r in weekly),
        floor,
        tuple(intervals),
    )


def _reverts(base: Baseline, end: int, excess: float, params: DetectorParams) -> bool:
    """Whether a change of ``excess`` ending at ``end`` undoes a recent opposite anomaly, not beyond it.

    After a contest a share of the new followers leave within days, after a drop some come back: the
    followers lost or regained since an opposite anomaly of the last ``reversion_days`` (its excess
    included) have not yet crossed back past where the account would be without it. That is the end
    of the same story, already told by the first alert.
    """
    since = end - params.reversion_days * DAY_MS
    total = excess
    for s, e, change in base.intervals:  # newest first
        if e <= since:
            break
        _, past, z = base.excess(s, e, change, params.drift)
        total += past
        if abs(z) >= params.z_threshold and (past > 0) != (excess > 0) and (total > 0) != (excess > 0):
            return True
    return False


# --- The detectors.


def reporting_floor(followers: float, params: DetectorParams = DEFAULT_PARAMS) -> float:
    """The smallest unexpected change of an audience of ``followers`` worth an alert (docs/ALERTS.md,
    "The reporting floor"): ``max(min_change_share x F, min(min_change, max(small_change_min,
    small_change_share x F)))``.

    50 followers from 2,500 followers up to 10,000, 0.5 % of the audience above; below 2,500 a clear
    share of it, 2 %, and at least 5 followers (a commune page of 1,000 losing 40 overnight is news,
    50 would never be). Continuous and non-decreasing in ``followers``.
    """
    audience = max(float(followers), 0.0)
    small = max(float(params.small_change_min), params.small_change_share * audience)
    return max(params.min_change_share * audience, min(float(params.min_change), small))


def _audience(
    points: Sequence[DailyPoint],
    start: int,
    before: DailyPoint,
    after: DailyPoint,
    params: DetectorParams,
    flags: tuple[str, ...] = (),
) -> Detection | None:
    """A spike or a drop over the interval ``before = points[start] -> after``, judged on the baseline
    of the changes up to ``points[start]``. ``after`` need not be in ``points`` (a replaced version of
    its day's point is judged the same way, to know whether it had already shown the change). Points
    are passed in, not read again: on an AccountSeries each read builds one."""
    if before.status != _ACTIVE or after.status != _ACTIVE:
        return None  # status changes are account_gone's; a reinstatement is no spike
    change = after.followers - before.followers
    floor = reporting_floor(before.followers, params)
    if abs(change) < floor / 2:
        return None  # the ordinary case, settled without a baseline
    base = baseline(points, start, params)
    if base is None:
        return None
    t0, t1 = before.observed_at, after.observed_at
    days = (t1 - t0) / DAY_MS
    expected_change, excess, z = base.excess(t0, t1, change, params.drift)
    # The floor applies to what was not expected; the change itself must show the way (a drop is a
    # fall, not a pause in growth) and be at least half the floor, which is what lets ordinary days
    # through without a baseline.
    if change > 0 and excess >= floor and z >= params.z_threshold:
        alert_type = AlertType.AUDIENCE_SPIKE
    elif change < 0 and -excess >= floor and z <= -params.z_threshold:
        alert_type = AlertType.AUDIENCE_DROP
    else:
        return None
    if _reverts(base, t1, excess, params):
        return None
    expected_rate = base.expected_rate(t0, t1)
    share = abs(excess) / max(before.followers, 1)
    if share >= params.critical_share and abs(z) >= 2 * params.z_threshold:
        severity = AlertSeverity.CRITICAL
    elif share >= params.warning_share or abs(z) >= params.warning_z:
        severity = AlertSeverity.WARNING
    else:
        severity = AlertSeverity.INFO
    all_flags = list(flags)
    rounded = round_value(excess, params) or round_value(change, params)
    if rounded is not None:
        all_flags.append("round_number")
    if days <= 1.5 and weekday((before.observed_at + after.observed_at) // 2) >= 5:
        all_flags.append("weekend")
    if days > 1.5:
        all_flags.append("gap")
    if days < 0.5:
        all_flags.append("partial_day")
    details: dict[str, object] = {
        "change": change,
        "expected_change": round(expected_change, 1),
        "excess": round(excess, 1),
        "share": round(share, 5),
        "z": round(z, 2),
        "elapsed_days": round(days, 3),
        "previous_followers": before.followers,
        "previous_observed_at": before.observed_at,
        "rate_per_day": round(change / max(days, 1e-9), 1),
        "expected_rate_per_day": round(expected_rate, 1),
        "sigma_per_day": round(base.sigma(t0, t1, excess > 0), 2),
        "typical_change_per_day": round(base.typical, 1),
        "weekday_effect": round(expected_rate - base.level, 1) if days <= 1.5 else 0.0,
        "baseline_from": base.first_at,
        "baseline_to": base.last_at,
        "baseline_intervals": len(base.intervals),
        "baseline_days": params.baseline_days,
        "flags": sorted(all_flags),
    }
    if rounded is not None:
        details["round_value"] = rounded
    return Detection(
        alert_type,
        after.observed_at,
        float(after.followers),
        round(before.followers + expected_change, 1),
        round(abs(z), 2),
        severity,
        details,
        before.observed_at,
    )


def detect_audience(
    points: Sequence[DailyPoint], index: int, params: DetectorParams = DEFAULT_PARAMS
) -> Detection | None:
    """``audience_spike`` or ``audience_drop`` for the change from the point before ``points[index]``.

    The change ``c`` over ``D`` days is compared with the baseline's expected change ``e`` (level plus
    the weekday effect, times ``D``): ``z = (c - e) / (sigma x sqrt(D + drift D^2))``, ``sigma`` being
    the noise of that side and weekday (:class:`Baseline`). A spike needs ``c > 0``, ``c - e`` at least
    ``floor`` (:func:`reporting_floor` of the previous followers), ``c`` at least half of it, and
    ``z >= z_threshold``; a drop the same downwards. Both points must be active, and a change that
    only undoes a recent opposite anomaly is its aftermath, not news (:func:`_reverts`).
    """
    if index < 1:
        return None
    return _audience(points, index - 1, points[index - 1], points[index], params)


def detect_gone(
    points: Sequence[DailyPoint], index: int, params: DetectorParams = DEFAULT_PARAMS
) -> Detection | None:
    """``account_gone`` when an active account's next point is deleted or suspended, or when its
    followers collapse (at least ``collapse_share`` of them lost, from ``collapse_min_followers``)."""
    if index < 1:
        return None  # never seen active: there is nothing to lose
    return _gone(points[index - 1], points[index], params)


def _gone(before: DailyPoint, after: DailyPoint, params: DetectorParams) -> Detection | None:
    if before.status != _ACTIVE:
        return None  # already gone (suspended then deleted is the same story)
    lost = before.followers - after.followers
    if after.status != _ACTIVE:
        reason = after.status.value
    elif (
        before.followers >= params.collapse_min_followers and lost >= params.collapse_share * before.followers
    ):
        reason = "collapse"
    else:
        return None
    severity = AlertSeverity.WARNING
    if reason != AccountStatus.SUSPENDED.value and before.followers >= params.gone_critical_followers:
        severity = AlertSeverity.CRITICAL
    details: dict[str, object] = {
        "reason": reason,
        "status": after.status.value,
        "previous_followers": before.followers,
        "previous_observed_at": before.observed_at,
        "lost_share": round(lost / before.followers, 4) if before.followers else 0.0,
        "flags": [],
    }
    return Detection(
        AlertType.ACCOUNT_GONE, after.observed_at, float(after.followers), None, None, severity, details
    )


def detect_silence(
    points: Sequence[DailyPoint], now: int, params: DetectorParams = DEFAULT_PARAMS
) -> Detection | None:
    """``account_gone`` for an active account not seen for ``staleness_ms`` (45 days) at ``now``.

    The detection's ``observed_at`` is the instant the account became stale (its latest point plus the
    staleness window), the same at every call: calling this periodically gives the same alert id,
    which the noise control recognises as already sent. Silences that began more than
    ``max_alert_age_ms`` before ``now`` are history and give nothing (a 2013 import is not news).

    ``now`` must be event time: the wall clock, but never later than the latest ``observed_at`` the
    worker has processed (its watermark). During a back-fill, accounts whose later points are still
    in the queue would otherwise all look silent.
    """
    if not points:
        return None
    latest = points[len(points) - 1]
    if latest.status != _ACTIVE:
        return None  # a deleted or suspended account was reported as such when it happened
    stale_at = latest.observed_at + params.staleness_ms
    if now < stale_at:
        return None
    if _historical(stale_at, now, params):
        return None
    details: dict[str, object] = {
        "reason": "silent",
        "status": latest.status.value,
        "last_observed_at": latest.observed_at,
        "silent_days": round((now - latest.observed_at) / DAY_MS, 1),
        "staleness_days": round(params.staleness_ms / DAY_MS, 1),
        "flags": [],
    }
    return Detection(
        AlertType.ACCOUNT_GONE, stale_at, float(latest.followers), None, None, AlertSeverity.INFO, details
    )


def detect_new(
    points: Sequence[DailyPoint],
    index: int,
    now: int | None = None,
    params: DetectorParams = DEFAULT_PARAMS,
) -> Detection | None:
    """``account_new`` for the first point ever of an active account, unless it is history.

    "First" means the only point of the series, so that a later point arriving first and an earlier
    one after it give one alert, not two. History: observed more than ``max_alert_age_ms`` before
    ``now`` (an import of 2013 figures announces no new account).
    """
    if len(points) != 1 or index != 0:
        return None
    point = points[0]
    if point.status != _ACTIVE:
        return None
    if _historical(point.observed_at, now, params):
        return None
    details: dict[str, object] = {"flags": []}
    if point.posts_30d is not None:
        details["posts_30d"] = point.posts_30d
    return Detection(
        AlertType.ACCOUNT_NEW,
        point.observed_at,
        float(point.followers),
        None,
        None,
        AlertSeverity.INFO,
        details,
    )


def detect_dormant(
    points: Sequence[DailyPoint],
    index: int,
    params: DetectorParams = DEFAULT_PARAMS,
    point: DailyPoint | None = None,
) -> Detection | None:
    """``dormant`` when ``posts_30d`` is 0 at an active point and was positive at the last point that
    had it (looking back at most ``dormant_lookback`` points): fires once, on the transition.

    Only for an account whose silent month was unlikely: its posting rate ``r`` (posts a month, the
    mean of ``posts_30d`` one, two and three months earlier, at least two of them known) is at least
    ``dormant_min_posts``, so that with Poisson posting a month without posts had a chance ``e^-r``
    below 1 %. An account that posts a few times a month is silent a month now and then; that is its
    rhythm, not news.

    ``value`` is 30 (days without posts: at least the window), ``expected`` the usual days between
    posts (30 / r), ``score`` ``r`` (the surprise of the silent month, in nats). ``point`` is
    ``points[index]`` when the caller has it.
    """
    if point is None:
        point = points[index]
    if point.status != _ACTIVE or point.posts_30d != 0:
        return None
    for j in range(index - 1, max(index - 1 - params.dormant_lookback, -1), -1):
        before = points[j]
        if before.status != _ACTIVE:
            return None  # back from a suspension: the silence is the suspension's, not a choice
        if before.posts_30d is None:
            continue  # counts not read that time: look further back
        if before.posts_30d == 0:
            return None  # already silent: not a transition
        months = months_before(points, index, point.observed_at)
        if len(months) < 2:
            return None  # not enough history to call the silence unusual
        rate = sum(m.posts_30d or 0 for m in months) / len(months)
        if rate < params.dormant_min_posts:
            return None
        severity = AlertSeverity.WARNING if rate >= params.dormant_warning_posts else AlertSeverity.INFO
        details: dict[str, object] = {
            "posts_per_month": round(rate, 2),
            "months": [m.posts_30d for m in months],
            "previous_observed_at": months[0].observed_at,
            "flags": [],
        }
        return Detection(
            AlertType.DORMANT, point.observed_at, 30.0, round(30 / rate, 2), round(rate, 2), severity, details
        )
    return None


def months_before(points: Sequence[DailyPoint], index: int, observed_at: int) -> list[DailyPoint]:
    """For one, two and three months (30, 60, 90 days) before ``observed_at``, the latest active point
    with counts at or before that instant and less than 15 days before it, when there is one."""
    out: list[DailyPoint] = []
    month = 30 * DAY_MS
    target = observed_at - month
    for j in range(index - 1, -1, -1):
        candidate = points[j]
        while candidate.observed_at < target - 15 * DAY_MS:
            target -= month  # nothing for that month: try the next one back
            if target < observed_at - 3 * month:
                return out
        if candidate.observed_at <= target and candidate.posts_30d is not None:
            if candidate.status == _ACTIVE:
                out.append(candidate)
            target -= month
            if target < observed_at - 3 * month:
                return out
    return out


def detect_point(
    points: Sequence[DailyPoint],
    point: DailyPoint,
    *,
    replaced: DailyPoint | None = None,
    now: int | None = None,
    params: DetectorParams = DEFAULT_PARAMS,
    new_account: bool = True,
) -> list[Detection]:
    """Every detection that adding ``point`` to ``points`` (already added) brings; the worker's entry.

    ``replaced`` is the former point of the same day when ``point`` replaced it (``Change.replaced``):
    what that version already showed was reported when it arrived, so it is not reported again (a
    spike seen in the 10:00 snapshot is not news again in the 11:00 one).

    The late-data rule (docs/ALERTS.md, "Late data"):

    - the point is the latest: ``account_new`` when it is the account's first point; otherwise
      ``account_gone`` if the status or the audience says so (and then nothing else: a collapse is not
      also a drop), else ``audience_spike``/``audience_drop`` and ``dormant``;
    - the point is late (a later point exists): only the audience detectors, and only when the latest
      point is at most ``lateness_ms`` later. The late point splits the interval ``prev -> next`` that
      was judged when ``next`` arrived; each half is reported only when the whole did not stand out
      with the same type (if it did, the alert was raised then), each with the baseline known before
      it. Statuses and posting counts are judged on the latest point only: a past status that a newer
      point has superseded is no news.

    ``now`` (epoch ms) drops history: nothing observed more than ``max_alert_age_ms`` before it is
    reported. Without ``now`` every point counts as live. Returns [] when ``point`` is not in ``points``
    (a duplicate or an older snapshot of its day, which the series did not keep).

    ``new_account=False`` says a first point is no news (the worker: its platform has been watched for
    less than a week, so every account is seen for the first time). An account's only point can raise
    nothing else, so that case costs nothing (at the start of monitoring, it is every event).
    """
    if len(points) == 1 and not new_account:
        return []
    if _historical(point.observed_at, now, params):
        return []
    index = index_of(points, point)
    if index is None:
        return []
    n = len(points)
    if index == n - 1:
        return _live(points, index, point, replaced, now, params)
    if index == 0 or points[n - 1].observed_at - point.observed_at > params.lateness_ms:
        return []
    out: list[Detection] = []
    before, after = points[index - 1], points[index + 1]
    whole = _audience(points, index - 1, before, after, params)
    late = ("late",)
    for start, first, last in ((index - 1, before, point), (index, point, after)):
        detection = _audience(points, start, first, last, params, late)
        if detection is not None and (whole is None or whole.type != detection.type):
            out.append(detection)
    return out


def _split(
    points: Sequence[DailyPoint], index: int, before: DailyPoint, point: DailyPoint, params: DetectorParams
) -> Detection | None:
    """A change spread over the last two intervals, too small in each to be reported.

    An event takes its time (a contest brings followers all day): a daily snapshot taken at noon sees
    half of it, the next one the other half. When neither half stands out, the two intervals together
    may; reported then on the second point (``split`` flag), unless the first interval already was
    (its alert told the story).
    """
    if before.status != _ACTIVE:
        return None
    first = points[index - 2]
    whole = _audience(points, index - 2, first, point, params, ("split",))
    if whole is None:
        return None
    earlier = _audience(points, index - 2, first, before, params)
    if earlier is not None and earlier.type == whole.type:
        return None
    return whole


def _live(
    points: Sequence[DailyPoint],
    index: int,
    point: DailyPoint,
    replaced: DailyPoint | None,
    now: int | None,
    params: DetectorParams,
) -> list[Detection]:
    if index == 0:
        new = None if replaced is not None else detect_new(points, index, now, params)
        return [] if new is None else [new]
    before = points[index - 1]
    gone = _gone(before, point, params)
    if gone is not None:
        if replaced is not None:
            shown = _gone(before, replaced, params)
            if shown is not None and shown.details["reason"] == gone.details["reason"]:
                return []
        return [gone]
    out = []
    audience = _audience(points, index - 1, before, point, params)
    if audience is None and index >= 2:
        audience = _split(points, index, before, point, params)
    if audience is not None:
        shown = None if replaced is None else _audience(points, index - 1, before, replaced, params)
        if shown is None or shown.type != audience.type:
            out.append(audience)
    dormant = detect_dormant(points, index, params, point)
    if dormant is not None and not (
        replaced is not None and replaced.status == _ACTIVE and replaced.posts_30d == 0
    ):
        out.append(dormant)
    return out
