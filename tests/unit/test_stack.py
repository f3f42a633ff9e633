"""`barometre run --workers N`: the stack's scoring workers share one consumer group, each on its own
port and with its own Faust directory (no process is started here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.settings import Settings
from services.stack import Stack, StackError


def test_several_workers_get_their_own_port_and_faust_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path, scoring_port=8002, kafka_partitions=6)
    stack = Stack(settings, simulator=False, poller=False, workers=3)
    workers = [s for s in stack.services if s.argv == ["-m", "services.scoring"]]
    assert [(w.name, w.port, w.env) for w in workers] == [
        ("scoring", 8002, {}),
        ("scoring-2", 8102, {"BAROMETRE_SCORING_PORT": "8102", "BAROMETRE_SCORING_INSTANCE": "2"}),
        ("scoring-3", 8202, {"BAROMETRE_SCORING_PORT": "8202", "BAROMETRE_SCORING_INSTANCE": "3"}),
    ]
    # What the second child reads from its environment: its own port and instance, the stack's group.
    for name, value in workers[1].env.items():
        monkeypatch.setenv(name, value)
    second = Settings(data_dir=tmp_path)
    assert (second.scoring_port, second.scoring_instance) == (8102, "2")
    assert second.scoring_group() == settings.scoring_group()
    assert set(stack.urls()) >= {"scoring", "scoring-2", "scoring-3"}


def test_more_workers_than_partitions_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="between 1 and the snapshot topic's 6 partitions"):
        Stack(Settings(data_dir=tmp_path, kafka_partitions=6), simulator=False, poller=False, workers=7)


def test_one_worker_is_the_stack_of_before(tmp_path: Path) -> None:
    stack = Stack(Settings(data_dir=tmp_path), simulator=False, poller=False)
    assert [s.name for s in stack.services] == ["ingest", "scoring", "api"]
