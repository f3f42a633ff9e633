"""What one noise-control :class:`~.noise.Step` becomes: ClickHouse rows and Kafka records.

- ``alerts`` rows (migration 0004): one per published alert, and one per inhibited detection with
  ``inhibited_by`` = the incident's id (so an account's page can say "part of incident …"); silenced,
  duplicate, ongoing and cooldown detections are not stored;
- ``incidents`` rows: each incident the step opened or changed, upserted by ``incident_id``;
- ``alerts.v1`` records: key = ``account_id``, value = the Alert v1 JSON of each published alert;
- ``incidents.v1`` records: key = platform, value = ``Incident.to_dict()`` as JSON, with at most
  :data:`TOPIC_MEMBERS` account ids in ``members`` and ``emitted_before`` (``accounts`` counts them all,
  the ``incidents`` table lists them all): a purge of a whole platform must not make a record larger
  than Kafka takes (1 MB by default; 30,000 Facebook page ids are about that).

Silences come back from the ``silences`` table through :func:`silence_from_row`.

Pure: no Kafka, no ClickHouse, no clock (the caller passes ``now``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from services.common.names import AlertType
from services.scoring.alerts.codec import details_json, finite
from services.scoring.alerts.noise import Incident, Outcome, Silence, Step, Verdict, to_alert
from services.scoring.maths.points import from_ms, to_ms

KEPT: Final = frozenset({Verdict.EMIT, Verdict.INHIBITED})
TOPIC_MEMBERS: Final = 1_000


def alert_rows(step: Step, now: int, version: int) -> list[list[object]]:
    """The ``alerts`` rows of ``step`` decided at ``now`` (epoch ms): its published alerts and its
    inhibited detections. ``version`` orders re-publications of one id (the write time in ns)."""
    return [_alert_row(o, now, version) for o in step.outcomes if o.verdict in KEPT]


def _alert_row(outcome: Outcome, now: int, version: int) -> list[object]:
    candidate = outcome.candidate
    d = candidate.detection
    return [
        candidate.alert_id,
        d.type.value,
        candidate.account_id,
        candidate.entity_id,
        candidate.platform,
        from_ms(d.observed_at),
        from_ms(now),
        finite(d.value),
        finite(d.expected),
        finite(d.score),
        d.severity.value,
        details_json(d),
        outcome.by if outcome.verdict is Verdict.INHIBITED else None,
        version,
    ]


def incident_version(incident: Incident) -> int:
    """The version of an incident's row: its ``updated_at`` (ms), one more once resolved, so that a
    later state replaces an earlier one (resolving does not move ``updated_at``)."""
    return incident.updated_at + (1 if incident.resolved else 0)


def incident_rows(step: Step) -> list[list[object]]:
    """The ``incidents`` rows of the incidents ``step`` opened or changed."""
    rows: list[list[object]] = []
    for i in step.incidents:
        share = i.share
        rows.append(
            [
                i.incident_id,
                i.type.value,
                i.platform,
                from_ms(i.first_observed_at),
                from_ms(i.last_observed_at),
                from_ms(i.detected_at),
                from_ms(i.updated_at),
                len(i.members),
                list(i.members),
                list(i.emitted_before),
                i.active_accounts,
                finite(share),
                i.threshold,
                finite(i.total_change) or 0.0,
                i.severity.value,
                "resolved" if i.resolved else "open",
                i.silenced_by,
                incident_version(i),
            ]
        )
    return rows


def alert_records(step: Step, detected_at: datetime) -> list[tuple[bytes, bytes]]:
    """The ``alerts.v1`` records (key = account_id, value = Alert v1 JSON) of ``step``'s alerts."""
    return [
        (candidate.account_id.encode(), to_alert(candidate, detected_at).to_event_bytes())
        for candidate in step.alerts
    ]


def incident_records(step: Step) -> list[tuple[bytes, bytes]]:
    """The ``incidents.v1`` records (key = platform, value = ``Incident.to_dict()`` JSON, member lists
    cut at :data:`TOPIC_MEMBERS`) of ``step``."""
    out = []
    for incident in step.incidents:
        body = incident.to_dict()
        for name in ("members", "emitted_before"):
            accounts = body[name]
            if isinstance(accounts, list) and len(accounts) > TOPIC_MEMBERS:
                body[name] = accounts[:TOPIC_MEMBERS]
        value = json.dumps(finite(body), separators=(",", ":"), allow_nan=False).encode()
        out.append((incident.platform.encode(), value))
    return out


def opened(step: Step) -> list[Incident]:
    """The incidents that ``step`` opened (rather than grew or resolved)."""
    return [i for i in step.incidents if i.detected_at == i.updated_at and not i.resolved]


def silence_from_row(row: Sequence[object]) -> Silence:
    """The :class:`~.noise.Silence` of a ``silences`` row in ``alert_tables.SILENCE_COLUMNS`` order
    (timestamps as aware datetimes or epoch ms); ValueError, saying why, for a row noise control cannot
    use."""
    silence_id, starts_at, ends_at, account_id, entity_id, platform, alert_type, created_by, comment = row
    return Silence(
        silence_id=str(silence_id),
        starts_at=_ms(starts_at),
        ends_at=_ms(ends_at),
        account_id=_optional(account_id),
        entity_id=_optional(entity_id),
        platform=_optional(platform),
        type=None if not alert_type else AlertType(str(alert_type)),
        created_by=str(created_by or ""),
        comment=str(comment or ""),
    )


def _optional(value: object) -> str | None:
    # An empty matcher is no matcher (a form that sends "" for a field left blank).
    return None if value is None or value == "" else str(value)


def _ms(value: object) -> int:
    if isinstance(value, datetime):
        return to_ms(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"not an instant: {value!r}")
