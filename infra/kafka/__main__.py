"""Command line of the local Kafka: ``python -m infra.kafka fetch`` and ``python -m infra.kafka start``.

``fetch`` resolves the pinned jars into the cache (what CI or a fresh checkout runs once);
``start`` runs a broker (or a small cluster) in the foreground until Ctrl-C or SIGTERM, then stops it
cleanly. Both print a one-line reason and exit with status 2 when Java or Maven is missing.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from infra.kafka.launcher import (
    KafkaCluster,
    KafkaError,
    PrerequisiteError,
    ensure_jars,
    jars_dir,
    kafka_version,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m infra.kafka", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="cache root; jars go to <root>/kafka-<version>/libs (default: <repo>/.cache)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="resolve the pinned Kafka jars with Maven (no-op when cached)")
    start = sub.add_parser("start", help="run Kafka in the foreground until Ctrl-C / SIGTERM")
    start.add_argument("--nodes", type=int, default=1, help="combined broker+controller nodes (default 1)")
    start.add_argument(
        "--data-dir", type=Path, default=Path("data/kafka"), help="data directory (default: %(default)s)"
    )
    start.add_argument("--host", default="127.0.0.1", help="listen address (default: %(default)s)")
    start.add_argument("--port", type=int, default=9092, help="client port of node 0 (default: %(default)s)")
    start.add_argument("--heap", default="512m", help="JVM heap per node (default: %(default)s)")
    start.add_argument("--timeout", type=float, default=120, help="seconds to wait for readiness")
    return parser


def _fetch(cache_dir: Path | None) -> int:
    started = time.monotonic()
    classpath = ensure_jars(cache_dir)
    jars = classpath.count(":") + 1
    where = jars_dir(cache_dir)
    print(f"Kafka {kafka_version()}: {jars} jars in {where} ({time.monotonic() - started:.1f} s)")
    return 0


def _start(args: argparse.Namespace) -> int:
    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # SIGTERM (a supervisor, `kill`) ends like Ctrl-C: in a clean stop, even in the middle of the start.
    signal.signal(signal.SIGTERM, on_sigterm)
    cluster = KafkaCluster(
        args.data_dir,
        nodes=args.nodes,
        host=args.host,
        port=args.port,
        heap=args.heap,
        cache_dir=args.cache_dir,
    )
    started = time.monotonic()
    try:
        cluster.start(timeout=args.timeout)
        elapsed = time.monotonic() - started
        print(
            f"Kafka {kafka_version()} ready on {cluster.bootstrap_servers} in {elapsed:.1f} s "
            f"(data: {cluster.base_dir}; logs: {cluster.log_file(0).parent}); Ctrl-C to stop",
            flush=True,
        )
        while cluster.is_running():
            time.sleep(1.0)
        dead = sorted(set(range(cluster.nodes)) - set(cluster.running_nodes()))
        print(f"Kafka node(s) {dead} exited on their own; see {cluster.log_file(dead[0])}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # A second Ctrl-C must not cut the clean stop short (stop() has its own SIGKILL fallback).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("stopping Kafka...", flush=True)
        return 0
    finally:
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m infra.kafka``; returns the process exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "fetch":
            return _fetch(args.cache_dir)
        return _start(args)
    except PrerequisiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KafkaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
