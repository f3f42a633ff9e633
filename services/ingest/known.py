"""Ingest's in-memory view of the registry (known entities, registered accounts), kept fresh.

Loaded from ClickHouse at start and every ``refresh_s`` seconds in the background. A miss (an entity
or account imported a moment ago) triggers one early reload, at most every ``miss_reload_s`` seconds,
so a fresh import is usable at once without a query per snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from clickhouse_connect.driver.client import Client

from services.common import registry

log = logging.getLogger(__name__)


class StaticRegistry:
    """A registry view loaded once (for a command-line import)."""

    def __init__(self, entities: frozenset[str], accounts: Mapping[str, str]) -> None:
        self._entities, self._accounts = entities, accounts

    @classmethod
    def load(cls, client: Client, db: str) -> StaticRegistry:
        return cls(frozenset(registry.known_entity_ids(client, db)), registry.registered_accounts(client, db))

    def entity_known(self, entity_id: str) -> bool:
        return entity_id in self._entities

    def account_entity(self, account_id: str) -> str | None:
        return self._accounts.get(account_id)


class KnownRegistry:
    """Sets of known entity ids and registered accounts, with reloads."""

    def __init__(
        self,
        client_factory: Callable[[], Client],
        db: str,
        refresh_s: float = 30.0,
        miss_reload_s: float = 2.0,
    ) -> None:
        self._client_factory = client_factory
        self._db = db
        self.refresh_s = refresh_s
        self.miss_reload_s = miss_reload_s
        self._entities: frozenset[str] = frozenset()
        self._accounts: Mapping[str, str] = {}
        self.loaded_at: float | None = None
        self._lock = asyncio.Lock()

    def _fetch(self) -> tuple[frozenset[str], Mapping[str, str]]:
        client = self._client_factory()
        try:
            return frozenset(registry.known_entity_ids(client, self._db)), registry.registered_accounts(
                client, self._db
            )
        finally:
            client.close()

    async def reload(self) -> None:
        async with self._lock:
            self._entities, self._accounts = await asyncio.to_thread(self._fetch)
            self.loaded_at = time.monotonic()
            log.info(
                "registry: %d entities, %d registered accounts", len(self._entities), len(self._accounts)
            )

    async def reload_after_miss(self) -> bool:
        """Reload if the last load is older than ``miss_reload_s``; True when it did."""
        if self.loaded_at is not None and time.monotonic() - self.loaded_at < self.miss_reload_s:
            return False
        await self.reload()
        return True

    async def run(self) -> None:
        """Reload forever (a background task); a failed reload keeps the last good view."""
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.reload()
            except Exception:
                log.exception("registry reload failed; keeping the previous view")

    def entity_known(self, entity_id: str) -> bool:
        return entity_id in self._entities

    def account_entity(self, account_id: str) -> str | None:
        return self._accounts.get(account_id)
