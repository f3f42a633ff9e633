"""How fast and how big is the simulator at 300,000 accounts? Prints figures, passes or fails nothing.

One tick = one observation of every visible account, turned into Kafka (key, value) records. Measured:
- the fast path (``Batch.iter_records``: numpy state, event bytes written directly), with and without
  the day step that precedes a daily tick; the full list at once (``Batch.records``); plain dicts;
- the baseline: the same tick as pydantic models (``AccountSnapshot.model_validate`` then
  ``to_event_bytes``), and the ratio;
- memory: the process's resident set (VmRSS, and its peak VmHWM, reset before the ticks where the kernel
  allows it) — interpreter, numpy, pydantic and the entity registry included.

Targets from the brief: a tick of 300,000 accounts in under 1 s, under 300 MB.

    .venv/bin/python bench/simulator.py [--accounts 300000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta
from pathlib import Path

from services.common.reference import load_entities
from services.ingest.sources.simulator import DEFAULT_ORIGIN, Simulator, SimulatorParams


def memory() -> dict[str, float]:
    """VmRSS and VmHWM of this process, in MB (Linux)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so that a later peak is the ticks' own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def timed(label: str, seconds: float, note: str = "") -> None:
    print(f"  {label:<52} {seconds:8.3f} s  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=300_000, help="visible accounts to aim for")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    entities = load_entities()
    base = memory()
    print(f"entities: {len(entities)}; process before the simulator: {base['VmRSS']:.0f} MB")

    start = time.perf_counter()
    realistic = Simulator(entities, seed=args.seed)
    built = time.perf_counter() - start
    tick = realistic.observe(DEFAULT_ORIGIN)
    start = time.perf_counter()
    sent = sum(len(chunk) for chunk in realistic.observe(DEFAULT_ORIGIN + timedelta(days=1)).iter_records())
    daily = time.perf_counter() - start
    print(f"\nscale 1 (what `barometre run` feeds): {len(tick)} visible accounts of {realistic.n_accounts}")
    timed("build", built)
    timed("daily tick: day step + records", daily, f"{sent} records")

    scale = args.accounts / len(tick)
    del realistic, tick
    start = time.perf_counter()
    sim = Simulator(entities, SimulatorParams(scale=scale), seed=args.seed)
    built = time.perf_counter() - start
    after_build = memory()
    print(f"\nscale {scale:.2f}: {sim.n_accounts} accounts in the registry")
    timed("build", built, f"RSS {after_build['VmRSS']:.0f} MB (peak {after_build['VmHWM']:.0f} MB)")
    peak_reset = reset_peak()

    fast = []
    for day in range(1, 4):
        t = DEFAULT_ORIGIN + timedelta(days=day)
        start = time.perf_counter()
        batch = sim.observe(t)
        observed = time.perf_counter() - start
        records = 0
        for chunk in batch.iter_records(chunk_size=10_000):
            records += len(chunk)  # a producer would send the chunk here
        total = time.perf_counter() - start
        fast.append(total)
        timed(f"daily tick {day}: day step + observe", observed, f"{len(batch)} accounts")
        timed(f"daily tick {day}: + records in chunks of 10,000", total, f"{records} records")
    start = time.perf_counter()
    batch = sim.observe(DEFAULT_ORIGIN + timedelta(days=3, hours=6))
    for _ in batch.iter_records():
        pass
    timed("hourly tick within a day (no day step) + records", time.perf_counter() - start)
    ticks = memory()
    peak_note = "since the ticks began" if peak_reset else "since the process began"
    print(f"  memory: RSS {ticks['VmRSS']:.0f} MB, peak {ticks['VmHWM']:.0f} MB ({peak_note})")

    start = time.perf_counter()
    everything = batch.records()
    timed("the whole tick as one list (Batch.records)", time.perf_counter() - start)
    print(f"  memory holding it: RSS {memory()['VmRSS']:.0f} MB")
    del everything
    start = time.perf_counter()
    rows = batch.dicts()
    timed("plain dicts (Batch.dicts)", time.perf_counter() - start)
    del rows

    start = time.perf_counter()
    baseline = [model.to_event_bytes() for model in batch.models()]
    pydantic = time.perf_counter() - start
    timed("baseline: pydantic models + to_event_bytes", pydantic, f"{len(baseline)} events")
    del baseline
    best = min(fast)
    print(f"\nfast path: {best:.3f} s a daily tick, {pydantic / best:.1f} times faster than pydantic")
    print(f"peak RSS during the ticks: {ticks['VmHWM']:.0f} MB")


if __name__ == "__main__":
    main()
