"""The pure parts of alert delivery: webhook signatures, retry delays, the offsets the dispatcher may
commit, subscription filters, stream event ids, the resume buffer, stream filters and list cursors."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from services.api.alert_hub import AlertHub, Buffer, Layout, StaleEventId, StreamEvent, matches, parse_record
from services.api.alert_store import AlertFilter
from services.api.paging import decode_cursor, encode_cursor
from services.api.webhook_signature import signature, signature_header, verify_signature
from services.api.webhooks import (
    OffsetTracker,
    Subscription,
    attempt_result,
    is_retryable,
    retry_after_seconds,
    retry_delay,
)
from services.common.events import Alert
from services.common.names import AlertSeverity, AlertType, Platform
from services.common.settings import Settings

BODY = b'{"alert_id":"a1","type":"audience_drop"}'
NOW = 1_790_000_000


def test_signature_round_trip() -> None:
    header = signature_header("s3cret", BODY, NOW)
    assert header == f"t={NOW},v1={signature('s3cret', NOW, BODY)}"
    assert verify_signature("s3cret", header, BODY, now=NOW + 10)
    assert verify_signature("s3cret", f"v1=deadbeef, {header}", BODY, now=NOW)  # any v1 may match


@pytest.mark.parametrize(
    ("secret", "header_at", "body", "now", "tolerance"),
    [
        ("other", NOW, BODY, NOW, 300),  # wrong secret
        ("s3cret", NOW, BODY + b" ", NOW, 300),  # body changed
        ("s3cret", NOW, BODY, NOW + 301, 300),  # replayed later than the tolerance
        ("s3cret", NOW, BODY, NOW - 301, 300),  # from the future
    ],
)
def test_signature_refused(secret: str, header_at: int, body: bytes, now: int, tolerance: int) -> None:
    assert not verify_signature(secret, signature_header("s3cret", BODY, header_at), body, tolerance, now=now)


@pytest.mark.parametrize("header", ["", "t=abc,v1=00", f"t={NOW}", "v1=00", "garbage"])
def test_malformed_signature_headers(header: str) -> None:
    assert not verify_signature("s3cret", header, BODY, now=NOW)


def test_retry_delay() -> None:
    rng = random.Random(1)
    for attempt, full in ((1, 1.0), (2, 2.0), (3, 4.0), (10, 60.0)):
        delays = [retry_delay(attempt, 1.0, 60.0, None, rng) for _ in range(200)]
        assert full / 2 <= min(delays) and max(delays) <= full  # jittered within [half, all]
        assert max(delays) - min(delays) > full / 4  # really jittered
    assert retry_delay(1, 1.0, 60.0, 7.0, rng) == 7.0  # Retry-After wins
    assert retry_delay(1, 1.0, 60.0, 3600.0, rng) == 60.0  # up to the cap


def test_retry_after_and_outcomes() -> None:
    assert retry_after_seconds("120", NOW) == 120.0
    assert (
        retry_after_seconds(
            "Wed, 21 Oct 2026 07:28:00 GMT", datetime(2026, 10, 21, 7, 27, tzinfo=UTC).timestamp()
        )
        == 60.0
    )
    assert retry_after_seconds("soon", NOW) is None
    assert retry_after_seconds(None, NOW) is None
    assert [is_retryable(s) for s in (200, 400, 404, 429, 500, 503)] == [
        False,
        False,
        False,
        True,
        True,
        True,
    ]
    assert [attempt_result(s, None) for s in (204, 429, 404, 502)] == [
        "success",
        "http_429",
        "http_4xx",
        "http_5xx",
    ]


def test_offsets_commit_only_finished_prefixes() -> None:
    tp, other = TopicPartition("alerts.v1", 0), TopicPartition("alerts.v1", 1)
    tracker = OffsetTracker()
    r0 = tracker.add(tp, 10, 2)
    r1 = tracker.add(tp, 11, 1)
    tracker.add(tp, 12, 0)  # nothing to deliver, but after unfinished ones
    tracker.add(other, 5, 0)
    assert tracker.take() == {other: 6}
    tracker.done(tp, r1)
    assert tracker.take() == {}  # 10 is not finished: 11 and 12 wait
    tracker.done(tp, r0)
    assert tracker.take() == {}
    tracker.done(tp, r0)
    assert tracker.take() == {tp: 13}
    assert tracker.in_flight() == 0


def make_alert(**changes: object) -> Alert:
    fields: dict[str, object] = {
        "alert_id": "a1", "type": "audience_drop", "account_id": "facebook:grenoble", "entity_id": "COM:38185",
        "platform": "facebook", "observed_at": "2026-01-01T00:00:00Z", "detected_at": "2026-01-01T00:00:01Z",
        "value": 1.0, "expected": 2.0, "score": 3.0, "severity": "warning", "status": "open",
    }  # fmt: skip
    return Alert.model_validate({**fields, **changes})


def test_subscription_filters() -> None:
    everything = Subscription("s", "http://h", "k")
    assert everything.wants(make_alert())
    picky = Subscription("s", "http://h", "k", frozenset({"audience_drop"}), frozenset({"facebook"}),
                         frozenset({"COM:38185"}), AlertSeverity.WARNING)  # fmt: skip
    assert picky.wants(make_alert())
    assert picky.wants(make_alert(severity="critical"))
    assert not picky.wants(make_alert(severity="info"))
    assert not picky.wants(make_alert(type="audience_spike"))
    assert not picky.wants(make_alert(entity_id="COM:69123"))
    assert not picky.wants(make_alert(platform="x", account_id="x:grenoble"))


LAYOUT = Layout(
    tuple(TopicPartition("alerts.v1", p) for p in range(3)),
    tuple(TopicPartition("incidents.v1", p) for p in range(2)),
)


def test_event_ids() -> None:
    positions = {tp: i * 10 for i, tp in enumerate([*LAYOUT.alerts, *LAYOUT.incidents])}
    assert LAYOUT.encode(positions) == "0,10,20;30,40"
    assert LAYOUT.decode("0,10,20;30,40") == positions
    for bad in ("", "0,10,20", "0,10;30,40", "0,10,x;30,40", "0,10,20;30,40;1", "-1,0,0;0,0"):
        with pytest.raises(StaleEventId):
            LAYOUT.decode(bad)


def event(p: int, offset: int) -> StreamEvent:
    return StreamEvent("alert", LAYOUT.alerts[p], offset, f"{p}:{offset}", "{}")


def test_buffer_replays_what_it_still_holds() -> None:
    start = {tp: 0 for tp in (*LAYOUT.alerts, *LAYOUT.incidents)}
    buffer = Buffer(3, start)
    for e in (event(0, 0), event(1, 0), event(0, 1)):
        buffer.append(e)
    at = {**start, LAYOUT.alerts[0]: 1}  # after event(0, 0)
    assert [e.id for e in buffer.after(at) or []] == ["1:0", "0:1"]
    buffer.append(event(2, 0))  # evicts event(0, 0)
    assert [e.id for e in buffer.after(at) or []] == ["1:0", "0:1", "2:0"]
    buffer.append(event(2, 1))  # evicts event(1, 0): "after event(0, 0)" is no longer held
    assert buffer.after(at) is None
    assert [e.id for e in buffer.after({**at, LAYOUT.alerts[1]: 1}) or []] == ["0:1", "2:0", "2:1"]


def test_stream_filters_and_records() -> None:
    fields = parse_record("alert", make_alert().to_event_bytes())
    assert fields is not None
    drop = StreamEvent("alert", LAYOUT.alerts[0], 0, "", **fields)
    assert matches(drop, AlertFilter())
    assert matches(drop, AlertFilter(type=AlertType.AUDIENCE_DROP, platform=Platform.FACEBOOK,
                                     entity_id="COM:38185", severity=AlertSeverity.WARNING))  # fmt: skip
    assert not matches(drop, AlertFilter(severity=AlertSeverity.CRITICAL))
    incident = parse_record("incident", b'{"incident_id":"i1","type":"audience_drop","platform":"facebook"}')
    assert incident is not None
    group = StreamEvent("incident", LAYOUT.incidents[0], 0, "", **incident)
    assert matches(group, AlertFilter(platform=Platform.FACEBOOK))
    assert not matches(group, AlertFilter(entity_id="COM:38185"))
    assert parse_record("alert", b'{"alert_id": "a1"}') is None
    assert parse_record("incident", b"[1]") is None
    assert parse_record("alert", None) is None


def test_cursors() -> None:
    moment = datetime(2026, 3, 1, 6, 0, 0, 123000, tzinfo=UTC)
    assert decode_cursor(encode_cursor(moment, "a-1")) == (moment, "a-1")
    for bad in ("", "x", encode_cursor(moment, "a")[:-2], "W1sxXV0", "WyJhIiwiYiJd", "A" * 600):
        with pytest.raises(ValueError, match="not a cursor"):
            decode_cursor(bad)


def record(tp: TopicPartition, offset: int, account: str) -> ConsumerRecord[bytes, bytes]:
    platform = account.partition(":")[0]
    value = make_alert(alert_id=f"a{offset}", account_id=account, platform=platform).to_event_bytes()
    return ConsumerRecord(
        tp.topic, tp.partition, offset, 0, 0, account.encode(), value, None, 0, len(value), ()
    )


def test_a_slow_client_is_dropped_after_what_it_was_sent() -> None:
    """The hub never waits for a client: one whose queue is full is cut off, gets what its queue holds,
    and its stream ends (it resumes from its last event id); the others go on."""

    async def scenario() -> None:
        hub = AlertHub(Settings(alert_stream_client_queue=2, alert_stream_heartbeat_s=0.05))
        hub.begin(LAYOUT, {tp: 0 for tp in (*LAYOUT.alerts, *LAYOUT.incidents)})
        slow, other = hub.stream(AlertFilter(), None), hub.stream(AlertFilter(platform=Platform.X), None)
        assert await anext(slow) == b"retry: 3000\n\n"  # registered
        assert await anext(other) == b"retry: 3000\n\n"
        tp = LAYOUT.alerts[0]
        for offset in range(3):
            hub.dispatch(tp, record(tp, offset, "facebook:grenoble"))
        assert hub.clients == 1  # the slow one is out, the filtered one still in
        frames = [frame async for frame in slow]
        assert [f.split(b"\n")[1] for f in frames] == [b"id: 1,0,0;0,0", b"id: 2,0,0;0,0"]
        hub.dispatch(tp, record(tp, 3, "x:lyon"))
        assert b"id: 4,0,0;0,0" in await anext(other)
        assert await anext(other) == b": keepalive\n\n"
        await other.aclose()
        assert hub.clients == 0
        assert hub.buffered() == 4

    asyncio.run(scenario())
