"""The scoring worker follows the snapshot topic's real partition count (its tables are co-partitioned)."""

from __future__ import annotations

import logging

import pytest

from services.common.settings import Settings
from services.scoring.__main__ import with_topic_partitions


def test_the_default_leaves_room_for_eight_workers() -> None:
    assert Settings().kafka_partitions >= 8


def test_a_new_topic_takes_the_setting() -> None:
    settings = Settings(kafka_partitions=12)
    assert with_topic_partitions(settings, None) is settings
    assert with_topic_partitions(settings, 12) is settings


def test_an_existing_topic_keeps_its_count_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        followed = with_topic_partitions(Settings(kafka_partitions=12), 6)
    assert followed.kafka_partitions == 6
    assert "has 6 partitions, not BAROMETRE_KAFKA_PARTITIONS=12" in caplog.text
