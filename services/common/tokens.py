"""API tokens: creation, listing and revocation (``barometre token create|list|revoke``), storage as
SHA-256 only, expiry, and verification.

A token looks like ``brm_<8 hex>_<43 chars>``. Its first part, ``brm_<8 hex>``, is kept in clear
(``token_prefix``): it is the token's *id*, what ``barometre token list`` shows and ``barometre token
revoke`` takes; the whole token is stored only as its SHA-256. Every token has scopes (:class:`Scope`):
``ingest`` (POST snapshots), ``alerts:write`` (acknowledge alerts, silences, the token's own webhooks)
and ``admin`` (everything the other two allow, and every token's webhooks). A token expires at
``expires_at`` (``barometre token create`` gives a year unless told otherwise; ``--no-expiry`` for
none); from then on it answers 401 "expired".

``BAROMETRE_BOOTSTRAP_TOKEN``, when set, is accepted by every service with every scope, ``admin``
included, and never expires (rotate it by changing the variable): it is for automation and the first
operator. It must be at least :data:`BOOTSTRAP_MIN_LENGTH` characters (services.common.settings refuses
a shorter one, so no process starts with it).

Services verify through :class:`TokenVerifier`, which caches ClickHouse look-ups for ``ttl`` seconds
(30 by default) so a busy ingest does not query ClickHouse per request. Expiry is checked against the
clock at every request, so an expired token is refused at once; a revoked token is refused within
``ttl`` seconds (the cached answer is that old at most), by every process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from clickhouse_connect.driver.client import Client

from services.common.names import Table
from services.common.settings import BOOTSTRAP_MIN_LENGTH, Settings

__all__ = [
    "ALL_SCOPES",
    "BOOTSTRAP_MIN_LENGTH",
    "DEFAULT_LIFETIME",
    "Scope",
    "TokenCheck",
    "TokenError",
    "TokenRecord",
    "TokenStatus",
    "TokenVerifier",
    "create_token",
    "hash_token",
    "issue_token",
    "list_tokens",
    "lookup",
    "lookup_scopes",
    "new_token",
    "parse_duration",
    "revoke_token",
]


class Scope(StrEnum):
    """What a token allows."""

    INGEST = "ingest"
    ALERTS_WRITE = "alerts:write"
    ADMIN = "admin"


ALL_SCOPES = frozenset(Scope)

# How long a token made by `barometre token create` lives unless told otherwise.
DEFAULT_LIFETIME = timedelta(days=365)
# The id of the bootstrap token in answers and logs (it has no stored row).
BOOTSTRAP_ID = "bootstrap"

_ID = re.compile(r"^(?:brm_)?([0-9a-f]{8})$")
_TOKEN = re.compile(r"^brm_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}$")
_DURATION = re.compile(r"^\s*([0-9]{1,6})\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class TokenError(ValueError):
    """A token id that names no token (or several), or a value the token commands cannot use."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    # The id part is hex so that the only "_" are the separators: brm_<8 hex>_<43 url-safe chars>.
    return f"brm_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w`` as a timedelta (more than zero)."""
    m = _DURATION.match(text)
    if not m or int(m.group(1)) == 0:
        raise TokenError(f"{text!r} is not a duration: a positive number and a unit, m, h, d or w (e.g. 90d)")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


@dataclass(frozen=True)
class TokenRecord:
    """A stored token, as the operator sees it (never the token, never its hash in output)."""

    token_id: str  # brm_<8 hex>
    scopes: frozenset[str]
    description: str
    created_at: datetime
    expires_at: datetime | None
    revoked: bool
    token_hash: str  # for lookups and webhook ownership; not printed

    def state(self, now: datetime) -> str:
        """``revoked``, ``expired`` or ``active`` at ``now``."""
        if self.revoked:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def _utc(moment: datetime | None) -> datetime | None:
    # clickhouse-connect reads DateTime64(3, 'UTC') as naive datetimes: they are UTC.
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _ms(moment: datetime) -> datetime:
    """``moment`` to the millisecond, as DateTime64(3) stores it."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


_FIELDS = ("token_prefix", "scopes", "description", "created_at", "expires_at", "revoked")
# Aliases of their own: WHERE token_prefix must read the column, not the aggregate.
_LATEST = ", ".join(f"argMax({f}, version) AS latest_{f}" for f in _FIELDS)


def _record(row: Sequence[Any]) -> TokenRecord:
    token_hash, prefix, scopes, description, created_at, expires_at, revoked = row
    return TokenRecord(
        token_id=str(prefix),
        scopes=frozenset(str(s) for s in scopes),
        description=str(description),
        created_at=_utc(created_at) or datetime.fromtimestamp(0, UTC),
        expires_at=_utc(expires_at),
        revoked=bool(revoked),
        # FixedString(64) is read as bytes.
        token_hash=token_hash.decode() if isinstance(token_hash, bytes) else str(token_hash),
    )


def _insert(client: Client, db: str, record: TokenRecord) -> None:
    client.insert(
        f"{db}.{Table.API_TOKENS}",
        [
            [
                record.token_hash,
                record.token_id,
                sorted(record.scopes),
                record.description,
                record.created_at,
                record.expires_at,
                int(record.revoked),
                time.time_ns(),
            ]
        ],
        column_names=[
            "token_hash",
            "token_prefix",
            "scopes",
            "description",
            "created_at",
            "expires_at",
            "revoked",
            "version",
        ],
    )


def create_token(
    client: Client,
    db: str,
    scopes: set[Scope],
    description: str = "",
    *,
    expires_in: timedelta | None = DEFAULT_LIFETIME,
    expires_at: datetime | None = None,
) -> str:
    """Store a new token with ``scopes`` and return it (the only time it is shown). It expires at
    ``expires_at`` when given, else ``expires_in`` from now (a year by default); ``expires_in=None``
    and no ``expires_at``: never."""
    token, _ = issue_token(client, db, scopes, description, expires_in=expires_in, expires_at=expires_at)
    return token


def issue_token(
    client: Client,
    db: str,
    scopes: set[Scope],
    description: str = "",
    *,
    expires_in: timedelta | None = DEFAULT_LIFETIME,
    expires_at: datetime | None = None,
) -> tuple[str, TokenRecord]:
    """:func:`create_token`, also returning what was stored."""
    if not scopes:
        raise TokenError("a token needs at least one scope")
    now = datetime.now(UTC)
    if expires_at is None and expires_in is not None:
        expires_at = now + expires_in
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise TokenError("the expiry needs a time zone (e.g. 2027-01-01T00:00:00Z)")
        if expires_at <= now:
            raise TokenError(f"the expiry {expires_at.isoformat()} is not in the future")
    token = new_token()
    record = TokenRecord(
        token_id=token[:12],
        scopes=frozenset(s.value for s in scopes),
        description=description,
        created_at=_ms(now),
        expires_at=_ms(expires_at.astimezone(UTC)) if expires_at is not None else None,
        revoked=False,
        token_hash=hash_token(token),
    )
    _insert(client, db, record)
    return token, record


def lookup(client: Client, db: str, token_hash: str) -> TokenRecord | None:
    """The token with this hash (its latest state), or None when there is none."""
    rows = client.query(
        f"SELECT token_hash, {_LATEST} FROM {db}.{Table.API_TOKENS} WHERE token_hash = {{h:String}} "
        "GROUP BY token_hash",
        parameters={"h": token_hash},
    ).result_rows
    return _record(rows[0]) if rows else None


def lookup_scopes(client: Client, db: str, token_hash: str) -> frozenset[str]:
    """The scopes of the token with this hash, empty when unknown, revoked or expired."""
    record = lookup(client, db, token_hash)
    if record is None or record.state(datetime.now(UTC)) != "active":
        return frozenset()
    return record.scopes


def list_tokens(client: Client, db: str) -> list[TokenRecord]:
    """Every stored token (revoked and expired ones too), oldest first."""
    rows = client.query(
        f"SELECT token_hash, {_LATEST} FROM {db}.{Table.API_TOKENS} GROUP BY token_hash "
        "ORDER BY latest_created_at, latest_token_prefix"
    ).result_rows
    return [_record(r) for r in rows]


def revoke_token(client: Client, db: str, token_id: str) -> tuple[TokenRecord, bool]:
    """Revoke the token named by its id (``brm_1a2b3c4d`` or ``1a2b3c4d``, as ``list`` shows it) or by the
    token itself; return it and whether it was revoked now (False: it already was)."""
    text = token_id.strip()
    if _TOKEN.match(text):
        found = [r for r in [lookup(client, db, hash_token(text))] if r is not None]
    else:
        m = _ID.match(text)
        if not m:
            raise TokenError(f"{token_id!r} is not a token id (brm_ and 8 hex digits, as `token list` shows)")
        prefix = f"brm_{m.group(1)}"
        rows = client.query(
            f"SELECT token_hash, {_LATEST} FROM {db}.{Table.API_TOKENS} WHERE token_prefix = {{p:String}} "
            "GROUP BY token_hash",
            parameters={"p": prefix},
        ).result_rows
        found = [_record(r) for r in rows]
    if not found:
        raise TokenError(f"no token has the id {text!r}")
    if len(found) > 1:
        raise TokenError(f"{len(found)} tokens have the id {text!r}: revoke with the token itself")
    record = found[0]
    if record.revoked:
        return record, False
    revoked = dataclasses.replace(record, revoked=True)
    _insert(client, db, revoked)
    return revoked, True


# --- Verification.


class TokenStatus(StrEnum):
    VALID = "valid"
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True)
class TokenCheck:
    """What a bearer token is worth now."""

    status: TokenStatus
    scopes: frozenset[str] = frozenset()
    token_id: str = ""  # brm_<8 hex>, or "bootstrap"
    owner: str = ""  # the token's SHA-256: what owns the webhooks it creates

    @property
    def valid(self) -> bool:
        return self.status is TokenStatus.VALID

    @property
    def is_admin(self) -> bool:
        return self.valid and Scope.ADMIN in self.scopes

    def allows(self, scope: Scope) -> bool:
        """Whether the token is valid and has ``scope`` (or ``admin``, which allows everything)."""
        return self.valid and (scope in self.scopes or Scope.ADMIN in self.scopes)

    @property
    def refusal(self) -> str:
        """The 401 message for a token that is not valid: it says "expired" for an expired token, and
        nothing that tells an unknown token from a revoked one."""
        if self.status is TokenStatus.EXPIRED:
            return "this token has expired"
        return "unknown or revoked token"


_UNKNOWN = TokenCheck(TokenStatus.UNKNOWN)


class TokenVerifier:
    """Answers "which scopes does this bearer token have?", with a short cache (see the module's
    docstring: expiry takes effect at once, revocation within ``ttl`` seconds)."""

    def __init__(
        self,
        settings: Settings,
        client_factory: Callable[[], Client],
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        bootstrap = settings.bootstrap_token
        self._bootstrap = bootstrap.get_secret_value() if bootstrap else None
        if self._bootstrap and len(self._bootstrap) < BOOTSTRAP_MIN_LENGTH:
            # Settings refuses it already; this guards settings built without validation.
            raise ValueError(f"BAROMETRE_BOOTSTRAP_TOKEN must be at least {BOOTSTRAP_MIN_LENGTH} characters")
        self._bootstrap_hash = hash_token(self._bootstrap) if self._bootstrap else ""
        self._db = settings.clickhouse_database
        self._client_factory = client_factory
        self._client: Client | None = None
        self._ttl = ttl
        self._clock = clock
        self._now = now
        self._cache: dict[str, tuple[float, TokenRecord | None]] = {}

    @property
    def ttl(self) -> float:
        """Seconds a look-up is reused: a revoked token is refused within this time."""
        return self._ttl

    def _lookup(self, token_hash: str) -> TokenRecord | None:
        if self._client is None:
            self._client = self._client_factory()
        return lookup(self._client, self._db, token_hash)

    async def check(self, token: str) -> TokenCheck:
        """What ``token`` is worth now: valid with its scopes, or unknown, revoked or expired."""
        if self._bootstrap and hmac.compare_digest(token.encode(), self._bootstrap.encode()):
            return TokenCheck(TokenStatus.VALID, frozenset(ALL_SCOPES), BOOTSTRAP_ID, self._bootstrap_hash)
        if not _TOKEN.match(token):
            return _UNKNOWN
        key = hash_token(token)
        now = self._clock()
        hit = self._cache.get(key)
        if hit and hit[0] > now:
            record = hit[1]
        else:
            record = await asyncio.to_thread(self._lookup, key)
            # Unknown tokens are cached for a shorter time, so a token created a moment ago works soon.
            self._cache[key] = (now + (self._ttl if record else min(self._ttl, 2.0)), record)
            if len(self._cache) > 10_000:
                self._cache.clear()
        if record is None:
            return _UNKNOWN
        state = record.state(self._now())
        if state == "revoked":
            return TokenCheck(TokenStatus.REVOKED, token_id=record.token_id)
        if state == "expired":
            return TokenCheck(TokenStatus.EXPIRED, token_id=record.token_id)
        return TokenCheck(TokenStatus.VALID, record.scopes, record.token_id, record.token_hash)

    async def scopes(self, token: str) -> frozenset[str]:
        """The token's scopes; empty for an unknown, revoked or expired token."""
        found = await self.check(token)
        return found.scopes if found.valid else frozenset()
