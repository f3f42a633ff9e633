"""API tokens: creation (``barometre token create``), storage as SHA-256 only, and verification.

A token looks like ``brm_<8 chars>_<43 chars>``; the first part is kept in clear (``token_prefix``) so an
operator can tell tokens apart, the whole is stored only as its SHA-256. ``BAROMETRE_BOOTSTRAP_TOKEN``,
when set, is accepted by every service with every scope (for automation, CONTRACT.md).

Services verify through :class:`TokenVerifier`, which caches ClickHouse look-ups briefly (a revoked
token stops working within ``ttl`` seconds) so a busy ingest does not query ClickHouse per request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum

from clickhouse_connect.driver.client import Client

from services.common.settings import Settings


class Scope(StrEnum):
    """What a token allows."""

    INGEST = "ingest"
    ALERTS_WRITE = "alerts:write"
    ADMIN = "admin"


ALL_SCOPES = frozenset(Scope)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    # The id part is hex so that the only "_" are the separators: brm_<8 hex>_<43 url-safe chars>.
    return f"brm_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"


def create_token(client: Client, db: str, scopes: set[Scope], description: str = "") -> str:
    """Store a new token with ``scopes`` and return it (the only time it is shown)."""
    token = new_token()
    now = datetime.now(UTC)
    client.insert(
        f"{db}.api_tokens",
        [
            [
                hash_token(token),
                token[:12],
                sorted(s.value for s in scopes),
                description,
                now,
                0,
                time.time_ns(),
            ]
        ],
        column_names=[
            "token_hash",
            "token_prefix",
            "scopes",
            "description",
            "created_at",
            "revoked",
            "version",
        ],
    )
    return token


def lookup_scopes(client: Client, db: str, token_hash: str) -> frozenset[str]:
    """The scopes of the token with this hash, empty when unknown or revoked."""
    rows = client.query(
        f"SELECT argMax(scopes, version), argMax(revoked, version) FROM {db}.api_tokens "
        "WHERE token_hash = {h:String} GROUP BY token_hash",
        parameters={"h": token_hash},
    ).result_rows
    if not rows or rows[0][1]:
        return frozenset()
    return frozenset(str(s) for s in rows[0][0])


class TokenVerifier:
    """Answers "which scopes does this bearer token have?", with a short cache."""

    def __init__(
        self,
        settings: Settings,
        client_factory: Callable[[], Client],
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        bootstrap = settings.bootstrap_token
        self._bootstrap = bootstrap.get_secret_value() if bootstrap else None
        self._db = settings.clickhouse_database
        self._client_factory = client_factory
        self._client: Client | None = None
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    def _lookup(self, token_hash: str) -> frozenset[str]:
        if self._client is None:
            self._client = self._client_factory()
        return lookup_scopes(self._client, self._db, token_hash)

    async def scopes(self, token: str) -> frozenset[str]:
        """The token's scopes; empty for an unknown or revoked token."""
        if self._bootstrap and hmac.compare_digest(token.encode(), self._bootstrap.encode()):
            return frozenset(s.value for s in ALL_SCOPES)
        if not token.startswith("brm_"):
            return frozenset()
        key = hash_token(token)
        now = self._clock()
        hit = self._cache.get(key)
        if hit and hit[0] > now:
            return hit[1]
        found = await asyncio.to_thread(self._lookup, key)
        # Unknown tokens are cached for a shorter time, so a token created a moment ago works soon.
        self._cache[key] = (now + (self._ttl if found else min(self._ttl, 2.0)), found)
        if len(self._cache) > 10_000:
            self._cache.clear()
        return found
