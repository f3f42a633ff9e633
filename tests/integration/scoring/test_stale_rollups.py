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
from services.scoring.processor import ROLLUP_CHUNK, Processor
from services.scoring.sink import ClickHouseSink, Statement

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


def test_a_full_batch_of_entities_is_rolled_up_by_one_statement(app_settings: Settings) -> None:
    """A batch touching as many entities as it has events (the worker's largest) needs one rollup
    statement, whose keys (past the 128 KiB a server takes as a parameter) go as external data."""
    settings = app_settings
    sink = ClickHouseSink(lambda: make_client(settings), settings.clickhouse_database)
    processor = Processor(settings, fetch_history=sink.fetch_history)
    at = datetime.now(UTC) - timedelta(hours=1)
    n = ROLLUP_CHUNK
    out = processor.process(
        [snapshot(f"facebook:t{i}", f"EPCI:{200_000_000 + i}", at, i) for i in range(n)],
        {},
    )
    assert len(out.after) == 1
    assert sum(len(key) + 3 for key in out.after[0].sets["touched"]) > 128 * 1024
    sink.write(out.tables, {0: (0, n - 1)}, out.after)
    client = make_client(settings)
    rows = client.query(
        f"SELECT count(), sum(accounts), sum(followers) FROM {settings.clickhouse_database}.entity_latest FINAL"
    ).result_rows
    assert rows == [(n, n, n * (n - 1) // 2)]
    client.close()


def test_a_statement_reads_its_keys_as_they_are(app_settings: Settings) -> None:
    keys = ["facebook:COM:38185", "a\tb", "c\\d", "e\nf", ""]
    statement = Statement(
        "SELECT throwIf(count() != {n:UInt32} OR countIf(key IN ('a\\tb', 'c\\\\d', 'e\\nf', '')) != 4) "
        "FROM touched",
        {"n": len(keys)},
        {"touched": keys},
    )
    client = make_client(app_settings)
    statement.run(client)  # raises if ClickHouse read other keys
    client.close()
