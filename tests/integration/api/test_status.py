"""GET /v1/status against the real broker: the scoring group's lag on the snapshots topic, > 0 while
the group has not consumed what was published, 0 once it has committed; 503 without Kafka."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import OffsetAndMetadata, TopicPartition

from services.api.app import create_app
from services.common.kafka import ensure_topics
from services.common.lag import scoring_lag
from services.common.names import Topic
from services.common.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]


@pytest.fixture
def settings(app_settings: Settings) -> Settings:
    return app_settings.model_copy(update={"scoring_provisional_events": 10})


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def publish(settings: Settings, count: int) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    for i in range(count):
        producer.send(settings.topic(Topic.ACCOUNT_SNAPSHOTS), key=f"k{i}".encode(), value=b"{}")
    producer.flush()
    producer.close()


def consume_as_the_worker(settings: Settings) -> None:
    """Commit the end of every partition for the scoring group, as the worker does after writing."""
    name = settings.topic(Topic.ACCOUNT_SNAPSHOTS)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.scoring_group(),
        enable_auto_commit=False,
    )
    parts = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or [])]
    consumer.assign(parts)
    consumer.seek_to_end(*parts)
    consumer.commit({tp: OffsetAndMetadata(consumer.position(tp), "", -1) for tp in parts})
    consumer.close()


def test_lag_while_the_group_has_not_consumed_then_zero(settings: Settings, client: TestClient) -> None:
    ensure_topics(settings)
    r = client.get("/v1/status")
    assert r.status_code == 200, r.text
    empty = r.json()["scoring"]
    assert empty["events_behind"] == 0 and empty["provisional"] is False
    assert empty["partitions"] == settings.kafka_partitions
    assert empty["seconds_to_catch_up"] == 0

    publish(settings, 25)
    lag = scoring_lag(settings)
    assert (lag.end, lag.behind, lag.committed, lag.group_known) == (25, 25, 0, False)
    time.sleep(1.1)  # past the api's one-second cache
    behind = client.get("/v1/status").json()["scoring"]
    assert behind["events_received"] == 25
    assert behind["events_behind"] == 25
    assert behind["events_scored"] == 0
    assert behind["provisional"] is True  # 25 > the threshold of 10
    assert behind["threshold_events"] == 10
    assert behind["seconds_to_catch_up"] is None  # nothing consumed: no rate, no estimate

    consume_as_the_worker(settings)
    time.sleep(1.1)
    caught_up = client.get("/v1/status").json()["scoring"]
    assert caught_up["events_behind"] == 0
    assert caught_up["events_scored"] == 25
    assert caught_up["provisional"] is False
    assert caught_up["seconds_to_catch_up"] == 0
    assert caught_up["rate_per_s"] is not None and caught_up["rate_per_s"] > 0
    assert scoring_lag(settings).group_known is True


def test_without_kafka_a_json_503() -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:9", clickhouse_url="http://127.0.0.1:9")
    with TestClient(create_app(settings)) as c:
        r = c.get("/v1/status")
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "service_unavailable"
    assert r.headers["Retry-After"] == "5"


def test_openapi_documents_the_status() -> None:
    app = create_app(Settings(kafka_bootstrap="127.0.0.1:9", clickhouse_url="http://127.0.0.1:9"))
    doc = TestClient(app).get("/openapi.json").json()
    get = doc["paths"]["/v1/status"]["get"]
    assert get["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/StatusOut"
    }
    assert get["responses"]["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    scoring = doc["components"]["schemas"]["ScoringStatus"]
    assert set(scoring["required"]) == {
        "events_received",
        "events_scored",
        "events_behind",
        "partitions",
        "rate_per_s",
        "seconds_to_catch_up",
        "provisional",
        "threshold_events",
    }
    assert doc["components"]["schemas"]["StatusOut"]["examples"]
