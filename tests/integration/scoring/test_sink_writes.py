"""What a batch's write leaves behind in the worker: nothing for the cycle collector.

A batch's rows are tens of thousands of lists. Left in a reference cycle after the insert, they live on
until the cycle collector runs, and every young-generation collection meanwhile walks them all: on the
scoring bench that was 6 of 60 seconds of the worker's time.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from services.common.clickhouse import make_client
from services.common.events import AccountSnapshot
from services.common.settings import Settings
from services.scoring.processor import Processor
from services.scoring.sink import ClickHouseSink

pytestmark = [pytest.mark.clickhouse]

ACCOUNTS = 2_000


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_written_batch_is_freed_without_the_cycle_collector(
    app_settings: Settings, collector_off: None
) -> None:
    sink = ClickHouseSink(lambda: make_client(app_settings), app_settings.clickhouse_database)
    processor = Processor(app_settings, fetch_history=sink.fetch_history)
    at = datetime.now(UTC) - timedelta(hours=1)
    snapshots = [
        AccountSnapshot.model_validate(
            {
                "account_id": f"facebook:s{i}",
                "platform": "facebook",
                "entity_id": f"EPCI:{200_000_000 + i}",
                "observed_at": at.isoformat(),
                "followers": i,
            }
        )
        for i in range(ACCOUNTS)
    ]
    out = processor.process(snapshots, {})
    rows = sum(len(data.rows) for data in out.tables.values())
    assert rows >= 3 * ACCOUNTS
    sink.write(out.tables, {0: (0, ACCOUNTS - 1)}, out.after)
    del out
    # Whatever the write made that only the cycle collector can free (the client's per-request objects);
    # the rows themselves would be thousands more.
    assert gc.collect() < ACCOUNTS // 4
    client = make_client(app_settings)
    written = client.command(f"SELECT count() FROM {app_settings.clickhouse_database}.account_latest")
    assert written == ACCOUNTS
    client.close()
