"""The columns of the alert tables of migration 0004, in one place: the scoring worker writes them
(services/scoring/alerts/records.py), the api reads them (services/api/alert_store.py)."""

from __future__ import annotations

from typing import Final

# alerts: the Alert v1 fields (status aside: it comes from alert_acks), then what the worker adds.
ALERT_FIELDS: Final = (
    "alert_id",
    "type",
    "account_id",
    "entity_id",
    "platform",
    "observed_at",
    "detected_at",
    "value",
    "expected",
    "score",
    "severity",
)
ALERT_COLUMNS: Final = (*ALERT_FIELDS, "details", "inhibited_by", "version")
# incidents: Incident.to_dict()'s fields, then the row version.
INCIDENT_FIELDS: Final = (
    "incident_id",
    "type",
    "platform",
    "first_observed_at",
    "last_observed_at",
    "detected_at",
    "updated_at",
    "accounts",
    "members",
    "emitted_before",
    "active_accounts",
    "share",
    "threshold",
    "total_change",
    "severity",
    "status",
    "silenced_by",
)
INCIDENT_COLUMNS: Final = (*INCIDENT_FIELDS, "version")
# silences: what noise control matches on (Silence), then when it was created.
SILENCE_COLUMNS: Final = (
    "silence_id",
    "starts_at",
    "ends_at",
    "account_id",
    "entity_id",
    "platform",
    "type",
    "created_by",
    "comment",
)
SILENCE_FIELDS: Final = (*SILENCE_COLUMNS, "created_at")
