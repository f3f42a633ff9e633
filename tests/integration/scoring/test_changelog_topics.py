"""The scoring worker creates its tables' changelog topics before Faust starts, as Faust would.

Faust's producer reads the cluster's metadata when it starts; a changelog topic Faust creates after
that is unknown to it until the next refresh (5 minutes), and every write to that table fails
meanwhile (seen in CI: the alert stage's first batch retried for minutes)."""

from __future__ import annotations

import asyncio

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from services.common.settings import Settings
from services.scoring.app import MAX_STATE_BYTES, create_app, ensure_changelog_topics

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]


def test_changelog_topics_are_created_compacted_with_their_configs(app_settings: Settings) -> None:
    asyncio.set_event_loop(asyncio.new_event_loop())  # the app takes the current loop
    app = create_app(app_settings)
    names = {table.changelog_topic.get_topic_name() for table in app.tables.values()}
    assert len(names) == 2  # account-state and alert-noise
    assert set(ensure_changelog_topics(app, app_settings)) == names
    assert ensure_changelog_topics(app, app_settings) == []  # already there
    admin = KafkaAdminClient(bootstrap_servers=app_settings.kafka_bootstrap.split(","))
    try:
        described = admin.describe_topics(sorted(names))
        assert {len(t["partitions"]) for t in described} == {app_settings.kafka_partitions}
        described_configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in sorted(names)]
        )
        # {resource type: {topic: {key: {"value": ..., ...}}}}
        (by_topic,) = described_configs.values()
        configs = {
            name: {key: data["value"] for key, data in entries.items()} for name, entries in by_topic.items()
        }
        assert {c["cleanup.policy"] for c in configs.values()} == {"compact"}
        noise = next(name for name in names if name.endswith("alert-noise-changelog"))
        assert configs[noise]["max.message.bytes"] == str(MAX_STATE_BYTES)
    finally:
        admin.close()
