"""Command line of the local ClickHouse endpoint: ``python -m infra.clickhouse serve --data-dir D ...``.

Runs in the foreground until SIGTERM/SIGINT and logs to stderr (one line per request at debug level only).
Credentials can come from ``--user/--password`` or the environment (``BAROMETRE_CLICKHOUSE_USER``,
``BAROMETRE_CLICKHOUSE_PASSWORD``), the latter keeping the password out of the process list.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from infra.clickhouse.server import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.clickhouse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="serve ClickHouse's HTTP interface over a chDB data directory")
    p.add_argument("--data-dir", type=Path, required=True, help="chDB data directory (created if missing)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8123)
    p.add_argument("--user", default=os.environ.get("BAROMETRE_CLICKHOUSE_USER") or None)
    p.add_argument("--password", default=os.environ.get("BAROMETRE_CLICKHOUSE_PASSWORD") or None)
    p.add_argument("--parent-pid", type=int, default=None, help="stop when this process is gone")
    p.add_argument("--debug", action="store_true", help="log one line per request")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    serve(args.data_dir, args.host, args.port, args.user, args.password, args.parent_pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
