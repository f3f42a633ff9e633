"""Entity rollups of accounts that go stale without any new event: the periodic refresh the worker runs
(``Processor.stale_rollups`` + ``ClickHouseSink.refresh``) recomputes exactly those entities, so that
an entity's live sums stop counting an account once its latest point is older than the staleness
window, although no batch touched it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from services.common.clickhouse import make_client
from services.common.events import AccountSnapshot
from services.common.settings import Settings
from services.scoring.processor import Processor
from services.scoring.sink import ClickHouseSink

pytestmark = [pytest.mark.clickhouse]

MARGIN_S = 6.0  # the accounts about to go stale are still fresh this long after being written


def snapshot(account_id: str, entity_id: str, at: datetime, followers: int) -> AccountSnapshot:
    return AccountSnapshot.model_validate(
        {
            "account_id": account_id,
            "platform": "facebook",
            "entity_id": entity_id,
            "observed_at": at.isoformat(),
            "followers": followers,
        }
    )


def test_entities_whose_accounts_went_stale_are_recomputed_and_only_those(app_settings: Settings) -> None:
    settings = app_settings
    sink = ClickHouseSink(lambda: make_client(settings), settings.clickhouse_database)
    processor = Processor(settings, fetch_history=sink.fetch_history)
    window = timedelta(days=settings.staleness_days)
    now = datetime.now(UTC)
    turning = now - window + timedelta(seconds=MARGIN_S)  # fresh now, stale in MARGIN_S
    out = processor.process(
        [
            snapshot("facebook:grenoble", "COM:38185", turning, 1000),
            snapshot("facebook:grenoble_tourisme", "COM:38185", now - timedelta(hours=1), 300),
            snapshot("facebook:lyon", "COM:69123", turning, 2000),
            snapshot("facebook:paris", "COM:75056", datetime(2013, 5, 10, tzinfo=UTC), 3000),
        ],
        {},
    )
    sink.write(out.tables, {0: (0, 3)}, out.after)
    client = make_client(settings)
    db = settings.clickhouse_database

    def rollups() -> dict[str, tuple[int, int, int]]:
        rows = client.query(
            f"SELECT entity_id, accounts, present, followers FROM {db}.entity_latest FINAL"
        ).result_rows
        return {entity: (accounts, present, followers) for entity, accounts, present, followers in rows}

    assert rollups() == {
        "COM:38185": (2, 1, 1300),
        "COM:69123": (1, 1, 2000),
        "COM:75056": (0, 0, 0),  # stale already when computed: nothing to redo
    }
    assert sink.refresh(processor.stale_rollups(), processor.rollups) == 0

    time.sleep(max(0.0, (turning + window - datetime.now(UTC)).total_seconds()) + 1.0)
    assert rollups()["COM:69123"] == (1, 1, 2000)  # what the api would still serve without a refresh
    assert sink.refresh(processor.stale_rollups(), processor.rollups) == 2
    assert rollups() == {
        "COM:38185": (1, 1, 300),
        "COM:69123": (0, 0, 0),
        "COM:75056": (0, 0, 0),
    }
    assert sink.refresh(processor.stale_rollups(), processor.rollups) == 0  # done once, not every hour
    client.close()
