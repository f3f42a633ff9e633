"""How fast can a Faust agent that does nothing read the snapshots topic? Prints figures only.

The scoring bench's ratio target compares the worker with a bare aiokafka consumer that decodes
nothing. This bench measures the floor that Faust itself sets under any Faust worker: an agent that
takes its records in batches (``take_events``, as the worker does) and drops them. The same topic is
read by:

* **a bare aiokafka consumer** (the baseline, as in ``bench/scoring.py``);
* **plain Faust**: faust-streaming as installed, asyncio's loop, the "raw" serializer;
* **Faust as the worker runs it**: uvloop, ``services.scoring.faust_patches`` and the ``RawRecords``
  schema.

Each Faust agent runs in a process of its own. Rates count from the first batch to the last record.
The records are one simulator tick of snapshots (``--scale 9.4``: ~300,000 accounts), as the scoring
bench publishes them.

Uses the broker named by BAROMETRE_BENCH_KAFKA, or starts its own. Usage:
`python bench/faust_floor.py [--scale 9.4] [--partitions 6]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KAFKA_PORT, KAFKA_CONTROLLER_PORT = 19620, 19621
BATCH = 20_000  # the worker's take_events batch
RATIO_TARGET = 0.25


def child(variant: str, bootstrap: str, topic: str, events: int) -> None:
    """Run a do-nothing Faust agent on ``topic`` until ``events`` records; print its rate as JSON."""
    if variant == "worker":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    import faust

    app = faust.App(
        f"faust-floor-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        loop=loop,
    )
    if variant == "worker":
        from services.scoring.app import RawRecords  # applies services.scoring.faust_patches too

        schema = RawRecords(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
        source = app.topic(topic, schema=schema)
    else:
        source = app.topic(
            topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )
    seen = counted = 0
    first = 0.0

    @app.agent(source)
    async def drop(stream: Any) -> None:
        nonlocal seen, counted, first
        async for batch in stream.take_events(BATCH, within=0.25):
            seen += len(batch)
            if not first:
                first = time.perf_counter()
            else:
                counted += len(batch)
            if seen >= events:
                rate = counted / (time.perf_counter() - first)
                print(json.dumps({"rate": rate, "events": seen}), flush=True)
                os._exit(0)  # the figure is out; no need for faust's orderly shutdown

    from faust import Worker

    Worker(app, loop=loop, loglevel="warning", quiet=True, redirect_stdouts=False).execute_from_commandline()


def run_child(variant: str, bootstrap: str, topic: str, events: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", variant, "--bootstrap", bootstrap, "--topic", topic],
        input=str(events),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # Faust's worker may write terminal control codes before the figure.
    lines = [line[line.index('{"rate"') :] for line in out.stdout.splitlines() if '{"rate"' in line]
    if not lines:
        raise SystemExit(
            f"the {variant} agent printed no figure:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
        )
    return float(json.loads(lines[-1])["rate"])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=9.4, help="simulator scale (9.4: ~300,000 accounts)")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--child", choices=["plain", "worker"], help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.bootstrap, args.topic, int(sys.stdin.read()))
        return 0

    from kafka.admin import KafkaAdminClient

    from bench.scoring import bare_read, publish
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
        stack.callback(admin.delete_topics, [topic])

        at = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
        params = replace(SimulatorParams(), scale=args.scale)
        sim = Simulator(load_entities(), params=params, seed=0, origin=at - timedelta(days=2))
        records = [r for chunk in sim.observe(at).iter_records() for r in chunk]
        publisher = Publisher(settings, client_id="bench-faust-floor")
        ends = publish(publisher, records)
        publisher.close()
        print(f"published {len(records):,} snapshot records on {args.partitions} partitions", flush=True)

        n, secs, _ = asyncio.run(bare_read(bootstrap, topic, {}, ends))
        base = n / secs
        print(f"bare aiokafka consumer (baseline): {base:>9,.0f} events/s", flush=True)
        for variant, title in (
            ("plain", "plain Faust, no-op agent"),
            ("worker", "Faust as the worker runs it, no-op"),
        ):
            rate = run_child(variant, bootstrap, topic, len(records))
            print(f"{title + ':':<36}{rate:>9,.0f} events/s  ratio {rate / base:.3f}", flush=True)
        print(
            f"a ratio of {RATIO_TARGET} is {RATIO_TARGET * base:,.0f} events/s; above, the most a Faust "
            "agent reaches here before it parses or scores anything"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
