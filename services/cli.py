"""The ``barometre`` command line: one entry point for every job (see docs/CONTRACT.md)."""

from __future__ import annotations

import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from services.common.settings import Settings

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client


def _settings(**overrides: object) -> Settings:
    from pydantic import ValidationError

    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        # Refuse to start, naming each setting and its rule (never the value: it may be a secret).
        for error in exc.errors():
            name = "BAROMETRE_" + "_".join(str(part) for part in error["loc"]).upper()
            message = error["msg"].removeprefix("Value error, ")
            line = message if message.startswith(name) else f"{name}: {message}"
            click.echo(f"barometre: {line}", err=True)
        sys.exit(2)


def _logging(settings: Settings, service: str = "barometre") -> None:
    # BAROMETRE_LOG_FORMAT (json | text); kafka-python and httpx kept to their warnings.
    from services.common.logs import configure

    configure(settings.log_level, settings.log_format, service)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """barometre: French local governments on social networks, live."""


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), help="State directory (default: ./data).")
@click.option("--no-simulator", is_flag=True, help="Start the stack empty, without the simulated feed.")
@click.option("--no-poll", is_flag=True, help="Do not start the poller service (barometre poller).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Scoring workers in one consumer group (at most the snapshot topic's partitions).",
)
def run(data_dir: Path | None, no_simulator: bool, no_poll: bool, workers: int) -> None:
    """Start the whole stack locally: Kafka, ClickHouse endpoint, migrations, services."""
    from services.stack import Stack, StackError

    settings = _settings(data_dir=data_dir)
    _logging(settings)
    try:
        Stack(settings, simulator=not no_simulator, poller=not no_poll, workers=workers).run_forever()
    except StackError as exc:
        click.echo(f"barometre run: {exc}", err=True)
        sys.exit(1)


@main.command()
def migrate() -> None:
    """Apply pending ClickHouse migrations and load the shipped entity registry."""
    from services.common.bootstrap import prepare_database
    from services.common.migrations import MigrationError

    settings = _settings()
    _logging(settings)
    try:
        click.echo(prepare_database(settings).summary())
    except MigrationError as exc:
        click.echo(f"barometre migrate: {exc}", err=True)
        sys.exit(1)


@main.command()
@click.option(
    "--to-end",
    is_flag=True,
    help="Replay the whole topic, not only what the scoring worker has consumed (its committed offsets).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Run even while a scoring worker is running (its writes meanwhile are lost) or when retention "
    "has deleted the first records of the topic.",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=None,
    help="Processes replaying the topic's partitions (default: the number of CPUs, at most 4).",
)
def rebuild(to_end: bool, force: bool, jobs: int | None) -> None:
    """Recompute every scoring table from the snapshots topic into fresh tables and swap them in."""
    from services.scoring.rebuild import RebuildError, run_rebuild

    settings = _settings()
    _logging(settings)
    try:
        done = run_rebuild(
            settings,
            to_end=to_end,
            force=force,
            jobs=jobs or min(os.cpu_count() or 1, 4),
            report=lambda line: click.echo(line, err=True),
        )
    except RebuildError as exc:
        click.echo(f"barometre rebuild: {exc}", err=True)
        sys.exit(1)
    click.echo(done.summary())


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(["ingest", "alerts:write", "admin"]),
    help="What the token allows (repeat for several); admin allows everything, every webhook included.",
)
@click.option("--description", default="", help="A note to tell tokens apart.")
@click.option("--expires-in", default=None, help="Lifetime: 90d, 12h, 30m, 2w (default: 365d).")
@click.option(
    "--expires-at",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]),
    default=None,
    help="Expiry instant, UTC (2027-06-30 or 2027-06-30T12:00:00).",
)
@click.option("--no-expiry", is_flag=True, help="A token that never expires (revoke it when done).")
def token_create(
    scopes: tuple[str, ...],
    description: str,
    expires_in: str | None,
    expires_at: datetime | None,
    no_expiry: bool,
) -> None:
    """Create a token and print it (it is stored only as a hash: keep it); its id and expiry go to stderr."""
    from datetime import UTC

    from services.common.clickhouse import make_client
    from services.common.tokens import DEFAULT_LIFETIME, Scope, TokenError, issue_token, parse_duration

    if sum(x is not None and x is not False for x in (expires_in, expires_at, no_expiry)) > 1:
        raise click.UsageError("give at most one of --expires-in, --expires-at and --no-expiry")
    try:
        lifetime = None if no_expiry else parse_duration(expires_in) if expires_in else DEFAULT_LIFETIME
    except TokenError as exc:
        raise click.BadParameter(str(exc), param_hint="--expires-in") from None
    settings = _settings()
    client = make_client(settings)
    try:
        made, record = issue_token(
            client, settings.clickhouse_database, {Scope(s) for s in scopes}, description,
            expires_in=lifetime, expires_at=expires_at.replace(tzinfo=UTC) if expires_at else None,
        )  # fmt: skip
    except TokenError as exc:
        click.echo(f"barometre token create: {exc}", err=True)
        sys.exit(1)
    finally:
        client.close()
    click.echo(made)
    until = record.expires_at.isoformat(timespec="seconds") if record.expires_at else "never"
    click.echo(f"id {record.token_id}, scopes {','.join(sorted(record.scopes))}, expires {until}", err=True)


@token.command("list")
def token_list() -> None:
    """Stored tokens, tab-separated: id, scopes, created, expires, state (active, expired, revoked),
    description. Never the token nor its hash."""
    from datetime import UTC

    from services.common.clickhouse import make_client
    from services.common.tokens import list_tokens

    settings = _settings()
    client = make_client(settings)
    try:
        records = list_tokens(client, settings.clickhouse_database)
    finally:
        client.close()
    now = datetime.now(UTC)
    click.echo("id\tscopes\tcreated_at\texpires_at\tstate\tdescription")
    for r in records:
        until = r.expires_at.isoformat(timespec="seconds") if r.expires_at else "never"
        fields = [r.token_id, ",".join(sorted(r.scopes)), r.created_at.isoformat(timespec="seconds"), until,
                  r.state(now), r.description.replace("\t", " ").replace("\n", " ")]  # fmt: skip
        click.echo("\t".join(fields))


@token.command("revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Revoke the token TOKEN_ID (brm_1a2b3c4d, as `token list` shows it, or the token itself). Every
    service refuses it within 30 seconds (their look-up cache)."""
    from services.common.clickhouse import make_client
    from services.common.tokens import TokenError, revoke_token

    settings = _settings()
    client = make_client(settings)
    try:
        record, now = revoke_token(client, settings.clickhouse_database, token_id)
    except TokenError as exc:
        click.echo(f"barometre token revoke: {exc}", err=True)
        sys.exit(1)
    finally:
        client.close()
    click.echo(f"{record.token_id}: {'revoked' if now else 'already revoked'}")


def _report_bad(kind: str, bad: list[tuple[int, str]], path: Path) -> None:
    for line, reason in bad:
        click.echo(f"{path}:{line}: {reason}", err=True)


@main.command("import")
@click.argument("kind", type=click.Choice(["entities", "accounts", "panel", "snapshots"]))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--panel", "panel_name", default=None, help="Panel of rows without one (panel files).")
@click.option("--wait", is_flag=True, help="Return once everything imported is visible through the API.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when on a terminal).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Processes validating and publishing snapshots (default: the number of CPUs, at most 4).",
)
def import_(
    kind: str, file: Path, panel_name: str | None, wait: bool, progress: bool | None, workers: int | None
) -> None:
    """Import FILE: entities, accounts or panel CSV, or snapshots (JSON Lines or CSV).

    Good rows are imported, every bad row is reported with its line number and reason, and the exit
    status is 1 when any row was bad.
    """
    from services.common.clickhouse import make_client

    settings = _settings()
    _logging(settings)
    db = settings.clickhouse_database
    client = make_client(settings)
    try:
        if kind == "snapshots":
            bad_count = _import_snapshots(settings, client, file, wait, progress, workers)
        else:
            bad_count = _import_reference(kind, client, db, file, panel_name)
    finally:
        client.close()
    sys.exit(1 if bad_count else 0)


def _import_reference(kind: str, client: Client, db: str, file: Path, panel_name: str | None) -> int:
    from services.common import reference, registry
    from services.common.names import DEFAULT_PANEL

    known = registry.known_entity_ids(client, db)
    version = registry.user_version()
    if kind == "entities":
        good_e, bad = reference.collect(reference.parse_entities_csv(file))
        registry.write_entities(client, db, [e for _, e in good_e], source="import", version=version)
        count = len(good_e)
    elif kind == "accounts":
        good_a, bad = reference.collect(reference.parse_accounts_csv(file, known_entities=known))
        registry.write_accounts(client, db, [a for _, a in good_a], version)
        count = len(good_a)
    else:
        good_p, bad = reference.collect(
            reference.parse_panel_csv(file, default_panel=panel_name or DEFAULT_PANEL, known_entities=known)
        )
        registry.write_panel(client, db, [m for _, m in good_p], version)
        count = len(good_p)
    _report_bad(kind, bad, file)
    click.echo(f"{kind}: {count} imported, {len(bad)} refused")
    return len(bad)


def _import_snapshots(
    settings: Settings, client: Client, file: Path, wait: bool, progress: bool | None, workers: int | None
) -> int:
    from services.common.kafka import ensure_topics
    from services.ingest.importer import FileTooLarge, import_snapshots
    from services.ingest.known import StaticRegistry
    from services.ingest.publisher import ProducerTuning, Publisher, PublishError

    registry = StaticRegistry.load(client, settings.clickhouse_database)
    ensure_topics(settings)
    publisher = Publisher(settings, tuning=ProducerTuning(max_block_ms=30_000), client_id="barometre-import")

    def on_reject(line: int, reason: str) -> None:
        click.echo(f"{file}:{line}: {reason}", err=True)

    show = sys.stderr.isatty() if progress is None else progress
    try:
        report = import_snapshots(
            file,
            publisher,
            registry,
            on_reject,
            progress=show,
            workers=workers or min(os.cpu_count() or 1, 4),
            settings=settings,
        )
    except PublishError as exc:
        click.echo(f"barometre import: Kafka did not take the snapshots: {exc}", err=True)
        sys.exit(2)
    except FileTooLarge as exc:  # what came before it was published
        click.echo(f"barometre import: {exc}", err=True)
        sys.exit(2)
    finally:
        publisher.close()
    click.echo(
        f"snapshots: {report.lines} lines, {report.published} published, {report.rejected} refused "
        f"in {report.seconds:.1f}s ({report.rate:,.0f} lines/s)"
    )
    if wait and report.end_offsets:
        from services.ingest.wait import wait_until_consumed

        click.echo("waiting until the scoring worker has written everything to ClickHouse…")
        wait_until_consumed(settings, report.end_offsets)
        click.echo("visible through the API")
    return report.rejected


@main.command()
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same events.")
@click.option(
    "--scale",
    type=float,
    default=1.0,
    show_default=True,
    help="Accounts multiplier (about 32,000 accounts at 1; 9.4 gives 300,000).",
)
@click.option(
    "--days-back",
    type=click.IntRange(0, 3650),
    default=90,
    show_default=True,
    help="Days of history to back-fill, one observation a day: first the days the figures read, "
    "then the others as the scoring worker keeps up (docs/simulator.md).",
)
@click.option(
    "--step-minutes",
    type=click.IntRange(1, 1440),
    default=15,
    show_default=True,
    help="Then observe every account this often, on the wall clock.",
)
@click.option("--no-register", is_flag=True, help="Do not register the simulated accounts.")
def simulate(seed: int, scale: float, days_back: int, step_minutes: int, no_register: bool) -> None:
    """Feed Kafka with realistic simulated snapshots (see docs/simulator.md)."""
    import signal
    from datetime import timedelta

    from services.ingest.simulate import SimulateOptions, run_simulator

    settings = _settings()
    _logging(settings)

    def on_signal(signum: int, frame: object) -> None:
        # The simulator may be sleeping until its next step: stop now, like Ctrl-C does.
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    options = SimulateOptions(
        seed=seed,
        scale=scale,
        days_back=days_back,
        step=timedelta(minutes=step_minutes),
        register=not no_register,
    )
    try:
        run_simulator(settings, options)
    except KeyboardInterrupt:
        click.echo("simulator stopped")


@main.command()
@click.option(
    "--every",
    "every_minutes",
    type=click.IntRange(1, 10080),
    default=None,
    help="Poll again every N minutes (default: poll once and exit).",
)
@click.option(
    "--plan",
    is_flag=True,
    help="Poll nothing: print how often each platform can be read within its rate budget.",
)
def poll(every_minutes: int | None, plan: bool) -> None:
    """Read registered accounts from the platforms' APIs (Bluesky, Mastodon, Facebook, YouTube)."""
    import asyncio

    from services.ingest.poll import poll_forever

    settings = _settings()
    _logging(settings)
    if plan:
        from services.ingest.polling.plan import build_plans
        from services.ingest.polling.schedule import format_plan

        click.echo(format_plan(build_plans(settings)))
        return
    try:
        total = asyncio.run(
            poll_forever(settings, None if every_minutes is None else every_minutes * 60.0, report=click.echo)
        )
    except KeyboardInterrupt:
        return
    click.echo(f"{total} snapshots published")


# --- Account discovery and review (services/ingest/discovery, services/common/accounts.py).


@main.command()
@click.option(
    "--source",
    type=click.Choice(["wikidata", "annuaire", "all"]),
    default="all",
    show_default=True,
    help="Which public registry to read.",
)
@click.option("--dry-run", is_flag=True, help="Write nothing; report what would change.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the accounts found to this CSV (import format plus state,sources) to review.",
)
@click.option("--no-verify", is_flag=True, help="Do not ask Bluesky and Mastodon to confirm the accounts.")
def discover(source: str, dry_run: bool, out: Path | None, no_verify: bool) -> None:
    """Find official accounts in public registries (Wikidata, the Annuaire de l'administration)."""
    from services.common.clickhouse import make_client
    from services.ingest.discovery.report import render
    from services.ingest.discovery.run import DiscoverOptions, SourceChoice, incomplete
    from services.ingest.discovery.run import discover as run_discover

    settings = _settings()
    _logging(settings)
    client = make_client(settings)
    try:
        result = run_discover(
            settings,
            client,
            DiscoverOptions(source=SourceChoice(source), dry_run=dry_run, verify=not no_verify, out=out),
        )
    finally:
        client.close()
    click.echo(render(result.report))
    sys.exit(1 if incomplete(result.harvests) else 0)


@main.group()
def export() -> None:
    """Export figures as files."""


@export.command("opendata")
@click.option("--month", required=True, help="YYYY-MM: the month's figures, as of its last millisecond.")
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write."
)
def export_opendata(month: str, out: Path) -> None:
    """The month's barometer as a Frictionless Data Package (what GET /v1/exports/opendata zips)."""
    from services.api import opendata

    try:
        first = opendata.parse_month(month)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--month") from None
    settings = _settings()
    for path in opendata.write_folder(settings, first, out):
        click.echo(path)


@main.group()
def accounts() -> None:
    """Review registered accounts: list, show, reject."""


@accounts.command("list")
@click.option("--platform", default=None, help="Only this platform.")
@click.option("--entity", "entity_id", default=None, help="Only this entity (COM:38185).")
@click.option("--state", type=click.Choice(["candidate", "verified", "rejected", "gone"]), default=None)
@click.option(
    "--origin", type=click.Choice(["simulator", "import", "push", "poll", "discover"]), default=None
)
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=100, show_default=True)
def accounts_list(
    platform: str | None, entity_id: str | None, state: str | None, origin: str | None, limit: int
) -> None:
    """Registered accounts, tab-separated: account_id, platform, entity, state, origin, handle, url."""
    from services.common import accounts as store
    from services.common.clickhouse import make_client
    from services.common.names import normalise_platform

    if platform is not None:
        try:
            platform = normalise_platform(platform).value
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--platform") from None
    settings = _settings()
    client = make_client(settings)
    try:
        rows = store.list_accounts(
            client,
            settings.clickhouse_database,
            platform=platform,
            entity_id=entity_id,
            state=state,
            origin=origin,
            limit=limit,
        )
    finally:
        client.close()
    click.echo("account_id\tplatform\tentity_id\tstate\torigin\thandle\turl")
    for r in rows:
        fields = [r.account_id, r.platform, r.entity_id, r.state, r.origin, r.handle or "", r.url or ""]
        click.echo("\t".join(fields))


@accounts.command("show")
@click.argument("account_id")
def accounts_show(account_id: str) -> None:
    """One account: its row, which sources named it, and the conflicts it is part of."""
    from services.common.clickhouse import make_client
    from services.ingest.discovery.review import describe

    settings = _settings()
    client = make_client(settings)
    try:
        text = describe(client, settings.clickhouse_database, account_id)
    finally:
        client.close()
    if text is None:
        click.echo(f"barometre accounts show: no account {account_id!r} is registered or named", err=True)
        sys.exit(1)
    click.echo(text)


@accounts.command("reject")
@click.argument("account_id")
@click.option("--reason", required=True, help="Why it is not the entity's official account.")
def accounts_reject(account_id: str, reason: str) -> None:
    """Mark an account rejected: never polled, never registered again by discovery."""
    from services.common.clickhouse import make_client
    from services.ingest.discovery.review import RejectError, reject_account

    settings = _settings()
    client = make_client(settings)
    try:
        row = reject_account(client, settings.clickhouse_database, account_id, reason)
    except RejectError as exc:
        click.echo(f"barometre accounts reject: {exc}", err=True)
        sys.exit(1)
    finally:
        client.close()
    click.echo(f"{row.account_id}: rejected ({row.state_reason})")


@main.group()
def access() -> None:
    """Service users and their rights on Kafka and ClickHouse (docs/OPERATIONS.md, "Users and ACLs")."""


def _passwords(kind: str, roles: tuple[str, ...]) -> dict[str, str]:
    # BAROMETRE_<KIND>_<ROLE>_PASSWORD: a role without one keeps its user as it is.
    return {r: p for r in roles if (p := os.environ.get(f"BAROMETRE_{kind}_{r.upper()}_PASSWORD", ""))}


@access.command("kafka")
def access_kafka() -> None:
    """As the Kafka administrator (BAROMETRE_KAFKA_SASL_USERNAME): create the topics, set the service
    users' SCRAM passwords (BAROMETRE_KAFKA_<SERVICE>_PASSWORD) and their ACLs."""
    from services.common.kafka import SERVICE_USERS, apply_access

    settings = _settings()
    _logging(settings)
    try:
        done = apply_access(settings, _passwords("KAFKA", tuple(SERVICE_USERS)))
    except Exception as exc:
        click.echo(f"barometre access kafka: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    click.echo(
        f"kafka: {len(done['topics_created'])} topic(s) created, passwords set for "
        f"{', '.join(done['users']) or 'no user'}, {done['acls']} ACL(s) in place"
    )


@access.command("clickhouse")
@click.option(
    "--print", "print_only", is_flag=True, help="Print the statements (passwords masked), run none."
)
def access_clickhouse(print_only: bool) -> None:
    """As the ClickHouse administrator (BAROMETRE_CLICKHOUSE_USER): create or update the service users
    (BAROMETRE_CLICKHOUSE_<SERVICE>_PASSWORD) and replace their grants."""
    from infra.clickhouse.access import ROLES, statements

    settings = _settings()
    _logging(settings)
    passwords = _passwords("CLICKHOUSE", ROLES)
    cluster = bool(settings.clickhouse_cluster)  # migrate's statements run ON CLUSTER: it needs CLUSTER
    if print_only:
        every = dict.fromkeys(ROLES, "x")
        printed = statements(settings.clickhouse_database, every, mask=True, cluster=cluster)
        click.echo(";\n".join(printed) + ";")
        return
    if not passwords:
        click.echo("barometre access clickhouse: no BAROMETRE_CLICKHOUSE_<SERVICE>_PASSWORD set", err=True)
        sys.exit(2)
    from services.common.clickhouse import make_client

    client = make_client(settings)
    try:
        for statement in statements(settings.clickhouse_database, passwords, cluster=cluster):
            client.command(statement)
    except Exception as exc:
        click.echo(f"barometre access clickhouse: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    finally:
        client.close()
    click.echo(
        f"clickhouse: users {', '.join(f'barometre_{r}' for r in passwords)} and their grants in place"
    )


def _serve(app_path: str, host: str, port: int, settings: Settings, service: str) -> None:
    import uvicorn

    _logging(settings, service)
    # In JSON, uvicorn's own lines go through the root logger's formatter (log_config=None).
    extra: dict[str, object] = {"log_config": None} if settings.log_format == "json" else {}
    uvicorn.run(
        app_path,
        host=host,
        port=port,
        factory=True,
        log_level=settings.log_level.lower(),
        access_log=False,
        **extra,  # type: ignore[arg-type]  # uvicorn.run's keywords are typed one by one
    )


@main.command()
def api() -> None:
    """Run the api service (HTTP API and dashboard)."""
    s = _settings()
    _serve("services.api.__main__:app_factory", s.api_host, s.api_port, s, "api")


@main.command()
def scoring() -> None:
    """Run the scoring worker (Faust): snapshots in, aggregates in ClickHouse."""
    from services.scoring.__main__ import run_worker

    settings = _settings()
    _logging(settings, "scoring")
    run_worker(settings)


@main.command()
def ingest() -> None:
    """Run the ingest service (HTTP push of snapshots)."""
    s = _settings()
    _serve("services.ingest.__main__:app_factory", s.ingest_host, s.ingest_port, s, "ingest")


@main.command()
def poller() -> None:
    """Run the poller service: every registered account read on its cadence, within rate budgets."""
    s = _settings()
    _serve("services.ingest.polling.service:app_factory", s.poller_host, s.poller_port, s, "poller")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the text summary.")
def status(as_json: bool) -> None:
    """Summarize a running stack: services, scoring lag and rate, last snapshot, open alerts, coverage.

    Exits 1 when a service is unreachable or not ready, or Kafka or ClickHouse does not answer."""
    import json

    from services.status import gather, render

    settings = _settings()
    for quiet in ("kafka", "clickhouse_connect"):  # what is unreachable is reported, not logged
        logging.getLogger(quiet).setLevel(logging.CRITICAL)
    report = gather(settings)
    click.echo(json.dumps(report.as_json(), indent=2) if as_json else render(report))
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
