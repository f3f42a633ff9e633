"""The data the api tests read: a handful of accounts with figures simple enough to compute every
expected answer by hand, written without Kafka by the real scoring Processor and ClickHouseSink.

Two periods: spring 2013 (fixed instants, for answers "as of") and the last 31 days before ``now``
(for live answers). The panel ``test`` holds Grenoble, Lyon, Paris, Marseille and the Isère.

facebook (all active unless said):
  facebook:grenoble   COM:38185  2013-04-10 1000, 2013-05-10 1300 | now-31d 5000, now-8d 5100,
                                 now-2d 5200, now-1h 5300
  facebook:grenoble_tourisme COM:38185  2013-05-10 100 | now-1h 700 (no baseline)
  facebook:lyon       COM:69123  2013-04-10 2000, 2013-05-10 2100 | now-31d 9000, now-1h 9500
  facebook:paris      COM:75056  2013-04-10 3000, 2013-05-10 3050 | now-1h 20000 (no baseline)
  facebook:marseille  COM:13055  2013-04-10 500, 2013-05-10 deleted | now-60d 800 (stale)
  facebook:isere      DEP:38     2013-05-10 4000 | now-31d 4000, now-1h deleted (followers 0)
x, sent as "twitter":
  x:grenoble          COM:38185  now-31d 600, now-1h 800
instagram (scores):
  instagram:grenoble  COM:38185  score 5.0 at each point with a 30-day baseline (1000 -> 1100)
  instagram:lyon      COM:69123  score 1.0 at each point with a 30-day baseline (1000 -> 1000)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.common.clickhouse import make_client
from services.common.events import AccountSnapshot
from services.common.names import Platform
from services.common.reference import AccountRecord, PanelMember
from services.common.registry import user_version, write_accounts, write_panel
from services.common.settings import Settings
from services.scoring.processor import Processor
from services.scoring.sink import ClickHouseSink

PANEL = "test"
PANEL_MEMBERS = ("COM:38185", "COM:69123", "COM:75056", "COM:13055", "DEP:38")
APRIL, MAY = datetime(2013, 4, 10, 10, tzinfo=UTC), datetime(2013, 5, 10, 10, tzinfo=UTC)
AT = datetime(2013, 5, 15, tzinfo=UTC)  # the "as of" instant of most tests


@dataclass(frozen=True)
class Seeded:
    settings: Settings
    now: datetime


def snapshot(account_id: str, entity_id: str, at: datetime, followers: int, **extra: Any) -> AccountSnapshot:
    platform = account_id.partition(":")[0]
    return AccountSnapshot.model_validate(
        {"account_id": account_id, "platform": platform, "entity_id": entity_id,
         "observed_at": at.isoformat(), "followers": followers, "source": "import", **extra}
    )  # fmt: skip


def good(followers: int) -> dict[str, int]:
    """Figures of a score-5 account (with a +2 % or more 30-day growth)."""
    posts = 12
    return {"posts_30d": posts, "interactions_30d": posts * followers // 100 + 1, "replies_30d": 6,
            "automated_posts_30d": 0}  # fmt: skip


BAD = {"posts_30d": 12, "interactions_30d": 0, "replies_30d": 0, "automated_posts_30d": 12}


def history_2013() -> list[AccountSnapshot]:
    return [
        snapshot("facebook:grenoble", "COM:38185", APRIL, 1000),
        snapshot("facebook:grenoble", "COM:38185", MAY, 1300),
        snapshot("facebook:grenoble_tourisme", "COM:38185", MAY, 100),
        snapshot("facebook:lyon", "COM:69123", APRIL, 2000),
        snapshot("facebook:lyon", "COM:69123", MAY, 2100),
        snapshot("facebook:paris", "COM:75056", APRIL, 3000),
        snapshot("facebook:paris", "COM:75056", MAY, 3050),
        snapshot("facebook:marseille", "COM:13055", APRIL, 500),
        snapshot("facebook:marseille", "COM:13055", MAY, 0, status="deleted"),
        snapshot("facebook:isere", "DEP:38", MAY, 4000),
        snapshot("instagram:grenoble", "COM:38185", APRIL, 1000, **good(1000)),
        snapshot("instagram:grenoble", "COM:38185", MAY, 1100, **good(1100)),
        snapshot("instagram:lyon", "COM:69123", APRIL, 1000, **BAD),
        snapshot("instagram:lyon", "COM:69123", MAY, 1000, **BAD),
    ]


def live(now: datetime) -> list[AccountSnapshot]:
    d, h = timedelta(days=1), timedelta(hours=1)
    return [
        snapshot("facebook:grenoble", "COM:38185", now - 31 * d, 5000),
        snapshot("facebook:grenoble", "COM:38185", now - 8 * d, 5100),
        snapshot("facebook:grenoble", "COM:38185", now - 2 * d, 5200),
        snapshot("facebook:grenoble", "COM:38185", now - h, 5300, handle="VilleDeGrenoble"),
        snapshot("facebook:grenoble_tourisme", "COM:38185", now - h, 700),
        snapshot("facebook:lyon", "COM:69123", now - 31 * d, 9000),
        snapshot("facebook:lyon", "COM:69123", now - h, 9500),
        snapshot("facebook:paris", "COM:75056", now - h, 20000),
        snapshot("facebook:marseille", "COM:13055", now - 60 * d, 800),
        snapshot("facebook:isere", "DEP:38", now - 31 * d, 4000),
        snapshot("facebook:isere", "DEP:38", now - h, 0, status="deleted"),
        snapshot("twitter:grenoble", "COM:38185", now - 31 * d, 600),
        snapshot("twitter:grenoble", "COM:38185", now - h, 800),
        snapshot("instagram:grenoble", "COM:38185", now - 31 * d, 1000, **good(1000)),
        snapshot("instagram:grenoble", "COM:38185", now - h, 1100, **good(1100)),
        snapshot("instagram:lyon", "COM:69123", now - 31 * d, 1000, **BAD),
        snapshot("instagram:lyon", "COM:69123", now - h, 1000, **BAD),
    ]


def write(settings: Settings, batches: Iterable[list[AccountSnapshot]]) -> None:
    """Run the scoring Processor on each batch (a dict as its state table) and write what it produces
    with the real sink, exactly as the worker does, minus Kafka."""
    sink = ClickHouseSink(lambda: make_client(settings), settings.clickhouse_database)
    processor = Processor(settings, fetch_history=sink.fetch_history)
    states: dict[bytes, bytes | None] = {}
    for number, batch in enumerate(batches):
        out = processor.process(batch, states)
        sink.write(out.tables, {0: (number, number)}, out.after)
        states.update(out.states)


def seed(settings: Settings, now: datetime) -> Seeded:
    client = make_client(settings)
    db = settings.clickhouse_database
    write_panel(client, db, [PanelMember(e, PANEL) for e in PANEL_MEMBERS], user_version())
    # Registered before it was ever observed: shown by the entity page without figures.
    write_accounts(
        client, db,
        [AccountRecord("COM:38185", Platform.YOUTUBE, "youtube:UCgrenoble", "grenoble", None),
         AccountRecord("COM:38185", Platform.FACEBOOK, "facebook:grenoble", "VilleDeGrenoble", None)],
        user_version(),
    )  # fmt: skip
    client.close()
    write(settings, [history_2013(), live(now)])
    return Seeded(settings, now)
