"""Tokens without a server: durations, the bootstrap token's length rule, and TokenVerifier's answers
(expiry at once, revocation within the cache's TTL, the bootstrap token's scopes) over a stand-in store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import SecretStr, ValidationError

from services.cli import main
from services.common import tokens
from services.common.settings import BOOTSTRAP_MIN_LENGTH, Settings
from services.common.tokens import (
    Scope,
    TokenError,
    TokenRecord,
    TokenStatus,
    TokenVerifier,
    hash_token,
    new_token,
    parse_duration,
)

BOOTSTRAP = "b" * BOOTSTRAP_MIN_LENGTH
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("2w", timedelta(weeks=2)),
        (" 7d ", timedelta(days=7)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "90", "d", "0d", "-1d", "1.5d", "90x", "1y", "9999999d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(TokenError, match="is not a duration"):
        parse_duration(text)


# --- The bootstrap token.


def test_a_short_bootstrap_token_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(bootstrap_token="tooshort-but-secret")  # type: ignore[arg-type]
    text = str(info.value)
    assert f"BAROMETRE_BOOTSTRAP_TOKEN must be at least {BOOTSTRAP_MIN_LENGTH} characters" in text
    assert "tooshort-but-secret" not in text


def test_bootstrap_token_of_the_minimum_length_and_empty() -> None:
    s = Settings(bootstrap_token="x" * BOOTSTRAP_MIN_LENGTH)  # type: ignore[arg-type]
    assert s.bootstrap_token is not None
    assert Settings(bootstrap_token="").bootstrap_token is None  # type: ignore[arg-type]  # empty: unset


def test_no_command_starts_with_a_short_bootstrap_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every service is a `barometre` command: the settings are refused before anything starts."""

    def started(*args: Any) -> None:
        raise AssertionError("started with a short bootstrap token")

    monkeypatch.setattr("services.cli._serve", started)
    monkeypatch.setattr("services.scoring.__main__.run_worker", started)
    for command in (["api"], ["ingest"], ["scoring"], ["token", "list"], ["migrate"]):
        result = CliRunner().invoke(main, command, env={"BAROMETRE_BOOTSTRAP_TOKEN": "short-secret"})
        assert result.exit_code == 2, (command, result.output)
        assert "barometre: BAROMETRE_BOOTSTRAP_TOKEN must be at least 32 characters" in result.stderr
        assert "short-secret" not in result.output


def test_the_verifier_refuses_a_short_bootstrap_token_even_unvalidated() -> None:
    settings = Settings.model_construct(bootstrap_token=SecretStr("short"), clickhouse_database="x")
    with pytest.raises(ValueError, match="at least 32 characters"):
        TokenVerifier(settings, lambda: None)  # type: ignore[arg-type,return-value]


# --- TokenVerifier, over a stand-in for the api_tokens table.


class Store:
    """Stands in for ``tokens.lookup``: hash -> record, counting look-ups."""

    def __init__(self) -> None:
        self.records: dict[str, TokenRecord] = {}
        self.lookups = 0

    def add(self, scopes: set[str], expires_at: datetime | None = None, revoked: bool = False) -> str:
        token = new_token()
        self.records[hash_token(token)] = TokenRecord(
            token[:12], frozenset(scopes), "", T0, expires_at, revoked, hash_token(token)
        )
        return token

    def revoke(self, token: str) -> None:
        record = self.records[hash_token(token)]
        self.records[hash_token(token)] = TokenRecord(**{**record.__dict__, "revoked": True})

    def lookup(self, client: Any, db: str, token_hash: str) -> TokenRecord | None:
        self.lookups += 1
        return self.records.get(token_hash)


class Clocks:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = T0

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += timedelta(seconds=seconds)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Store:
    s = Store()
    monkeypatch.setattr(tokens, "lookup", s.lookup)
    return s


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


def verifier(clocks: Clocks, bootstrap: str | None = BOOTSTRAP, ttl: float = 30.0) -> TokenVerifier:
    settings = Settings(bootstrap_token=bootstrap, clickhouse_database="t")  # type: ignore[arg-type]
    return TokenVerifier(settings, no_client, ttl=ttl, clock=lambda: clocks.mono, now=lambda: clocks.wall)


def no_client() -> Any:
    return object()  # never used: the stand-in store answers


def check(v: TokenVerifier, token: str) -> tokens.TokenCheck:
    return asyncio.run(v.check(token))


def test_a_valid_token_has_its_scopes_id_and_owner(store: Store, clocks: Clocks) -> None:
    token = store.add({"ingest"}, expires_at=T0 + timedelta(days=1))
    found = check(verifier(clocks), token)
    assert (found.status, found.scopes, found.token_id, found.owner) == (
        TokenStatus.VALID, frozenset({"ingest"}), token[:12], hash_token(token),
    )  # fmt: skip
    assert found.allows(Scope.INGEST) and not found.allows(Scope.ALERTS_WRITE) and not found.is_admin
    assert asyncio.run(verifier(clocks).scopes(token)) == {"ingest"}


def test_admin_allows_every_scope(store: Store, clocks: Clocks) -> None:
    found = check(verifier(clocks), store.add({"admin"}))
    assert found.is_admin and all(found.allows(s) for s in Scope)


def test_expiry_takes_effect_at_once_despite_the_cache(store: Store, clocks: Clocks) -> None:
    token = store.add({"alerts:write"}, expires_at=T0 + timedelta(seconds=5))
    v = verifier(clocks)
    assert check(v, token).valid
    clocks.advance(5)  # the cached look-up is 5 s old (TTL 30 s): expiry is still seen
    found = check(v, token)
    assert (found.status, found.scopes, found.owner) == (TokenStatus.EXPIRED, frozenset(), "")
    assert found.refusal == "this token has expired"
    assert asyncio.run(v.scopes(token)) == frozenset()
    assert store.lookups == 1


def test_revocation_takes_effect_within_the_ttl(store: Store, clocks: Clocks) -> None:
    token = store.add({"ingest"})
    v = verifier(clocks, ttl=30.0)
    assert v.ttl == 30.0
    assert check(v, token).valid
    store.revoke(token)
    clocks.advance(29)
    assert check(v, token).valid  # the cached answer, at most ttl old
    clocks.advance(1.5)
    found = check(v, token)
    assert found.status is TokenStatus.REVOKED and not found.scopes
    assert found.refusal == "unknown or revoked token"  # the same words as for an unknown token
    assert store.lookups == 2


def test_unknown_tokens_are_looked_up_again_soon(store: Store, clocks: Clocks) -> None:
    v = verifier(clocks)
    token = new_token()
    assert check(v, token).status is TokenStatus.UNKNOWN
    store.records[hash_token(token)] = TokenRecord(
        token[:12], frozenset({"ingest"}), "", T0, None, False, hash_token(token)
    )
    clocks.advance(2.1)
    assert check(v, token).valid


@pytest.mark.parametrize("token", ["", "brm_nope_nope", "Bearer x", "brm_0123abcd", "x" * 40])
def test_malformed_tokens_are_unknown_without_a_lookup(store: Store, clocks: Clocks, token: str) -> None:
    found = check(verifier(clocks), token)
    assert found.status is TokenStatus.UNKNOWN and found.refusal == "unknown or revoked token"
    assert store.lookups == 0


def test_the_bootstrap_token_has_every_scope_and_never_expires(store: Store, clocks: Clocks) -> None:
    v = verifier(clocks)
    clocks.advance(10 * 365 * 86400)
    found = check(v, BOOTSTRAP)
    assert found.valid and found.scopes == {"ingest", "alerts:write", "admin"} and found.is_admin
    assert (found.token_id, found.owner) == ("bootstrap", hash_token(BOOTSTRAP))
    assert check(v, BOOTSTRAP + "x").status is TokenStatus.UNKNOWN
    assert check(verifier(clocks, bootstrap=None), BOOTSTRAP).status is TokenStatus.UNKNOWN


def test_token_record_states() -> None:
    record = TokenRecord("brm_0123abcd", frozenset({"ingest"}), "", T0, T0 + timedelta(days=1), False, "h")
    assert record.state(T0) == "active"
    assert record.state(T0 + timedelta(days=1)) == "expired"
    assert TokenRecord(**{**record.__dict__, "revoked": True}).state(T0) == "revoked"
    assert TokenRecord(**{**record.__dict__, "expires_at": None}).state(T0 + timedelta(days=9999)) == "active"


# --- The token commands' options, refused before any ClickHouse connection.


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--expires-in", "90d", "--no-expiry"], "at most one of --expires-in, --expires-at and --no-expiry"),
        (["--expires-in", "90d", "--expires-at", "2030-01-01"], "at most one of"),
        (["--expires-in", "90x"], "'90x' is not a duration"),
        (["--expires-at", "soon"], "'soon' does not match the formats"),
        (["--scope", "root"], "'root' is not one of"),
    ],
)
def test_bad_create_options(args: list[str], message: str) -> None:
    scope = [] if "--scope" in args else ["--scope", "ingest"]
    result = CliRunner().invoke(main, ["token", "create", *scope, *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
