"""How good are the alerts? Precision, recall, F1 and delay by anomaly type and size, false alerts on
clean series, and platform-wide purges; prints the targets of the alerts issue as met or MISSED.

The pure path only (``bench/_alerts_evaluation.py``): seeded, labelled series delivered in
arrival order to ``AccountSeries.add`` → ``detect_point`` → ``NoiseControl``, as the worker does.
Sizes are multiples of the account's typical daily change (expected daily follows + unfollows);
recall is on anomalies above the reporting floor (``min_change`` and ``min_change_share``), with the
recall on all of them beside it. Delays are in snapshot intervals (1 = detected by the next snapshot).

    .venv/bin/python bench/alerts_eval.py [--seed 0] [--n 300] [--clean 1000] [--purge-accounts 1500]

With ``--buckets``, the spike and drop cells and clean series per audience bucket (<100, 100-1k,
1k-10k, 10k-100k, >=100k followers; ``bench/_alerts_buckets.py``), with the former fixed floor of 50
followers beside (``--n`` series per cell, ``--clean`` clean series per bucket).

With ``--pipeline``, the same series go through the real pipeline instead (``bench/_alerts_pipeline.py``:
Kafka, a scoring worker process with its noise-control stage, ClickHouse, ``alerts.v1``), scored the
same way; the purges stay on the pure path (the worker's grouping is tested in
``tests/integration/scoring/test_alerts.py``). It starts its own Kafka broker and ClickHouse endpoint
(or uses BAROMETRE_BENCH_KAFKA / BAROMETRE_BENCH_CLICKHOUSE).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
import timeit
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._alerts_evaluation import (
    SIZES,
    CellResult,
    Kind,
    LabelledSeries,
    Report,
    evaluate,
    generate,
    score_cell,
)
from services.scoring.alerts import Candidate, NoiseControl, detect_point, detect_silence
from services.scoring.alerts.detection import HOUR_MS
from services.scoring.maths import DAY_MS, AccountSeries, DailyPoint

ACCOUNT = "facebook:villedegrenoble"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_report(report: Report, elapsed: float) -> bool:
    """Print every figure; whether every target was met."""
    header = (
        f"{'cell':<14}{'series':>7}{'events':>7}{'report.':>8}{'TP':>6}{'FP':>5}"
        f"{'prec.':>7}{'recall':>7}{'F1':>7}{'rec.all':>8}{'delay p50':>10}{'p95':>6}{'max':>6}"
        f"{'max d':>7}{'FP/1000d':>9}"
    )
    print(header)
    print("-" * len(header))
    rows: list[CellResult] = [*report.cells, report.clean, report.history]
    for c in rows:
        precision = c.precision if c.truths else None  # a clean cell has false alerts only
        print(
            f"{c.name:<14}{c.series:>7}{c.truths:>7}{c.reportable:>8}{c.tp:>6}{c.fp:>5}"
            f"{_fmt(precision):>7}{_fmt(c.recall):>7}{_fmt(c.f1):>7}{_fmt(c.recall_all):>8}"
            f"{_fmt(c.delay(0.5), 2):>10}{_fmt(c.delay(0.95), 2):>6}{_fmt(c.delay(1.0), 2):>6}"
            f"{_fmt(c.delay_days(1.0), 2):>7}{c.false_per_1000:>9.3f}"
        )
        if c.fp_types:
            print(f"{'':<14}false alerts by type: {dict(sorted(c.fp_types.items()))}")
    print()
    for purge in report.purges:
        print(
            f"purge, {purge.name}: {purge.accounts} accounts, {purge.hit} hit, {purge.detected} drops "
            f"detected; {len(purge.incidents)} incident(s); {purge.inhibited} per-account alerts inhibited, "
            f"{purge.emitted_drops} sent before the incident formed; {purge.other_alerts} other alerts"
        )
        for incident in purge.incidents:
            print(
                f"    incident {incident.incident_id[:8]} {incident.type.value} on {incident.platform}: "
                f"{len(incident.members)} accounts (threshold {incident.threshold}), "
                f"{incident.severity.value}, total change {incident.total_change:,.0f} followers"
            )
    print()
    ok = True
    for target, measured, met in report.targets():
        ok &= met
        print(f"{'met   ' if met else 'MISSED'}  {target}: {measured}")
    print(f"\n{elapsed:.1f} s")
    return ok


def per_event_costs() -> list[tuple[str, float]]:
    """Microseconds per call of the worker's calls on a 420-day AccountSeries (the hot path)."""
    rng = random.Random(0)
    series = AccountSeries(ACCOUNT)
    followers = 50_000.0
    for day in range(420):
        followers += 20 + rng.gauss(0, 5)
        series.add(
            DailyPoint.with_derived_id(
                ACCOUNT, (19_000 + day) * DAY_MS + 9 * HOUR_MS, round(followers), posts_30d=12
            )
        )
    latest = series[-1]
    spike = DailyPoint.with_derived_id(
        ACCOUNT, latest.observed_at + DAY_MS, latest.followers + 5_000, posts_30d=12
    )
    spiked = AccountSeries.from_points(ACCOUNT, [*series, spike])
    late = series[-2]
    control = NoiseControl()
    nothing: list[Candidate] = []
    cases: list[tuple[str, Callable[[], object]]] = [
        ("detect_point, an ordinary day (the common case)", lambda: detect_point(series, latest)),
        ("detect_point, a spike (baseline built)", lambda: detect_point(spiked, spike)),
        ("detect_point, a late point (both halves judged)", lambda: detect_point(series, late)),
        ("detect_silence", lambda: detect_silence(series, latest.observed_at + DAY_MS)),
        ("NoiseControl.process, no candidate", lambda: control.process(latest.observed_at, nothing)),
    ]
    out = []
    for name, call in cases:
        number = 200 if "spike" in name or "late" in name else 20_000
        out.append((name, timeit.timeit(call, number=number) / number * 1e6))
    return out


PIPELINE_KAFKA_PORT, PIPELINE_CONTROLLER_PORT, PIPELINE_CH_PORT, PIPELINE_WORKER_PORT = (
    19692,
    19693,
    18292,
    18293,
)


def evaluate_pipeline(seed: int, n: int, clean: int, timeout: float) -> Report:
    """The cells of :func:`evaluate` (without the purges) through the real pipeline."""
    from bench import _alerts_pipeline as pipeline
    from bench._servers import bench_servers
    from services.common.settings import Settings

    cells: list[tuple[str, Kind | None, float | None, list[LabelledSeries]]] = []
    cell = 0
    for kind in (Kind.SPIKE, Kind.DROP):
        for k in SIZES:
            cell += 1
            cells.append((f"{kind.value} {k:g}x", kind, k, generate(seed, cell, n, kind, k)))
    for kind in (Kind.DELETED, Kind.SUSPENDED, Kind.COLLAPSE, Kind.SILENT, Kind.NEW, Kind.DORMANT):
        cell += 1
        days = 200 if kind is Kind.DORMANT else 160
        cells.append((kind.value, kind, None, generate(seed, cell, n, kind, days=days)))
    cells.append(("clean", None, None, generate(seed, 100, clean, None)))
    cells.append(("history", None, None, generate(seed, 101, max(n // 3, 1), Kind.SPIKE, 10.0, history=True)))
    # One platform per cell within a round (noise control is per platform).
    platforms = pipeline.PLATFORMS
    moved = [
        (name, kind, k, [pipeline.on_platform(s, platforms[i % len(platforms)]) for s in population])
        for i, (name, kind, k, population) in enumerate(cells)
    ]
    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
        stack.callback(shutil.rmtree, tmp, True)
        kafka, ch = bench_servers(stack, tmp, PIPELINE_KAFKA_PORT, PIPELINE_CH_PORT, PIPELINE_CONTROLLER_PORT)
        settings = Settings(
            kafka_bootstrap=kafka,
            clickhouse_url=ch,
            clickhouse_database=f"bench_alerts_{uuid.uuid4().hex[:8]}",
            data_dir=tmp / "data",
        )
        pipeline.prepare(settings)
        results: dict[str, list[pipeline.Published]] = {}
        rounds = pipeline.Round(settings, tmp, PIPELINE_WORKER_PORT)
        for start in range(0, len(moved), len(platforms)):
            batch = moved[start : start + len(platforms)]
            print(f"  pipeline round: {', '.join(name for name, *_ in batch)}…", file=sys.stderr)
            results.update(rounds.run([population for *_, population in batch], timeout))
    scored = [
        score_cell(name, kind, k, population, runner=lambda s: results.get(s.account_id, []))
        for name, kind, k, population in moved
    ]
    return Report(scored[:-2], scored[-2], scored[-1], [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=300, help="series per cell")
    parser.add_argument("--clean", type=int, default=1000, help="clean series")
    parser.add_argument("--purge-accounts", type=int, default=1500)
    parser.add_argument("--pipeline", action="store_true", help="through Kafka, the worker and ClickHouse")
    parser.add_argument("--timeout", type=float, default=1800.0, help="longest wait for the worker (s)")
    parser.add_argument(
        "--buckets", action="store_true", help="spikes, drops and clean series by audience size"
    )
    args = parser.parse_args()
    start = time.perf_counter()
    if args.buckets:
        from bench._alerts_buckets import FORMER_FLOOR, evaluate_buckets, print_buckets

        def say(name: str) -> None:
            print(f"  {name}…", file=sys.stderr)

        results = evaluate_buckets(args.seed, args.n, args.clean, progress=say)
        former = evaluate_buckets(args.seed, args.n, args.clean, params=FORMER_FLOOR, progress=say)
        ok = print_buckets(results, former)
        print(f"\n{time.perf_counter() - start:.1f} s")
        if not ok:
            print("\nsome targets MISSED")
        return
    if args.pipeline:
        report = evaluate_pipeline(args.seed, args.n, args.clean, args.timeout)
        print("through the real pipeline (Kafka, scoring worker, noise-control stage, ClickHouse, alerts.v1)")
        ok = print_report(report, time.perf_counter() - start)
        if not ok:
            print("\nsome targets MISSED")
        return
    report = evaluate(
        args.seed,
        args.n,
        args.clean,
        purge_accounts=args.purge_accounts,
        progress=lambda name: print(f"  {name}…", file=sys.stderr),
    )
    ok = print_report(report, time.perf_counter() - start)
    print("\nper call (µs):")
    for name, micros in per_event_costs():
        print(f"  {micros:8.1f}  {name}")
    if not ok:
        print("\nsome targets MISSED")


if __name__ == "__main__":
    main()
