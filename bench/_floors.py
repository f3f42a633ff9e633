"""The floors under the scoring worker, shared by ``bench/scoring.py`` and ``bench/faust_floor.py``.

* :func:`bare_read`: a bare aiokafka consumer reading a range of offsets, decoding nothing;
* :func:`faust_floor`: a Faust agent that takes the records in ``take_events`` batches and drops them,
  in a process of its own, either as the worker runs (uvloop, the worker's collector tuning,
  ``services.scoring.faust_patches``, the ``RawRecords`` schema, the worker's buffer and commit sizes)
  or as plain faust-streaming (asyncio's loop, the "raw" serializer).

Both read ``start`` → ``ends`` (partition → offset) and time from their first batch (left out) to the
last record, so that start-up is not counted. The Faust agent starts at ``start`` because its consumer
group's offsets are set there before it joins (``commit_offsets``).

The child process is this file run as a script: `python bench/_floors.py --child worker|plain`, with
``{"bootstrap", "group", "topic", "partitions", "start", "ends"}`` as JSON on stdin; it prints
``{"rate", ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KafkaTopicPartition

from services.ingest.publisher import Publisher

Records = list[tuple[bytes, bytes]]
Ends = dict[int, int]

# plain Faust's batch; the worker variant takes services.scoring.app.BATCH (the same today)
PLAIN_BATCH = 20_000


def merge_ends(a: Mapping[int, int], b: Mapping[int, int]) -> Ends:
    return {p: max(a.get(p, 0), b.get(p, 0)) for p in set(a) | set(b)}


def publish(publisher: Publisher, records: Records, chunk: int = 10_000) -> Ends:
    """Publish ``records``; return the end offset of every partition written."""
    ends: Ends = {}
    for i in range(0, len(records), chunk):
        ends = merge_ends(ends, publisher.publish(records[i : i + chunk]))
    return ends


def topic_ends(bootstrap: str, topic: str) -> Ends:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","))
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        offsets = consumer.end_offsets([KafkaTopicPartition(topic, p) for p in parts])
        return {tp.partition: end for tp, end in offsets.items()}
    finally:
        consumer.close()


def commit_offsets(bootstrap: str, group: str, topic: str, offsets: Mapping[int, int]) -> None:
    """Set the committed offsets of ``group`` (with no member running) on ``topic``."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        admin.alter_group_offsets(
            group,
            {KafkaTopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()},
        )
    finally:
        admin.close()


async def bare_read(
    bootstrap: str, topic: str, start: Mapping[int, int], ends: Mapping[int, int]
) -> tuple[int, float, int]:
    """Read ``topic`` from ``start`` to ``ends`` (partition → offset) with a bare aiokafka consumer,
    decoding nothing; return (records after the first batch, seconds from the first batch, bytes)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = {p: TopicPartition(topic, p) for p in ends}
        consumer.assign(list(tps.values()))
        for p, tp in tps.items():
            consumer.seek(tp, start.get(p, 0))
        position = dict(start)
        first: float | None = None
        counted = size = 0
        while any(position.get(p, 0) < end for p, end in ends.items()):
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            n = 0
            for tp, msgs in batch.items():
                if msgs:
                    position[tp.partition] = msgs[-1].offset + 1
                    n += len(msgs)
                    size += sum(len(m.value or b"") + len(m.key or b"") for m in msgs)
            if first is None:
                if n:
                    first = time.perf_counter()
            else:
                counted += n
        return counted, time.perf_counter() - (first or time.perf_counter()), size
    finally:
        await consumer.stop()


def faust_floor(
    variant: str,
    bootstrap: str,
    group: str,
    topic: str,
    start: Mapping[int, int],
    ends: Mapping[int, int],
    timeout: float = 600.0,
) -> tuple[float, float]:
    """(events/s, CPU seconds an event) of a do-nothing Faust agent (``variant`` "worker" or "plain") of
    consumer group ``group`` reading ``topic`` from ``start`` to ``ends``, in a process of its own (see
    the module docstring). The CPU is the process's, all threads, over the same records as the rate."""
    commit_offsets(bootstrap, group, topic, start)
    job = {
        "bootstrap": bootstrap,
        "group": group,
        "topic": topic,
        "partitions": len(ends),
        "start": {p: start.get(p, 0) for p in ends},
        "ends": ends,
    }
    out = subprocess.run(
        [sys.executable, __file__, "--child", variant],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    # Faust's worker may write terminal control codes before the figure.
    lines = [line[line.index('{"rate"') :] for line in out.stdout.splitlines() if '{"rate"' in line]
    if not lines:
        raise SystemExit(
            f"the {variant} Faust agent printed no figure:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
        )
    figure = json.loads(lines[-1])
    firsts = {int(p): o for p, o in figure["firsts"].items()}
    if any(o < start.get(p, 0) for p, o in firsts.items()):
        raise SystemExit(f"the {variant} Faust agent read before {dict(start)}: {firsts}")
    return float(figure["rate"]), float(figure["cpu_per_event"])


def child(variant: str, job: dict[str, Any]) -> None:
    """Run a do-nothing Faust agent until it has seen every record from the start to the ends (the
    group starts where the parent set its offsets); print its rate as JSON."""
    ends = {int(p): int(o) for p, o in job["ends"].items()}
    options: dict[str, Any] = {}
    if variant == "worker":
        from services.scoring.__main__ import tune_gc, use_uvloop

        loop = use_uvloop()
    else:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    import faust

    batch = PLAIN_BATCH
    if variant == "worker":
        # the worker's own module: applies services.scoring.faust_patches too
        from services.scoring.app import BATCH, FLUSH_S, RawRecords

        batch = BATCH
        options = {
            "stream_buffer_maxsize": 4 * BATCH,
            "broker_commit_every": 4 * BATCH,
            "broker_commit_interval": FLUSH_S,
        }
    app = faust.App(
        job["group"],
        broker=f"kafka://{job['bootstrap']}",
        store="memory://",
        web_enabled=False,
        loop=loop,
        topic_partitions=job["partitions"],
        consumer_auto_offset_reset="earliest",
        **options,
    )
    if variant == "worker":
        schema = RawRecords(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
        source = app.topic(job["topic"], schema=schema)
        tune_gc()
    else:
        source = app.topic(
            job["topic"], key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )
    wanted = sum(ends.values()) - sum(int(o) for o in job["start"].values())
    firsts: dict[int, int] = {}
    seen = counted = 0
    first = cpu = 0.0

    @app.agent(source)
    async def drop(stream: Any) -> None:
        nonlocal seen, counted, first, cpu
        async for events in stream.take_events(batch, within=0.25):
            seen += len(events)
            if not first:
                first, cpu = time.perf_counter(), time.process_time()
                for event in events:  # where the group started, checked by the parent
                    firsts.setdefault(event.message.partition, event.message.offset)
            else:
                counted += len(events)
            if seen >= wanted:
                rate = counted / (time.perf_counter() - first)
                cpu_per_event = (time.process_time() - cpu) / counted
                figure = {"rate": rate, "cpu_per_event": cpu_per_event, "seen": seen, "firsts": firsts}
                print(json.dumps(figure), flush=True)
                os._exit(0)  # the figure is out; no need for faust's orderly shutdown

    from faust import Worker

    Worker(app, loop=loop, loglevel="warning", quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=["plain", "worker"], required=True)
    args = parser.parse_args()
    child(args.child, json.loads(sys.stdin.read()))
