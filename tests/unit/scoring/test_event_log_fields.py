"""The scoring worker's log lines about an account's events carry the events' ids (account, key,
partition and offset of each record), which JSON logs show as fields (services.common.logs)."""

from __future__ import annotations

import json
import logging

import pytest

from services.common.logs import JsonFormatter
from tests.unit.scoring.test_pipeline import World, run


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [
        json.loads(JsonFormatter("scoring").format(r))
        for r in caplog.records
        if r.name == "services.scoring.pipeline"
    ]


def test_a_failed_account_is_logged_with_its_records(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="services.scoring.pipeline")
    run(World(fail=frozenset({"x:a"})))
    [line] = lines(caplog)
    assert line["level"] == "ERROR" and line["service"] == "scoring"
    assert (line["account_id"], line["event_key"]) == ("x:a", "x:a")
    assert (line["partition"], line["offset"]) == (0, 10)
    assert line["records"] == ["account-snapshots.v1/0:10", "account-snapshots.v1/0:11"]
    assert "ValueError: boom" in str(line["exc"])


def test_rows_clickhouse_rejects_are_logged_with_their_records(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="services.scoring.pipeline")
    run(World(reject=frozenset({"x:b"})))
    [line] = lines(caplog)
    assert (line["account_id"], line["partition"], line["offset"]) == ("x:b", 1, 20)
    assert line["records"] == ["account-snapshots.v1/1:20"]
