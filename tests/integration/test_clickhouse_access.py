"""The ClickHouse users of the production stack (infra/clickhouse/access.py, `barometre access clickhouse`).

The local endpoint (chDB) has one user and no access control, so the statements cannot be run here: they
are parsed by ClickHouse's own parser (``formatQuery``) on the endpoint, the api's INSERT grants are
checked against the tables the api's code writes and the migrated schema, and the CLI's printing is
checked to mask passwords."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from infra.clickhouse.access import API_INSERT_TABLES, ROLES, grants, statements, user_name
from services.cli import main
from services.common.clickhouse import make_client
from services.common.names import Table
from services.common.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _api_insert_targets() -> set[str]:
    """Tables the api's code inserts into (``client.insert(f"{db}.{Table.X}"`` or ``f"{db}.<table>"``, and
    ``insert_rows``)."""
    targets: set[str] = set()
    pattern = r"insert(?:_rows)?\(\s*(?:client,\s*)?f\"\{[a-z_.]+\}\.(?:\{Table\.(\w+)\}|(\w+))\""
    for path in (ROOT / "services" / "api").rglob("*.py"):
        text = path.read_text()
        targets |= {Table[member].value if member else name for member, name in re.findall(pattern, text)}
        assert "INSERT INTO" not in text.upper().replace("'INSERT INTO'", ""), f"{path}: SQL INSERT"
    return targets


def test_the_api_may_insert_exactly_into_the_tables_it_writes() -> None:
    written = _api_insert_targets()
    assert written, "no insert found in services/api: the pattern above is out of date"
    assert written == set(API_INSERT_TABLES)
    api = grants("barometre")["api"]
    assert api.startswith("SELECT ON `barometre`.*, ")
    assert "ALL" not in api and "ALTER" not in api and "CREATE" not in api


def test_every_user_is_kept_to_its_database() -> None:
    for role, privileges in grants("my_db").items():
        on = re.findall(r" ON (\S+?)(?:,|$)", privileges)
        assert on and all(target.startswith("`my_db`.") for target in on), (role, privileges)
    assert grants("my_db")["migrate"] == "ALL ON `my_db`.*"
    for role in ("ingest", "scoring", "poller"):
        assert grants("my_db")[role] == "SELECT, INSERT ON `my_db`.*"
    with pytest.raises(ValueError):
        grants("db; DROP TABLE x")


def test_statements_quote_passwords_and_replace_grants() -> None:
    sql = statements("barometre", {"api": "it's a \\ secret"})
    assert sql == [
        "CREATE USER IF NOT EXISTS `barometre_api` IDENTIFIED WITH sha256_password BY 'it\\'s a \\\\ secret'",
        "ALTER USER `barometre_api` IDENTIFIED WITH sha256_password BY 'it\\'s a \\\\ secret'",
        f"GRANT {grants('barometre')['api']} TO `barometre_api` WITH REPLACE OPTION",
    ]
    with pytest.raises(ValueError, match="empty"):
        statements("barometre", {"api": ""})
    with pytest.raises(ValueError, match="unknown role"):
        user_name("root")


def test_cli_prints_the_statements_without_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAROMETRE_CLICKHOUSE_API_PASSWORD", "very-secret-password")
    result = CliRunner().invoke(main, ["access", "clickhouse", "--print"])
    assert result.exit_code == 0, result.output
    assert "very-secret-password" not in result.output
    assert result.output.count("CREATE USER IF NOT EXISTS") == len(ROLES)
    assert "BY '***'" in result.output


@pytest.mark.clickhouse
def test_clickhouse_parses_every_statement_and_the_api_tables_exist(app_settings: Settings) -> None:
    client = make_client(app_settings)
    try:
        every = {role: f"pw-{role}-'\\x" for role in ROLES}
        for statement in statements(app_settings.clickhouse_database, every):
            formatted = client.query(
                "SELECT formatQuery({q:String})", parameters={"q": statement}
            ).result_rows
            assert formatted[0][0].split()[0] in {"CREATE", "ALTER", "GRANT"}, formatted
        tables = {
            row[0]
            for row in client.query(
                "SELECT name FROM system.tables WHERE database = {db:String}",
                parameters={"db": app_settings.clickhouse_database},
            ).result_rows
        }
        assert set(API_INSERT_TABLES) <= tables
    finally:
        client.close()
