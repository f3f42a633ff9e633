"""The real-pipeline path of the alerts evaluation (``bench/alerts_eval.py --pipeline``).

The labelled series of ``bench/_alerts_evaluation.py`` become AccountSnapshot records on a
real Kafka topic, each with its arrival instant as the record timestamp (when barometre received it: the
worker judges a point as of then), published in arrival order. A real scoring worker
(``python -m services.scoring``) turns them into detections, sends those through ``alert-candidates.v1``
to its noise-control stage, which writes the alerts to ClickHouse and publishes them on ``alerts.v1``.
What the worker published, read back from ``alerts.v1`` (and the inhibited ones from ClickHouse), is
scored exactly like the pure path.

Each round runs up to one cell per platform (the noise-control state is per platform: cells that share a
platform would be grouped together, which the pure path does not do) with a fresh topic prefix and
worker. Silence checks run every two seconds against the worker's clock (the receipt time of what it is
processing while it has a backlog), so a silence is found some simulated days after it began; its
delay is not comparable with the pure path's once-a-day check.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import httpx
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bench._alerts_evaluation import LabelledSeries, Published
from services.common.bootstrap import prepare_database
from services.common.clickhouse import make_client
from services.common.kafka import ensure_topics
from services.common.names import AlertSeverity, AlertType, Platform, Table, Topic
from services.common.settings import Settings
from services.ingest.wait import wait_until_consumed
from services.scoring.alerts import Candidate, Detection, Outcome, Verdict
from services.scoring.maths import DailyPoint, from_ms, to_ms

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = tuple(Platform)
GROUP_WAIT_S = 1


def snapshot_json(account_id: str, point: DailyPoint) -> bytes:
    """The AccountSnapshot v1 a poller would have sent for ``point``."""
    body: dict[str, object] = {
        "schema": "account_snapshot/1",
        "event_id": point.event_id,
        "account_id": account_id,
        "platform": account_id.partition(":")[0],
        "observed_at": from_ms(point.observed_at).isoformat().replace("+00:00", "Z"),
        "followers": point.followers,
        "status": point.status.value,
        "source": "import",
    }
    if point.posts_30d is not None:
        body["posts_30d"] = point.posts_30d
    return json.dumps(body, separators=(",", ":")).encode()


def on_platform(series: LabelledSeries, platform: Platform) -> LabelledSeries:
    """``series`` with its account moved to ``platform`` (points and ids follow)."""
    account_id = f"{platform.value}:{series.account_id.partition(':')[2]}"
    deliveries = tuple(
        (
            arrival,
            DailyPoint.with_derived_id(account_id, p.observed_at, p.followers, p.status, p.posts_30d),
        )
        for arrival, p in series.deliveries
    )
    return LabelledSeries(
        account_id, deliveries, series.truths, series.account_days, series.typical, series.ends_at
    )


@dataclass
class Round:
    """One run of the pipeline: a fresh prefix, a worker, the series of a few cells."""

    base: Settings
    tmp: Path
    port: int

    def run(self, cells: Sequence[Sequence[LabelledSeries]], timeout: float) -> dict[str, list[Published]]:
        tag = uuid.uuid4().hex[:8]
        settings = self.base.model_copy(
            update={
                "kafka_topic_prefix": f"evalpipe{tag}.",
                "data_dir": self.tmp / tag,
                "scoring_port": self.port,
            }
        )
        settings.data_dir.mkdir(parents=True)
        ensure_topics(settings)
        series = [s for cell in cells for s in cell]
        with _worker(settings) as worker:
            ends = _publish(settings, series)
            wait_until_consumed(settings, ends, timeout=timeout)
            worker.check()
            candidates = _ends(settings, Topic.ALERT_CANDIDATES)
            wait_until_consumed(settings, candidates, topic=Topic.ALERT_CANDIDATES, timeout=timeout)
            time.sleep(GROUP_WAIT_S + 3)  # held detections are released by the stage's flush timer
            worker.check()
        return _published(settings, series)


def _publish(settings: Settings, series: Sequence[LabelledSeries]) -> dict[int, int]:
    """Send every delivery in arrival order, timestamped with its arrival; the end offsets."""
    deliveries = sorted(
        ((arrival, s.account_id, p) for s in series for arrival, p in s.deliveries),
        key=lambda x: (x[0], x[2].observed_at),
    )
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        acks="all",
        linger_ms=20,
        batch_size=256 * 1024,
        compression_type="lz4",
    )
    topic = settings.topic(Topic.ACCOUNT_SNAPSHOTS)
    ends: dict[int, int] = {}
    futures = [
        producer.send(topic, key=account.encode(), value=snapshot_json(account, point), timestamp_ms=arrival)
        for arrival, account, point in deliveries
    ]
    producer.flush()
    for future in futures:
        meta = future.get(timeout=30)
        ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
    producer.close()
    return ends


def _ends(settings: Settings, topic: Topic) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap.split(","), enable_auto_commit=False)
    try:
        name = settings.topic(topic)
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        return {tp.partition: end for tp, end in consumer.end_offsets(partitions).items() if end}
    finally:
        consumer.close()


def _published(settings: Settings, series: Sequence[LabelledSeries]) -> dict[str, list[Published]]:
    """What reached users, by account: the alerts on ``alerts.v1`` and the inhibited ones (stored in
    ClickHouse with their incident), each raised when the point that showed it arrived."""
    arrival = {
        (s.account_id, p.observed_at): a for s in series for a, p in s.deliveries
    }  # the instant the point was received
    accounts = {s.account_id for s in series}
    client = make_client(settings)
    rows = client.query(
        f"SELECT alert_id, type, account_id, entity_id, observed_at, value, expected, score, severity, "
        f"details, inhibited_by FROM {settings.clickhouse_database}.{Table.ALERTS} FINAL "
        f"WHERE account_id IN {{accounts:Array(String)}}",
        parameters={"accounts": sorted(accounts)},
    ).result_rows
    on_topic = _topic_alert_ids(settings)
    out: dict[str, list[Published]] = defaultdict(list)
    for alert_id, type_, account, entity, observed, value, expected, score, severity, details, by in rows:
        if by is None and alert_id not in on_topic:
            raise SystemExit(f"alert {alert_id} is in ClickHouse but was never published on alerts.v1")
        at = to_ms(observed if observed.tzinfo else observed.replace(tzinfo=UTC))
        detection = Detection(
            AlertType(type_), at, value, expected, score, AlertSeverity(severity), json.loads(details or "{}")
        )
        verdict = Verdict.EMIT if by is None else Verdict.INHIBITED
        outcome = Outcome(Candidate(account, entity, detection), verdict, by)
        out[account].append(Published(outcome, arrival.get((account, at), at)))
    for published in out.values():
        published.sort(key=lambda p: (p.raised_at, p.outcome.candidate.detection.observed_at))
    return out


def _topic_alert_ids(settings: Settings) -> set[str]:
    consumer = KafkaConsumer(
        settings.topic(Topic.ALERTS),
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    try:
        return {json.loads(record.value)["alert_id"] for record in consumer}
    finally:
        consumer.close()


class _Worker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.log = settings.data_dir / "scoring.log"
        env = {
            **os.environ,
            "BAROMETRE_CLICKHOUSE_URL": settings.clickhouse_url,
            "BAROMETRE_CLICKHOUSE_DATABASE": settings.clickhouse_database,
            "BAROMETRE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "BAROMETRE_KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
            "BAROMETRE_KAFKA_PARTITIONS": str(settings.kafka_partitions),
            "BAROMETRE_SCORING_PORT": str(settings.scoring_port),
            "BAROMETRE_DATA_DIR": str(settings.data_dir),
            "BAROMETRE_LOG_LEVEL": "WARNING",
            "BAROMETRE_ALERT_GROUP_WAIT_S": str(GROUP_WAIT_S),
            "BAROMETRE_ALERT_SILENCE_CHECK_S": "2",
        }
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.scoring"], env=env, cwd=ROOT, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.check()
            try:
                url = f"http://{settings.scoring_host}:{settings.scoring_port}/healthz"
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit("the scoring worker did not start:\n" + self.tail())

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise SystemExit("the scoring worker died:\n" + self.tail())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def _worker(settings: Settings) -> Iterator[_Worker]:
    worker = _Worker(settings)
    try:
        yield worker
    finally:
        worker.stop()


def prepare(settings: Settings) -> None:
    """Migrate the evaluation's database (once, before the rounds)."""
    prepare_database(settings)
