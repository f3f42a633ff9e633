"""The local ClickHouse endpoint (infra/clickhouse, chDB) started with a server configuration file, for
tests/integration/test_cluster_queries.py: ``python -m tests.integration.cluster_endpoint DATA_DIR PORT
CONFIG_XML PARENT_PID``. chDB reads ``remote_servers`` and ``macros`` from it, so Distributed tables over
the local node work; it runs no DDL worker (no ``ON CLUSTER``) and no native TCP server (no second node).
"""

from __future__ import annotations

import sys
from pathlib import Path

from infra.clickhouse import server


def main(argv: list[str]) -> int:
    data_dir, port, config, parent = argv
    server._SERVER_DEFAULTS["config-file"] = config
    server.serve(Path(data_dir), "127.0.0.1", int(port), parent_pid=int(parent))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
