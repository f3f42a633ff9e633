"""How fast can a Faust agent that does nothing read the snapshots topic? Prints figures only.

The scoring bench's ratio target compares the worker with a bare aiokafka consumer that decodes
nothing. This bench measures the floor that Faust itself sets under any Faust worker: an agent that
takes its records in batches (``take_events``, as the worker does) and drops them. The same topic is
read by:

* **a bare aiokafka consumer** (the baseline, as in ``bench/scoring.py``);
* **plain Faust**: faust-streaming as installed, asyncio's loop, the "raw" serializer;
* **Faust as the worker runs it**: uvloop, the worker's collector tuning, ``services.scoring.faust_patches``,
  the ``RawRecords`` schema, the worker's buffer and commit sizes (``bench/scoring.py`` measures this
  floor beside the worker, in the same run).

Each Faust agent runs in a process of its own (``bench/_floors.py``). Rates count from the first batch
to the last record. The records are one simulator tick of snapshots (``--scale 9.4``: ~300,000
accounts), as the scoring bench publishes them.

Uses the broker named by BAROMETRE_BENCH_KAFKA, or starts its own. Usage:
`python bench/faust_floor.py [--scale 9.4] [--partitions 12]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import uuid
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._floors import bare_read, faust_floor, publish

KAFKA_PORT, KAFKA_CONTROLLER_PORT = 19620, 19621
RATIO_TARGET = 0.25


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=9.4, help="simulator scale (9.4: ~300,000 accounts)")
    parser.add_argument("--partitions", type=int, default=12)
    args = parser.parse_args()

    from kafka.admin import KafkaAdminClient

    from infra.kafka import KafkaCluster, ensure_jars
    from services.common.kafka import ensure_topics
    from services.common.names import Topic
    from services.common.reference import load_entities
    from services.common.settings import Settings
    from services.ingest.publisher import Publisher
    from services.ingest.sources.simulator import Simulator, SimulatorParams

    with ExitStack() as stack:
        bootstrap = os.environ.get("BAROMETRE_BENCH_KAFKA")
        if not bootstrap:
            ensure_jars()
            tmp = Path(tempfile.mkdtemp(prefix="bench-faust-floor-"))
            cluster = KafkaCluster(tmp / "kafka", port=KAFKA_PORT, controller_port=KAFKA_CONTROLLER_PORT)
            cluster.start()
            stack.callback(cluster.stop)
            bootstrap = cluster.bootstrap_servers
        settings = Settings(
            kafka_bootstrap=bootstrap,
            kafka_topic_prefix=f"benchfloor{uuid.uuid4().hex[:6]}.",
            kafka_partitions=args.partitions,
        )
        topic = settings.topic(Topic.ACCOUNT_SNAPSHOTS)
        ensure_topics(settings, [Topic.ACCOUNT_SNAPSHOTS])
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        stack.callback(admin.close)
        # the snapshots topic and Faust's leader topics of the agents below, all under the prefix
        stack.callback(
            lambda: admin.delete_topics(
                [t for t in admin.list_topics() if t.startswith(settings.kafka_topic_prefix)]
            )
        )

        at = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
        params = replace(SimulatorParams(), scale=args.scale)
        sim = Simulator(load_entities(), params=params, seed=0, origin=at - timedelta(days=2))
        records = [r for chunk in sim.observe(at).iter_records() for r in chunk]
        publisher = Publisher(settings, client_id="bench-faust-floor")
        ends = publish(publisher, records)
        publisher.close()
        print(f"published {len(records):,} snapshot records on {args.partitions} partitions", flush=True)

        n, secs, _ = asyncio.run(bare_read(bootstrap, topic, {}, ends))
        base = n / max(secs, 1e-9)  # at a small --scale, all in the first batch: no figure
        print(f"bare aiokafka consumer (baseline): {base:>9,.0f} events/s", flush=True)
        for variant, title in (
            ("plain", "plain Faust, no-op agent"),
            ("worker", "Faust as the worker runs it, no-op"),
        ):
            group = f"{settings.kafka_topic_prefix}faust-floor-{variant}"
            rate, cpu = faust_floor(variant, bootstrap, group, topic, {}, ends)
            print(
                f"{title + ':':<36}{rate:>9,.0f} events/s  ratio {rate / base:.3f}  "
                f"CPU {1e6 * cpu:.0f} µs an event",
                flush=True,
            )
        print(
            f"a ratio of {RATIO_TARGET} is {RATIO_TARGET * base:,.0f} events/s; above, the most a Faust "
            "agent reaches here before it parses or scores anything"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
