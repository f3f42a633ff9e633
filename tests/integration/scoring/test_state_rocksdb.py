"""The account-state table in Faust's RocksDB store (``BAROMETRE_SCORING_STORE=rocksdb://``).

A batch's states go into the RocksDB database of their own partition (``changelog.put_local``): a worker
restarted on its data directory finds them there, and a worker without one recovers them from the
changelog; either way its next snapshot is scored against the point the first worker saw (the 1-day
baseline in ``account_latest``), and the states it writes hold both points.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from services.common.clickhouse import make_client
from services.common.settings import Settings
from services.scoring.processor import AccountState
from tests.integration.scoring.test_dead_letters import Producer, Worker, end_offsets
from tests.integration.scoring.test_state_recovery import ACCOUNTS, changelog, snapshot

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

PORT = 18749


def rocksdb_worker(settings: Settings) -> Worker:
    worker = Worker(settings)
    worker.env["BAROMETRE_SCORING_STORE"] = "rocksdb://"
    return worker


@pytest.mark.parametrize("keep_data_dir", [True, False], ids=["restart on its disk", "new disk"])
def test_states_in_rocksdb_survive_a_restart(
    app_settings: Settings, tmp_path: Path, keep_data_dir: bool
) -> None:
    settings = app_settings.model_copy(update={"scoring_port": PORT, "data_dir": tmp_path})
    producer = Producer(settings)
    first = rocksdb_worker(settings)
    first.start()
    try:
        sent = producer.send([snapshot(a, 2, 1000 + k) for k, a in enumerate(ACCOUNTS)])
        first.wait(end_offsets(sent))
    finally:
        first.stop()
    stores = list(tmp_path.glob("**/account-state*"))
    assert stores, "no RocksDB database under the data directory"
    if not keep_data_dir:
        for path in stores:
            shutil.rmtree(path, ignore_errors=True)

    second = rocksdb_worker(settings)
    second.start()
    try:
        sent = producer.send([snapshot(a, 0, 2000 + k) for k, a in enumerate(ACCOUNTS)])
        second.wait(end_offsets(sent))
        assert second.get("/readyz").json()["checks"]["state"] == "ok"
    finally:
        second.stop()

    rows = (
        make_client(settings)
        .query("SELECT account_id, followers, before_1d FROM account_latest FINAL ORDER BY account_id")
        .result_rows
    )
    assert {a: (f, b) for a, f, b in rows} == {a: (2000 + k, 1000 + k) for k, a in enumerate(ACCOUNTS)}
    records = changelog(settings)
    for k, account in enumerate(ACCOUNTS):
        state = AccountState.from_bytes(records[account.encode()][-1][1])
        assert [p.followers for p in state.series] == [1000 + k, 2000 + k], account
