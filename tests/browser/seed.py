"""Data for the dashboard's browser tests: a small, deterministic world of collectivités and accounts,
scored by the real processor (services.scoring.processor.Processor) and written by the real ClickHouse sink,
as the scoring worker writes them, so the API serves figures computed exactly as in production.

Every account is observed twice a month for two years, then every day for the last 40 days, so the
presence barometer has 24 months of points and growth rankings have baselines for the 1-day to 90-day
windows. The figures are chosen so that the Facebook and the X rankings of communes differ.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.common.clickhouse import make_client
from services.common.events import AccountSnapshot
from services.common.names import Platform
from services.common.reference.parsers import AccountRecord
from services.common.registry import user_version, write_accounts
from services.common.settings import Settings
from services.scoring.processor import Processor
from services.scoring.sink import ClickHouseSink

# Communes of several régions, some départements and régions (names come from the registry).
COMMUNES = [
    "COM:38185",  # Grenoble (Isère, Auvergne-Rhône-Alpes)
    "COM:69123",  # Lyon (Rhône, Auvergne-Rhône-Alpes)
    "COM:69266",  # Villeurbanne
    "COM:74010",  # Annecy
    "COM:73065",  # Chambéry
    "COM:42218",  # Saint-Étienne
    "COM:35238",  # Rennes (Ille-et-Vilaine, Bretagne)
    "COM:29019",  # Brest (Finistère, Bretagne)
    "COM:44109",  # Nantes (Pays de la Loire)
    "COM:13055",  # Marseille (Provence-Alpes-Côte d'Azur)
    "COM:31555",  # Toulouse (Occitanie)
    "COM:33063",  # Bordeaux (Nouvelle-Aquitaine)
    "COM:59350",  # Lille (Hauts-de-France)
    "COM:67482",  # Strasbourg (Grand Est)
    "COM:75056",  # Paris
]
DEPARTEMENTS = ["DEP:38", "DEP:69", "DEP:35", "DEP:13", "DEP:33"]
REGIONS = ["REG:84", "REG:53", "REG:11"]
GRENOBLE = "COM:38185"

MONTHS = 24
DAILY_DAYS = 40


@dataclass(frozen=True)
class Account:
    entity_id: str
    platform: Platform
    index: int  # position of the entity in its list: drives every figure

    @property
    def account_id(self) -> str:
        return f"{self.platform.value}:{self.entity_id.lower().replace(':', '-')}"

    @property
    def handle(self) -> str:
        return self.entity_id.lower().replace(":", "")

    @property
    def since_months(self) -> int:
        """How many months ago the account opened: presence grows month after month."""
        offsets = {Platform.FACEBOOK: 0, Platform.X: 4, Platform.INSTAGRAM: 9, Platform.YOUTUBE: 14}
        return max(1, MONTHS - offsets[self.platform] - (self.index * 5) % 11)

    def followers(self, days_ago: float) -> int:
        """Followers ``days_ago`` days before now: a base and a daily growth that differ by platform,
        so that each platform has its own ranking."""
        if self.platform is Platform.FACEBOOK:
            base, per_day = 5_000 + 1_700 * self.index, 3 + (self.index * 37) % 41
        elif self.platform is Platform.X:
            base, per_day = 2_000 + 900 * ((self.index * 7) % 15), 2 + ((self.index + 5) * 53) % 47
        else:
            base, per_day = 800 + 450 * self.index, 1 + (self.index * 13) % 17
        return int(base + per_day * (MONTHS * 31 - days_ago))


def accounts() -> list[Account]:
    out: list[Account] = []
    for group in (COMMUNES, DEPARTEMENTS, REGIONS):
        for i, entity_id in enumerate(group):
            out.append(Account(entity_id, Platform.FACEBOOK, i))
            if i % 3 != 2:
                out.append(Account(entity_id, Platform.X, i))
            if i % 2 == 0:
                out.append(Account(entity_id, Platform.INSTAGRAM, i))
            if i % 4 == 1:
                out.append(Account(entity_id, Platform.YOUTUBE, i))
    return out


def observation_days(account: Account) -> Iterator[float]:
    """Days ago of each snapshot of ``account``: every 15 days, then daily for the last 40 days."""
    start = account.since_months * 30.5
    day = start
    while day > DAILY_DAYS:
        yield day
        day -= 15
    for d in range(min(DAILY_DAYS, int(start)), -1, -1):
        yield d + 0.25  # a few hours before now on the day


def snapshots(now: datetime) -> list[AccountSnapshot]:
    out: list[AccountSnapshot] = []
    for account in accounts():
        for days_ago in observation_days(account):
            observed = now - timedelta(days=days_ago)
            out.append(
                AccountSnapshot.model_validate(
                    {
                        "account_id": account.account_id,
                        "platform": account.platform.value,
                        "entity_id": account.entity_id,
                        "handle": account.handle,
                        "observed_at": observed.isoformat(),
                        "followers": account.followers(days_ago),
                        "posts_30d": 8 + account.index % 9,
                        "interactions_30d": 40 * (1 + account.index % 5) * (8 + account.index % 9),
                        "replies_30d": account.index % 6,
                        "automated_posts_30d": account.index % 3,
                        "source": "import",
                    }
                )
            )
    return out


class World:
    """The seeded data of one test database, and the scoring state to add snapshots to it later, exactly
    as the scoring worker would (its per-account states are kept between batches)."""

    def __init__(self, settings: Settings, now: datetime | None = None) -> None:
        self.settings = settings
        self.now = now or datetime.now(UTC).replace(microsecond=0)
        self._sink = ClickHouseSink(lambda: make_client(settings), settings.clickhouse_database)
        self._processor = Processor(settings, fetch_history=self._sink.fetch_history)
        self._states: dict[bytes, bytes | None] = {}
        self._written = 0

    def seed(self, batch: int = 2_000) -> int:
        """Register the accounts, score every snapshot and write the rows; returns the number of snapshots."""
        client = make_client(self.settings)
        try:
            records = [
                AccountRecord(a.entity_id, a.platform, a.account_id, a.handle, None) for a in accounts()
            ]
            write_accounts(client, self.settings.clickhouse_database, records, user_version())
        finally:
            client.close()
        items = sorted(snapshots(self.now), key=lambda s: s.observed_at)
        for start in range(0, len(items), batch):
            self.add(items[start : start + batch])
        return len(items)

    def add(self, items: list[AccountSnapshot]) -> None:
        """Score and write one batch of snapshots (rows, then the entity rollups)."""
        out = self._processor.process(items, self._states)
        # A distinct offset range per batch, as Kafka offsets would be: insert deduplication tokens differ.
        offsets = {0: (self._written, self._written + len(items) - 1)}
        self._sink.write(out.tables, offsets, out.after)
        self._states.update(out.states)
        self._written += len(items)

    def snapshot(self, account: Account, observed_at: datetime, followers: int) -> AccountSnapshot:
        return AccountSnapshot.model_validate(
            {
                "account_id": account.account_id,
                "platform": account.platform.value,
                "entity_id": account.entity_id,
                "observed_at": observed_at.isoformat(),
                "followers": followers,
                "source": "push",
            }
        )
