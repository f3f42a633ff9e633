"""`barometre simulate` on the real broker: accounts registered, history back-filled, then live steps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.common.clickhouse import make_client
from services.common.events import AccountSnapshot
from services.common.settings import Settings
from services.ingest.simulate import SimulateOptions, run_simulator
from tests.integration.ingest.helpers import consume_all

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]


def test_back_fill_then_live_steps(app_settings: Settings) -> None:
    now = datetime(2026, 3, 10, 12, 7, tzinfo=UTC)
    options = SimulateOptions(
        scale=0.02, days_back=3, step=timedelta(minutes=30), until=now + timedelta(minutes=1)
    )
    total = run_simulator(app_settings, options, now=lambda: now)
    assert total > 0
    records = consume_all(app_settings, total, timeout_ms=20000)
    assert len(records) == total
    events = [AccountSnapshot.model_validate(value) for _, value in records]
    days = sorted({e.observed_at.date().isoformat() for e in events})
    assert days == ["2026-03-07", "2026-03-08", "2026-03-09", "2026-03-10"]
    live = {e.observed_at for e in events if e.observed_at.date().isoformat() == "2026-03-10"}
    assert live == {datetime(2026, 3, 10, 12, 0, tzinfo=UTC)}
    assert all(e.source == "simulator" and e.entity_id for e in events)
    ch = make_client(app_settings)
    registered = ch.command(f"SELECT count() FROM {app_settings.clickhouse_database}.accounts")
    ch.close()
    assert int(registered) >= len({e.account_id for e in events})
