"""Tokens against the real ClickHouse endpoint: create with an expiry, list, revoke (the store and the
`barometre token` commands), migration 0007 on a database of before, and both services' answers to an
expired or revoked token."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from services.cli import main
from services.common import migrations
from services.common.clickhouse import make_client
from services.common.settings import Settings
from services.common.tokens import (
    Scope,
    TokenError,
    TokenStatus,
    TokenVerifier,
    create_token,
    hash_token,
    issue_token,
    list_tokens,
    lookup,
    revoke_token,
)

pytestmark = pytest.mark.clickhouse


@pytest.fixture
def ch(app_settings: Settings) -> Iterator[Any]:
    client = make_client(app_settings)
    yield client
    client.close()


def test_create_stores_the_expiry_a_year_by_default(ch: Any, app_settings: Settings) -> None:
    db = app_settings.clickhouse_database
    before = datetime.now(UTC)
    token, record = issue_token(ch, db, {Scope.INGEST}, "poller")
    stored = lookup(ch, db, hash_token(token))
    assert stored is not None and stored == record
    assert stored.expires_at is not None
    assert stored.expires_at - stored.created_at == timedelta(days=365)
    assert timedelta(0) <= stored.created_at - before.replace(microsecond=before.microsecond // 1000 * 1000)
    never = create_token(ch, db, {Scope.ALERTS_WRITE}, expires_in=None)
    assert (found := lookup(ch, db, hash_token(never))) is not None and found.expires_at is None
    at = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    dated = create_token(ch, db, {Scope.ADMIN}, expires_at=at)
    assert (found := lookup(ch, db, hash_token(dated))) is not None and found.expires_at == at
    with pytest.raises(TokenError, match="not in the future"):
        create_token(ch, db, {Scope.ADMIN}, expires_at=datetime(2020, 1, 1, tzinfo=UTC))
    with pytest.raises(TokenError, match="at least one scope"):
        create_token(ch, db, set())


def test_list_and_revoke(ch: Any, app_settings: Settings) -> None:
    db = app_settings.clickhouse_database
    a = create_token(ch, db, {Scope.INGEST}, "a")
    b = create_token(ch, db, {Scope.ALERTS_WRITE, Scope.ADMIN}, "b")
    c = create_token(ch, db, {Scope.INGEST}, "c")
    listed = list_tokens(ch, db)
    assert [(r.token_id, r.description, sorted(r.scopes), r.revoked) for r in listed] == [
        (a[:12], "a", ["ingest"], False),
        (b[:12], "b", ["admin", "alerts:write"], False),
        (c[:12], "c", ["ingest"], False),
    ]
    record, now = revoke_token(ch, db, a[:12])  # brm_<8 hex>, as listed
    assert (record.token_id, record.revoked, now) == (a[:12], True, True)
    assert revoke_token(ch, db, a[4:12])[1] is False  # the 8 hex digits alone; already revoked
    assert revoke_token(ch, db, b)[0].token_id == b[:12]  # the token itself
    assert {r.token_id: r.state(datetime.now(UTC)) for r in list_tokens(ch, db)} == {
        a[:12]: "revoked", b[:12]: "revoked", c[:12]: "active",
    }  # fmt: skip
    for bad, message in [("brm_00000000", "no token has the id"), ("nope", "is not a token id"),
                         (a[:12] + "' OR 1=1 --", "is not a token id")]:  # fmt: skip
        with pytest.raises(TokenError, match=message):
            revoke_token(ch, db, bad)


def test_the_token_commands(app_settings: Settings) -> None:
    env = {
        "BAROMETRE_CLICKHOUSE_URL": app_settings.clickhouse_url,
        "BAROMETRE_CLICKHOUSE_DATABASE": app_settings.clickhouse_database,
    }
    runner = CliRunner()
    made = runner.invoke(main, ["token", "create", "--scope", "ingest", "--expires-in", "90d",
                                "--description", "pousseur"], env=env)  # fmt: skip
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()  # stdout is the token alone (scripts capture it)
    assert token.startswith("brm_") and "\n" not in token
    assert made.stderr.startswith(f"id {token[:12]}, scopes ingest, expires ")
    admin = runner.invoke(main, ["token", "create", "--scope", "admin", "--no-expiry"], env=env)
    assert admin.exit_code == 0 and "expires never" in admin.stderr

    listed = runner.invoke(main, ["token", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0] == "id\tscopes\tcreated_at\texpires_at\tstate\tdescription"
    first = lines[1].split("\t")
    assert (first[0], first[1], first[4], first[5]) == (token[:12], "ingest", "active", "pousseur")
    expires = datetime.fromisoformat(first[3])
    assert timedelta(days=89, hours=23) < expires - datetime.now(UTC) <= timedelta(days=90)
    assert lines[2].split("\t")[3:5] == ["never", "active"]
    assert token not in listed.output and hash_token(token) not in listed.output
    assert token[13:] not in listed.output and hash_token(token)[:16] not in listed.output

    revoked = runner.invoke(main, ["token", "revoke", token[:12]], env=env)
    assert (revoked.exit_code, revoked.stdout) == (0, f"{token[:12]}: revoked\n")
    again = runner.invoke(main, ["token", "revoke", token[:12]], env=env)
    assert (again.exit_code, again.stdout) == (0, f"{token[:12]}: already revoked\n")
    assert runner.invoke(main, ["token", "list"], env=env).stdout.splitlines()[1].split("\t")[4] == "revoked"
    unknown = runner.invoke(main, ["token", "revoke", "brm_00000000"], env=env)
    assert unknown.exit_code == 1 and "no token has the id 'brm_00000000'" in unknown.stderr
    past = runner.invoke(
        main, ["token", "create", "--scope", "ingest", "--expires-at", "2020-01-01"], env=env
    )
    assert past.exit_code == 1 and "is not in the future" in past.stderr


def test_the_verifier_against_the_table(ch: Any, app_settings: Settings) -> None:
    db = app_settings.clickhouse_database
    short = create_token(ch, db, {Scope.INGEST}, expires_in=timedelta(seconds=1))
    kept = create_token(ch, db, {Scope.INGEST})
    verifier = TokenVerifier(app_settings, lambda: make_client(app_settings), ttl=0.0)
    assert asyncio.run(verifier.check(short)).valid
    time.sleep(1.1)
    assert asyncio.run(verifier.check(short)).status is TokenStatus.EXPIRED
    revoke_token(ch, db, kept[:12])
    assert asyncio.run(verifier.check(kept)).status is TokenStatus.REVOKED  # ttl 0: at once


def test_migration_0007_on_a_database_of_before(ch: Any, tmp_path: Path) -> None:
    """Tokens and webhooks written before 0007 keep working: no expiry, and no owner (admin only)."""
    db = f"mig_{uuid.uuid4().hex[:10]}"
    for path in migrations.MIGRATIONS_DIR.glob("*.sql"):
        if int(path.name[:4]) < 7:
            shutil.copy(path, tmp_path / path.name)
    try:
        migrations.migrate(ch, db, tmp_path)
        ch.command(
            f"INSERT INTO {db}.api_tokens (token_hash, token_prefix, scopes, created_at, revoked, version) "
            f"VALUES ('{'a' * 64}', 'brm_0123abcd', ['ingest'], now64(3), 0, 1)"
        )
        ch.command(
            f"INSERT INTO {db}.webhook_subscriptions VALUES ('s1', 'https://e.org/x', 'whsec_x', [], [], [], "
            "'info', '', 'bootstrap', now64(3), 0, 1)"
        )
        assert migrations.migrate(ch, db) == ["0007_token_expiry_webhook_owner"]
        record = lookup(ch, db, "a" * 64)
        assert (
            record is not None and record.expires_at is None and record.state(datetime.now(UTC)) == "active"
        )
        assert ch.command(f"SELECT owner FROM {db}.webhook_subscriptions FINAL") == ""
        assert migrations.rollback(ch, db, 6) == ["0007_token_expiry_webhook_owner"]
        assert ch.command(f"EXISTS TABLE {db}.api_tokens") == 1
        columns = ch.query(f"SELECT name FROM system.columns WHERE database = '{db}'").result_rows
        assert not {"owner", "expires_at"} & {r[0] for r in columns}
    finally:
        ch.command(f"DROP DATABASE IF EXISTS {db}")


@pytest.mark.kafka
def test_the_ingest_says_a_token_expired(ch: Any, app_settings: Settings) -> None:
    from services.ingest.app import create_app as ingest_app

    db = app_settings.clickhouse_database
    expired = create_token(ch, db, {Scope.INGEST}, expires_in=timedelta(seconds=1))
    revoked = create_token(ch, db, {Scope.INGEST})
    revoke_token(ch, db, revoked)
    time.sleep(1.1)
    with TestClient(ingest_app(app_settings)) as client:
        for token, message in [(expired, "this token has expired"), (revoked, "unknown or revoked token")]:
            r = client.post("/v1/snapshots", json=[], headers={"Authorization": f"Bearer {token}"})
            assert (r.status_code, r.json()["error"]) == (401, {"code": "unauthorized", "message": message})
            assert r.headers["WWW-Authenticate"] == "Bearer"
