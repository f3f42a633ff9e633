"""The pure half of bench/soak.py: the samples it takes, the trends it computes and its verdict.

No broker, no process, no clock: ``judge`` reads what the run measured and says, check by check, whether
the pipeline held (``tests/unit/test_soak.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# Services whose memory must stay flat. Kafka's JVM fills its heap by design and the ClickHouse endpoint
# keeps caches: their RSS is printed beside, not judged.
JUDGED = ("ingest", "scoring")


@dataclass
class Sample:
    """What the soak saw at one moment of the steady phase."""

    t: float  # seconds since the steady phase began
    sent: int  # valid snapshots sent over HTTP so far (this phase and the preload)
    accepted: int  # snapshots acknowledged by ingest (answered 200, counted in "accepted")
    rejected: int  # snapshots ingest refused
    raw: int  # bad records written straight to the topic and acknowledged by Kafka
    produced: int  # records on the snapshots topic (sum of its end offsets)
    committed: int  # records the scoring group has committed
    lag: int  # produced - committed
    stored: int  # rows in ClickHouse's snapshots table (count())
    dead_letters: int  # records on the dead-letter topic (sum of its end offsets)
    behind_s: float  # how far the senders are behind their schedule
    rss_mb: dict[str, float] = field(default_factory=dict)  # resident set per process (tree), MB
    cpu_cores: dict[str, float] = field(default_factory=dict)  # CPU since the previous sample, in cores
    machine_busy: float = 0.0  # cores busy machine-wide since the previous sample
    load1: float = 0.0  # the machine's 1-minute load average


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Totals:
    """Counts at the end, after the worker drained."""

    accepted: int  # acknowledged by ingest, over the whole run (preload included)
    raw: int  # bad records acknowledged by Kafka
    stored_distinct: int  # distinct event ids in ClickHouse's snapshots table
    stored_rows: int  # rows in it (more than distinct only while a replayed insert is not merged)
    dead_letters: int  # distinct source records (partition, offset) on the dead-letter topic
    dead_letter_records: int  # records on the dead-letter topic
    dead_letter_codes: dict[str, int]  # by error code
    raw_codes: dict[str, int]  # the codes the bad records sent must get
    invalid_sent: int  # invalid snapshots sent over HTTP
    rejected: int  # snapshots ingest refused
    unexpected_rejections: int  # valid snapshots refused
    failed_requests: int  # requests given up after retries
    drained: bool  # lag reached 0 and the stored count settled before the drain timeout
    drain_s: float  # seconds from the end of sending until drained


@dataclass(frozen=True)
class Limits:
    """The verdict's bounds."""

    rate: float  # snapshots/s asked for
    warm_up_s: float  # samples before this are left out of the trends
    window_s: float  # the first and the last windows compared
    rss_growth: float = 0.10  # at most this fraction more RSS in the last window than in the first
    lag_bound_s: float = 5.0  # the last window's mean lag at most this many seconds of traffic more
    rate_share: float = 0.95  # the HTTP rate achieved at least this share of the one asked for


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` against ``xs`` (0 with fewer than two distinct xs)."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def windows(samples: Sequence[Sample], limits: Limits) -> tuple[list[Sample], list[Sample]]:
    """The samples of the first window after the warm-up and of the last window of the run; each
    holds at least 3 samples when there are that many after the warm-up (else all of them)."""
    steady = [s for s in samples if s.t >= limits.warm_up_s]
    if not steady:
        return [], []
    first = [s for s in steady if s.t < steady[0].t + limits.window_s]
    last = [s for s in steady if s.t > steady[-1].t - limits.window_s]
    k = min(3, len(steady))
    if len(first) < k:
        first = steady[:k]
    if len(last) < k:
        last = steady[-k:]
    return first, last


def _mean(samples: Sequence[Sample], value: Callable[[Sample], float]) -> float:
    return sum(value(s) for s in samples) / len(samples) if samples else 0.0


def trend(
    samples: Sequence[Sample], limits: Limits, value: Callable[[Sample], float]
) -> tuple[float, float, float]:
    """(mean of the first window, mean of the last window, slope per hour) of ``value`` after warm-up."""
    first, last = windows(samples, limits)
    steady = [s for s in samples if s.t >= limits.warm_up_s]
    per_s = slope([s.t for s in steady], [value(s) for s in steady])
    return _mean(first, value), _mean(last, value), per_s * 3600


def rss_of(name: str) -> Callable[[Sample], float]:
    return lambda s: s.rss_mb[name]


def judge(
    samples: Sequence[Sample], totals: Totals, limits: Limits, steady_s: float, steady_accepted: int
) -> list[Check]:
    """Every check of the soak; it passed when all are ``ok``."""
    checks: list[Check] = []
    produced = totals.accepted + totals.raw
    accounted = totals.stored_distinct + totals.dead_letters
    checks.append(
        Check(
            "produced = stored + dead letters",
            totals.drained and produced == accounted,
            f"{produced:,} produced ({totals.accepted:,} acknowledged by ingest + {totals.raw:,} bad records "
            f"written to the topic) vs {accounted:,} accounted for ({totals.stored_distinct:,} stored + "
            f"{totals.dead_letters:,} dead letters), difference {produced - accounted:+,}"
            + ("" if totals.drained else " (NOT drained)"),
        )
    )
    checks.append(
        Check(
            "every acknowledged snapshot stored, once",
            totals.stored_distinct == totals.accepted,
            f"{totals.stored_distinct:,} distinct event ids stored of {totals.accepted:,} acknowledged; "
            f"{totals.stored_rows:,} rows",
        )
    )
    checks.append(
        Check(
            "every bad record dead-lettered with its reason",
            totals.dead_letters == totals.raw and totals.dead_letter_codes == totals.raw_codes,
            f"{totals.dead_letters:,} dead letters ({totals.dead_letter_records:,} records) of "
            f"{totals.raw:,} bad records; codes {dict(sorted(totals.dead_letter_codes.items()))} "
            f"expected {dict(sorted(totals.raw_codes.items()))}",
        )
    )
    checks.append(
        Check(
            "ingest refused exactly the invalid snapshots",
            totals.rejected == totals.invalid_sent and totals.unexpected_rejections == 0,
            f"{totals.rejected:,} refused, {totals.invalid_sent:,} invalid sent, "
            f"{totals.unexpected_rejections:,} valid ones refused",
        )
    )
    checks.append(
        Check(
            "every request answered",
            totals.failed_requests == 0,
            f"{totals.failed_requests:,} requests given up after retries",
        )
    )
    achieved = steady_accepted / steady_s if steady_s > 0 else 0.0
    checks.append(
        Check(
            f"rate sustained (>= {limits.rate_share:.0%} of {limits.rate:,.0f}/s)",
            achieved >= limits.rate_share * limits.rate,
            f"{achieved:,.0f} snapshots/s acknowledged over {steady_s:,.0f} s",
        )
    )
    checks.append(
        Check(
            "drained",
            totals.drained,
            f"lag 0 and every row stored {totals.drain_s:.0f} s after the last request",
        )
    )
    first, last, per_hour = trend(samples, limits, lambda s: float(s.lag))
    bound = limits.lag_bound_s * limits.rate
    peak = max((s.lag for s in samples if s.t >= limits.warm_up_s), default=0)
    checks.append(
        Check(
            "lag flat",
            bool(samples) and last <= first + bound,
            f"mean lag {first:,.0f} after warm-up, {last:,.0f} at the end (bound +{bound:,.0f}); "
            f"slope {per_hour:+,.0f} records/h; peak {peak:,}",
        )
    )
    for name in JUDGED:
        have = [s for s in samples if name in s.rss_mb]
        first, last, per_hour = trend(have, limits, rss_of(name))
        growth = (last - first) / first if first else float("inf")
        checks.append(
            Check(
                f"{name} memory flat (<= {limits.rss_growth:+.0%})",
                bool(have) and growth <= limits.rss_growth,
                f"RSS {first:,.0f} MB after warm-up, {last:,.0f} MB at the end ({growth:+.1%}); "
                f"slope {per_hour:+,.1f} MB/h",
            )
        )
    return checks
