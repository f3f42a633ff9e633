"""How much CPU does the scoring worker's ``Processor.process`` spend per event? Prints figures only.

Realistic snapshots from the simulator (``Simulator(load_entities(), ...)``, as ``bench/scoring.py``
builds a tick) go through a ``Processor`` set up as the live worker's: ``Settings()`` defaults, the
alert detectors on, ``received`` timestamps (30 s after each observation), a plain dict of states, batches
of 10,000 events. Three cases, CPU time (``time.process_time``) per event, the best of ``--repeat``
runs (each run processes the same batches from the same states):

* **first sight**: one tick of every account, none of them known (``states`` empty: a fresh start);
* **steady, ~60 points** and **steady, ~400 points**: every account has a stored state holding the
  daily points of the previous 60 (400) days of the simulated world, and one new snapshot each (the
  next day's tick). The states are built once, from the simulator's columns, without the processor.

The baseline, in the same process: parsing the same snapshots (``AccountSnapshot.from_event_bytes``),
which the worker does for every event too; the ratio process/parse is steadier than the raw figure on
a shared machine. ``--against REV`` also runs this bench on the code of git revision ``REV`` (its
``services`` package, extracted to a temporary directory with a copy of this script) in a child
process, before the working tree's run, and prints the speed-up of the working tree over it.

Uses one core. Usage: `python bench/processor.py [--scale 0.6] [--history-scale 0.1] [--repeat 3]
[--against 73ab69e]`.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.common.events import AccountSnapshot
from services.common.names import AccountStatus
from services.common.reference import load_entities
from services.common.settings import Settings
from services.ingest.sources.simulator import Simulator, SimulatorParams
from services.scoring.__main__ import GC_YOUNG_THRESHOLD  # the worker's collector setting
from services.scoring.maths import AccountSeries, DailyPoint, intervals_from_points, to_ms
from services.scoring.processor import AccountState, Processor, detector_params

ROOT = Path(__file__).resolve().parents[1]
BATCH = 10_000
TICK = datetime(2026, 6, 1, 9, tzinfo=UTC)  # the new snapshots; history ticks are at 09:00 the days before
RECEIVED_AFTER_MS = 30_000

Records = list[tuple[bytes, bytes]]
States = dict[bytes, bytes | None]


def tick_records(scale: float, at: datetime, origin: datetime) -> Records:
    sim = Simulator(load_entities(), params=replace(SimulatorParams(), scale=scale), seed=0, origin=origin)
    return [record for chunk in sim.observe(at).iter_records() for record in chunk]


def history_states(scale: float, days: int, settings: Settings) -> tuple[States, Records]:
    """The stored state of every account after ``days`` daily ticks, and the next day's records."""
    origin = TICK - timedelta(days=days + 400)  # accounts of all ages, some created during the history
    sim = Simulator(load_entities(), params=replace(SimulatorParams(), scale=scale), seed=0, origin=origin)
    staleness_ms = settings.staleness_days * 86_400_000
    points: dict[str, list[DailyPoint]] = {}
    for k in range(days, 0, -1):
        batch = sim.observe(TICK - timedelta(days=k))
        at = to_ms(batch.t)
        for row in batch.dicts():
            points.setdefault(row["account_id"], []).append(
                DailyPoint.with_derived_id(
                    row["account_id"],
                    at,
                    row["followers"],
                    AccountStatus(row["status"]),
                    row.get("posts_30d"),
                    row.get("interactions_30d"),
                    row.get("replies_30d"),
                    row.get("automated_posts_30d"),
                )
            )
    records = [record for chunk in sim.observe(TICK).iter_records() for record in chunk]
    states: States = {}
    for key, value in records:
        account_id = key.decode()
        history = points.get(account_id)
        if not history:
            continue  # a new account: first sight
        snapshot = AccountSnapshot.from_event_bytes(value)
        series = AccountSeries.from_points(account_id, history)
        state = AccountState(
            snapshot.entity_id or "",
            snapshot.handle,
            history[0].observed_at,
            series,
            intervals_from_points(series.points, staleness_ms),
        )
        states[key] = state.to_bytes()
    return states, records


def batches(records: Records) -> list[tuple[list[AccountSnapshot], dict[str, int]]]:
    out = []
    for lo in range(0, len(records), BATCH):
        snapshots = [AccountSnapshot.from_event_bytes(value) for _, value in records[lo : lo + BATCH]]
        received = {s.event_id: to_ms(s.observed_at) + RECEIVED_AFTER_MS for s in snapshots}
        out.append((snapshots, received))
    return out


def best_cpu(run: Callable[[], object], repeat: int) -> float:
    """The least CPU seconds of ``repeat`` runs (a collection before each, none counted)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best


def measure(records: Records, states: States, repeat: int) -> dict[str, float]:
    """µs per event of parsing the records and of processing them (a fresh Processor each run)."""
    settings = Settings()
    prepared = batches(records)
    n = len(records)

    def parse() -> None:
        for _, value in records:
            AccountSnapshot.from_event_bytes(value)

    def process() -> None:
        processor = Processor(settings, fetch_history=lambda ids: {}, alerts=detector_params(settings))
        for snapshots, received in prepared:
            processor.process(snapshots, states, received)

    gc.freeze()  # as the worker does with what it holds from start-up
    try:
        return {
            "events": n,
            "parse_us": best_cpu(parse, repeat) / n * 1e6,
            "process_us": best_cpu(process, repeat) / n * 1e6,
        }
    finally:
        gc.unfreeze()


def run_cases(scale: float, history_scale: float, repeat: int) -> dict[str, dict[str, float]]:
    settings = Settings()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    out: dict[str, dict[str, float]] = {}
    first = tick_records(scale, TICK, TICK - timedelta(days=2000))
    out["first sight"] = measure(first, {}, repeat)
    del first
    for days in (60, 400):
        states, records = history_states(history_scale, days, settings)
        known = [(k, v) for k, v in records if k in states]
        figures = measure(known, states, repeat)
        figures["points"] = sum(
            len(AccountState.from_bytes(v).series) for v in states.values() if v is not None
        ) / max(len(states), 1)
        out[f"steady, {days} days"] = figures
    return out


def against(rev: str, argv: Sequence[str]) -> dict[str, dict[str, float]]:
    """This bench's figures for the code of git revision ``rev``, measured in a child process."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "services"], check=True, capture_output=True
    ).stdout
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        # This very script, run from beside that tree: it imports the services package found there.
        script = Path(tmp, "bench", "processor.py")
        script.parent.mkdir()
        shutil.copy(__file__, script)
        done = subprocess.run(
            [sys.executable, str(script), "--json", *argv], check=True, capture_output=True, text=True
        )
    figures: dict[str, dict[str, float]] = json.loads(done.stdout)
    return figures


def report(title: str, figures: dict[str, dict[str, float]]) -> None:
    print(title)
    for case, f in figures.items():
        points = f" (~{f['points']:.0f} points a state)" if "points" in f else ""
        print(
            f"  {case:<18} {f['process_us']:7.1f} µs/event processed, {f['parse_us']:5.1f} µs parsed, "
            f"process/parse {f['process_us'] / f['parse_us']:5.2f}  [{f['events']:,.0f} events{points}]"
        )


def main(args: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.6, help="first sight: ~32,000 accounts per 1.0")
    parser.add_argument("--history-scale", type=float, default=0.1, help="steady state: accounts")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--against", metavar="REV", help="also measure the code of this git revision")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    ns = parser.parse_args(list(args) if args is not None else None)
    shared = ["--scale", str(ns.scale), "--history-scale", str(ns.history_scale), "--repeat", str(ns.repeat)]
    if ns.json:
        print(json.dumps(run_cases(ns.scale, ns.history_scale, ns.repeat)))
        return
    base = against(ns.against, shared) if ns.against else None
    current = run_cases(ns.scale, ns.history_scale, ns.repeat)
    report("working tree:", current)
    if base is not None:
        report(f"{ns.against}:", base)
        print("speed-up of process() over", ns.against)
        for case, f in current.items():
            b = base[case]
            print(
                f"  {case:<18} x{b['process_us'] / f['process_us']:.2f} "
                f"(per parse: x{(b['process_us'] / b['parse_us']) / (f['process_us'] / f['parse_us']):.2f})"
            )


if __name__ == "__main__":
    main()
