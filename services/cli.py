"""The ``barometre`` command line: one entry point for every job (see docs/CONTRACT.md)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from services.common.settings import Settings


def _settings(**overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**values)  # type: ignore[arg-type]  # pydantic validates the overrides


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """barometre: French local governments on social networks, live."""


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), help="State directory (default: ./data).")
@click.option("--no-simulator", is_flag=True, help="Start the stack empty, without the simulated feed.")
def run(data_dir: Path | None, no_simulator: bool) -> None:
    """Start the whole stack locally: Kafka, ClickHouse endpoint, migrations, services."""
    from services.stack import Stack, StackError

    settings = _settings(data_dir=data_dir)
    _logging(settings)
    try:
        Stack(settings, simulator=not no_simulator).run_forever()
    except StackError as exc:
        click.echo(f"barometre run: {exc}", err=True)
        sys.exit(1)


@main.command()
def migrate() -> None:
    """Apply pending ClickHouse migrations (and record them)."""
    from services.common import migrations
    from services.common.clickhouse import make_client

    settings = _settings()
    _logging(settings)
    client = make_client(settings, database=None)
    try:
        done = migrations.migrate(client, settings.clickhouse_database)
    except migrations.MigrationError as exc:
        click.echo(f"barometre migrate: {exc}", err=True)
        sys.exit(1)
    finally:
        client.close()
    if done:
        click.echo("applied: " + ", ".join(done))
    else:
        click.echo("up to date")


def _serve(app_path: str, host: str, port: int, settings: Settings) -> None:
    import uvicorn

    _logging(settings)
    uvicorn.run(
        app_path, host=host, port=port, factory=True, log_level=settings.log_level.lower(), access_log=False
    )


@main.command()
def api() -> None:
    """Run the api service (HTTP API and dashboard)."""
    s = _settings()
    _serve("services.api.__main__:app_factory", s.api_host, s.api_port, s)


@main.command()
def ingest() -> None:
    """Run the ingest service (HTTP push of snapshots)."""
    s = _settings()
    _serve("services.ingest.__main__:app_factory", s.ingest_host, s.ingest_port, s)


if __name__ == "__main__":
    main()
