"""What a minimum base does to relative rankings, on the simulator (docs/SCORING.md, "Minimum base").

Every collectivité of the reference registry in the simulator (seed 0), Facebook communes: followers
summed by entity at day 60 and day 90 (``Simulator.observe``, no Kafka, no ClickHouse), then the top of
``growth_pct`` over those 30 days with no minimum, with audience and population minimums, and with a
shrinkage towards the median growth instead; the top of ``per_1000_inhabitants`` with and without the
population minimum.

    .venv/bin/python bench/ranking_base.py [--seed 0] [--top 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.common.reference import entities_by_id
from services.ingest.sources.simulator import Simulator

Row = tuple[float, str, int, int, int | None]  # value, entity_id, followers before, now, population


def commune_followers(sim: Simulator, day: int) -> dict[str, int]:
    """Followers of each commune's active Facebook accounts, summed, at noon of ``day``."""
    owner = {a.account_id: a.entity_id for a in sim.accounts()}
    ids = sim.account_ids
    batch = sim.observe(sim.origin + timedelta(days=day, hours=12))
    out: dict[str, int] = {}
    for i, followers, status in zip(batch.index, batch.followers, batch.status, strict=True):
        account = ids[int(i)]
        entity = owner[account]
        if account.startswith("facebook:") and int(status) == 0 and entity.startswith("COM:"):
            out[entity] = out.get(entity, 0) + int(followers)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()
    entities = entities_by_id()
    sim = Simulator(list(entities.values()), seed=args.seed)
    before, now = commune_followers(sim, 60), commune_followers(sim, 90)
    rows: list[Row] = sorted(
        (
            (100 * (f1 - f0) / f0, e, f0, f1, entities[e].population)
            for e, f1 in now.items()
            if (f0 := before.get(e, 0))
        ),
        reverse=True,
    )

    def show(title: str, ranked: list[Row], unit: str = "%") -> None:
        print(f"\n{title}: {len(ranked):,} ranked")
        for value, e, f0, f1, population in ranked[: args.top]:
            print(
                f"  {value:+10.1f} {unit}  {entities[e].name:<30} {f0:>8,} -> {f1:>8,}  "
                f"population {population}"
            )

    show("growth_pct, no minimum", rows)
    for followers, population in ((100, 0), (1_000, 0), (1_000, 2_000), (0, 2_000)):
        kept = [r for r in rows if r[2] >= followers and (r[4] is None or r[4] >= population)]
        show(f"growth_pct, >= {followers:,} followers and >= {population:,} inhabitants", kept)
    median = statistics.median(r[0] / 100 for r in rows)
    for k in (100, 1_000):
        shrunk = sorted(
            ((100 * (f1 - f0 + k * median) / (f0 + k), e, f0, f1, p) for _, e, f0, f1, p in rows),
            reverse=True,
        )
        show(f"growth_pct shrunk towards the median ({100 * median:.2f} %), k = {k:,}", shrunk)
    per = sorted(
        ((1000 * f / p, e, 0, f, p) for e, f in now.items() if (p := entities[e].population)), reverse=True
    )
    show("per_1000_inhabitants, no minimum", per, "‰")
    show("per_1000_inhabitants, >= 2,000 inhabitants", [r for r in per if (r[4] or 0) >= 2_000], "‰")


if __name__ == "__main__":
    main()
