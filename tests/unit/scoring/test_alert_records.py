"""What a noise-control step becomes (ClickHouse rows, Kafka records), silences read back from rows, and
the detections the processor attaches to a batch."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.common.alert_tables import ALERT_COLUMNS, INCIDENT_COLUMNS
from services.common.events import AccountSnapshot, Alert
from services.common.names import AccountStatus, AlertSeverity, AlertType
from services.common.settings import Settings
from services.scoring.alerts.detection import Detection
from services.scoring.alerts.noise import Candidate, NoiseControl, NoiseParams, Silence, Step, Verdict
from services.scoring.alerts.records import (
    TOPIC_MEMBERS,
    alert_records,
    alert_rows,
    incident_records,
    incident_rows,
    incident_version,
    opened,
    silence_from_row,
)
from services.scoring.maths import DAY_MS, from_ms, to_ms
from services.scoring.processor import AccountState, Processor, detector_params, silent_accounts

T0 = 1_732_780_800_000  # 2024-11-28T08:00:00Z
NOW = T0 + 60_000


def drop(account: str, at: int = T0) -> Candidate:
    detection = Detection(
        AlertType.AUDIENCE_DROP,
        at,
        4400.0,
        5010.0,
        97.1,
        AlertSeverity.CRITICAL,
        {"change": -600, "flags": []},
    )
    return Candidate(account, "COM:38185", detection)


def test_published_alerts_become_rows_and_alert_v1_records() -> None:
    control = NoiseControl(NoiseParams(group_wait_ms=0))
    step = control.process(NOW, [drop("x:grenoble")])  # held for no time: released at once
    assert [o.verdict for o in step.outcomes] == [Verdict.PENDING, Verdict.EMIT]
    [row] = alert_rows(step, NOW, 7)
    values = dict(zip(ALERT_COLUMNS, row, strict=True))
    assert values["alert_id"] == drop("x:grenoble").alert_id
    assert (values["type"], values["platform"], values["entity_id"]) == ("audience_drop", "x", "COM:38185")
    assert values["observed_at"] == from_ms(T0) and values["detected_at"] == from_ms(NOW)
    assert (values["value"], values["expected"], values["score"], values["severity"]) == (
        4400.0,
        5010.0,
        97.1,
        "critical",
    )
    assert json.loads(str(values["details"])) == {"change": -600, "flags": []}
    assert values["inhibited_by"] is None and values["version"] == 7
    [(key, value)] = alert_records(step, from_ms(NOW))
    alert = Alert.from_event_bytes(value)
    assert key == b"x:grenoble" and alert.alert_id == values["alert_id"]
    assert alert.detected_at == from_ms(NOW) and alert.status.value == "open"


def test_an_incident_becomes_a_row_a_record_and_inhibited_rows() -> None:
    control = NoiseControl(NoiseParams(group_wait_ms=1_000))
    accounts = [f"facebook:page{i}" for i in range(10)]
    formed = control.process(NOW, [drop(a, T0 + i) for i, a in enumerate(accounts)])
    assert alert_rows(formed, NOW, 1) == []  # still held
    [incident] = formed.incidents
    assert opened(formed) == [incident]
    [row] = incident_rows(formed)
    values = dict(zip(INCIDENT_COLUMNS, row, strict=True))
    assert values["incident_id"] == incident.incident_id and values["accounts"] == 10
    assert values["members"] == accounts and values["status"] == "open"
    assert values["version"] == incident.updated_at
    [(key, value)] = incident_records(formed)
    assert key == b"facebook" and json.loads(value) == incident.to_dict()

    released = control.flush(NOW + 1_000)
    assert {o.verdict for o in released.outcomes} == {Verdict.INHIBITED}
    rows = alert_rows(released, NOW + 1_000, 2)
    assert len(rows) == 10 and {r[ALERT_COLUMNS.index("inhibited_by")] for r in rows} == {
        incident.incident_id
    }
    assert alert_records(released, from_ms(NOW)) == []

    resolved = control.flush(NOW + 7 * 3_600_000)
    [later] = resolved.incidents
    assert later.resolved and opened(resolved) == []
    assert incident_version(later) == incident_version(incident) + 1  # replaces the open row
    assert incident_rows(resolved)[0][INCIDENT_COLUMNS.index("status")] == "resolved"


def test_a_huge_incident_keeps_its_topic_record_small() -> None:
    control = NoiseControl(NoiseParams(group_wait_ms=1_000))
    accounts = [f"facebook:{100_000_000_000_000 + i}" for i in range(3_000)]
    step = control.process(NOW, [drop(a, T0 + i) for i, a in enumerate(accounts)])
    [(_, value)] = incident_records(step)
    body = json.loads(value)
    assert body["accounts"] == 3_000 and body["members"] == accounts[:TOPIC_MEMBERS]
    assert len(value) < 100_000
    assert incident_rows(step)[0][INCIDENT_COLUMNS.index("members")] == accounts  # all of them stored


def test_silenced_and_duplicate_detections_leave_no_row() -> None:
    silence = Silence("s1", T0 - DAY_MS, T0 + DAY_MS, account_id="x:a")
    control = NoiseControl(NoiseParams(group_wait_ms=0), [silence])
    step = control.process(NOW, [drop("x:a"), drop("x:b")])
    assert [o.verdict for o in step.outcomes][2:] == [Verdict.SILENCED, Verdict.EMIT]
    assert [r[2] for r in alert_rows(step, NOW, 1)] == ["x:b"]
    again = control.process(NOW, [drop("x:b")])
    assert again.outcomes[0].verdict is Verdict.DUPLICATE and alert_rows(again, NOW, 1) == []
    assert alert_rows(Step([], []), NOW, 1) == [] and incident_rows(Step([], [])) == []


def test_silences_from_rows() -> None:
    row = ("s1", T0, T0 + DAY_MS, None, "", "x", "audience_drop", "ana", "maintenance")
    silence = silence_from_row(row)
    assert silence == Silence(
        "s1",
        T0,
        T0 + DAY_MS,
        platform="x",
        type=AlertType.AUDIENCE_DROP,
        created_by="ana",
        comment="maintenance",
    )
    aware = silence_from_row(("s2", from_ms(T0), from_ms(T0 + 1), "x:a", None, None, None, "", ""))
    assert (aware.starts_at, aware.account_id, aware.type) == (T0, "x:a", None)
    with pytest.raises(ValueError, match="at least one matcher"):
        silence_from_row(("s3", T0, T0 + 1, "", "", "", "", "", ""))
    with pytest.raises(ValueError, match="audience_jump"):
        silence_from_row(("s4", T0, T0 + 1, None, None, None, "audience_jump", "", ""))
    with pytest.raises(ValueError, match="not an instant"):
        silence_from_row(("s5", "yesterday", T0, "x:a", None, None, None, "", ""))


# --- The processor's side: detections of a batch, silent accounts.

WALL = to_ms(datetime(2026, 11, 28, 12, tzinfo=UTC))


def snapshot(account_id: str, days_ago: float, followers: int, **fields: Any) -> AccountSnapshot:
    observed = from_ms(WALL) - timedelta(days=days_ago)
    return AccountSnapshot.model_validate(
        {
            "account_id": account_id,
            "platform": "x",
            "entity_id": "COM:38185",
            "observed_at": observed.isoformat(),
            "followers": followers,
            **fields,
        }
    )


def processor(alerts: bool = True) -> Processor:
    settings = Settings()
    return Processor(
        settings,
        fetch_history=lambda ids: {},
        alerts=detector_params(settings) if alerts else None,
        clock=lambda: WALL,
    )


def history(account_id: str, days: range) -> list[AccountSnapshot]:
    return [snapshot(account_id, k, 5000 + 10 * (100 - k) + (k * 7919) % 7) for k in days]


def test_the_processor_returns_the_candidates_of_its_points() -> None:
    states: dict[bytes, bytes | None] = {}
    p = processor()
    out = p.process(history("x:a", range(40, 0, -1)), states)
    assert out.candidates == []  # old history and a steady week
    states.update(out.states)
    out = p.process([snapshot("x:a", 0.1, 3900)], states)
    [candidate] = out.candidates
    assert (candidate.account_id, candidate.entity_id, candidate.type) == (
        "x:a",
        "COM:38185",
        AlertType.AUDIENCE_DROP,
    )
    assert candidate.detection.value == 3900
    states.update(out.states)
    # The same snapshot again (a replay), and a newer one of the same day still showing the drop: nothing.
    assert p.process([snapshot("x:a", 0.1, 3900)], states).candidates == []
    assert p.process([snapshot("x:a", 0.05, 3890)], states).candidates == []
    # Without detector parameters (barometre rebuild) nothing is detected.
    assert (
        processor(alerts=False)
        .process([*history("x:b", range(40, 0, -1)), snapshot("x:b", 0.1, 3900)], {})
        .candidates
        == []
    )


def test_points_are_judged_as_of_when_they_were_received() -> None:
    """A worker catching up on a backlog (or re-processing the log) judges each point as of its record's
    timestamp, not as of the moment it happens to read it: the decisions do not depend on lag."""
    drop = snapshot("x:a", 9.1, 3900)
    base = history("x:a", range(50, 9, -1))

    def candidates(received: dict[str, int] | None) -> list[AlertType]:
        states: dict[bytes, bytes | None] = {}
        p = processor()
        states.update(p.process(base, states, {s.event_id: to_ms(s.observed_at) for s in base}).states)
        return [c.type for c in p.process([drop], states, received).candidates]

    # Nine days old at the wall clock: history, unless it was received when it was observed.
    assert candidates(None) == []
    assert candidates({drop.event_id: to_ms(drop.observed_at) + 60_000}) == [AlertType.AUDIENCE_DROP]
    # A record timestamp in the future (a producer's wrong clock) counts as the wall clock.
    assert candidates({drop.event_id: WALL + 30 * 24 * 3_600_000}) == []


def test_imported_history_raises_nothing() -> None:
    points = history("x:old", range(120, 60, -1))
    points[30] = snapshot("x:old", 90, 100)  # a collapse, 90 days ago
    p = processor()
    assert p.process(points, {}).candidates == []
    # a first point today is a new account: the platform has been watched for months (the import)
    [new] = p.process([snapshot("x:new", 0.5, 10)], {}).candidates
    assert new.type is AlertType.ACCOUNT_NEW


def test_first_points_are_new_accounts_only_on_a_platform_already_watched() -> None:
    """When monitoring starts (or a platform is added) every account is seen for the first time at once:
    none of them is a new account. A week later, a first point is news."""
    p = processor()
    first_tick = [snapshot(f"x:a{i}", 10, 1000 + i) for i in range(50)]
    assert p.process(first_tick, {}, {s.event_id: to_ms(s.observed_at) for s in first_tick}).candidates == []
    # Six days later: still the start of monitoring.
    early = snapshot("x:early", 4, 10)
    assert p.process([early], {}, {early.event_id: to_ms(early.observed_at)}).candidates == []
    late = snapshot("x:late", 2, 10)
    [new] = p.process([late], {}, {late.event_id: to_ms(late.observed_at)}).candidates
    assert (new.account_id, new.type) == ("x:late", AlertType.ACCOUNT_NEW)
    # Another platform is not watched because x is; the worker seeds what ClickHouse knows at start.
    other = Processor(
        Settings(), fetch_history=lambda ids: {}, alerts=detector_params(Settings()), clock=lambda: WALL
    )
    fb = AccountSnapshot.model_validate(
        {
            "account_id": "facebook:x",
            "platform": "facebook",
            "entity_id": "COM:38185",
            "observed_at": from_ms(WALL - 3_600_000).isoformat(),
            "followers": 10,
        }
    )
    assert other.process([fb], {}).candidates == []
    other.watched_since({"facebook": WALL - 30 * 86_400_000})
    fb2 = fb.model_copy(update={"account_id": "facebook:y", "event_id": "e-fb-y"})
    assert [c.type for c in other.process([fb2], {}).candidates] == [AlertType.ACCOUNT_NEW]


def test_silent_accounts_use_event_time_and_skip_history() -> None:
    p = processor(alerts=False)
    states: dict[bytes, bytes | None] = {}
    for account, days in (
        ("x:live", range(10, 0, -1)),  # seen yesterday
        ("x:quiet", range(80, 45, -1)),  # last seen 46 days ago: stale since yesterday
        ("x:long", range(120, 60, -1)),  # last seen 61 days ago: stale since 16 days, history
        ("x:lead", range(30, 13, -1)),  # last seen 14 days ago
    ):
        states.update(p.process(history(account, days), states).states)
    held = {k: v for k, v in states.items() if v}
    params = detector_params(Settings())
    [quiet] = silent_accounts(held.items(), WALL, params)
    assert (quiet.account_id, quiet.type) == ("x:quiet", AlertType.ACCOUNT_GONE)
    assert quiet.detection.details["reason"] == "silent"
    assert quiet.detection.observed_at == to_ms(from_ms(WALL) - timedelta(days=1))
    # During a back-fill, "now" is the latest point seen: alone, x:quiet is not silent yet...
    assert silent_accounts([(b"x:quiet", held[b"x:quiet"])], WALL, params) == []
    # ... and x:long, silent for 2 days when the latest point seen is x:lead's, is history all the same
    # (it became silent 16 days before the wall clock).
    pair = [(b"x:long", held[b"x:long"]), (b"x:lead", held[b"x:lead"])]
    assert silent_accounts(pair, WALL, params) == []
    assert silent_accounts(pair, to_ms(from_ms(WALL) - timedelta(days=10)), params) != []
    assert silent_accounts([], WALL, params) == []
    # A deleted account was reported when it happened; it is never "silent".
    gone = p.process([snapshot("x:live", 0.5, 0, status=AccountStatus.DELETED.value)], states).states
    assert silent_accounts(gone.items(), WALL + 60 * DAY_MS, params) == []
    assert AccountState.from_bytes(gone[b"x:live"]).series.latest is not None
