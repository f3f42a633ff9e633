"""Local ClickHouse endpoint: the ClickHouse engine embedded through chDB, served over ClickHouse's HTTP
interface.

Services talk to it with plain ``http://`` DSNs (clickhouse-connect, curl), exactly as to a ClickHouse server.
``ClickHouseEndpoint`` starts and stops it as a child process; ``python -m infra.clickhouse serve`` runs it in
the foreground. Importing this package does not load chDB: only the endpoint process does.
"""

from infra.clickhouse.server import ClickHouseEndpoint, serve

__all__ = ["ClickHouseEndpoint", "serve"]
