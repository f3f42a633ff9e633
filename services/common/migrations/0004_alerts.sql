-- Alerts and what is around them (docs/ALERTS.md): the alerts the scoring worker publishes, the
-- platform-wide incidents that group them, acknowledgements, silences and webhook subscriptions.
-- Volumes are small (tens to thousands of rows a day), so every table is keyed for deduplication first:
-- the worker delivers at least once, and a replay must leave one row per id.
--
-- alerts: one row per published Alert v1 (plus what explains it). ReplacingMergeTree(version) ORDER BY
-- alert_id: the id is deterministic (type, account, observed_at), so a re-published alert replaces
-- itself; `version` is the publication time in ns. `status` is not stored here: an alert is `open`
-- unless alert_acks has a row for it (an acknowledgement is a separate fact, never overwritten by a
-- replay). `inhibited_by` names the incident that inhibited it (those rows are not on alerts.v1).
-- PARTITION BY month of detected_at: retention can drop whole months.
-- migrate:up
CREATE TABLE IF NOT EXISTS {db}.alerts (
    alert_id String,
    type LowCardinality(String),
    account_id String,
    entity_id Nullable(String),
    platform LowCardinality(String),
    observed_at DateTime64(3, 'UTC'),
    detected_at DateTime64(3, 'UTC'),
    value Nullable(Float64),
    expected Nullable(Float64),
    score Nullable(Float64),
    severity LowCardinality(String),
    details String,
    inhibited_by Nullable(String),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(detected_at)
ORDER BY alert_id
SETTINGS non_replicated_deduplication_window = 1000;
-- alert_acks: who acknowledged which alert, when (POST /v1/alerts/{id}/ack). The first acknowledgement
-- counts (ReplacingMergeTree keeps the row with the largest version; version = u64 max - ack time).
CREATE TABLE IF NOT EXISTS {db}.alert_acks (
    alert_id String,
    acked_at DateTime64(3, 'UTC'),
    acked_by String,
    comment String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY alert_id;
-- incidents: platform-wide incidents (Incident.to_dict), upserted by incident_id as they grow;
-- version = updated_at in ms (a later state of the incident replaces the earlier one).
CREATE TABLE IF NOT EXISTS {db}.incidents (
    incident_id String,
    type LowCardinality(String),
    platform LowCardinality(String),
    first_observed_at DateTime64(3, 'UTC'),
    last_observed_at DateTime64(3, 'UTC'),
    detected_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC'),
    accounts UInt32,
    members Array(String),
    emitted_before Array(String),
    active_accounts Nullable(UInt32),
    share Nullable(Float64),
    threshold UInt32,
    total_change Float64,
    severity LowCardinality(String),
    status LowCardinality(String),
    silenced_by Nullable(String),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(detected_at)
ORDER BY incident_id
SETTINGS non_replicated_deduplication_window = 1000;
-- silences: mute matching alerts during [starts_at, ends_at) (Silence in services/scoring/alerts/noise.py).
-- Expiring one early writes a new version with ends_at = now; the worker reloads them every few seconds.
CREATE TABLE IF NOT EXISTS {db}.silences (
    silence_id String,
    starts_at DateTime64(3, 'UTC'),
    ends_at DateTime64(3, 'UTC'),
    account_id Nullable(String),
    entity_id Nullable(String),
    platform Nullable(String),
    type Nullable(String),
    created_by String,
    comment String,
    created_at DateTime64(3, 'UTC'),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY silence_id;
-- webhook_subscriptions: where to POST alerts, with which filters, signed with which secret (kept in
-- clear: the dispatcher signs with it, as GitHub and Stripe do). Deleting one writes `deleted = 1`.
CREATE TABLE IF NOT EXISTS {db}.webhook_subscriptions (
    subscription_id String,
    url String,
    secret String,
    types Array(String),
    platforms Array(String),
    entity_ids Array(String),
    min_severity LowCardinality(String),
    description String,
    created_by String,
    created_at DateTime64(3, 'UTC'),
    deleted UInt8,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY subscription_id;
-- webhook_deliveries: the outcome of each delivery (one row per alert and subscription, the last
-- attempt's state replacing earlier ones): what an operator reads when a receiver says it missed one.
CREATE TABLE IF NOT EXISTS {db}.webhook_deliveries (
    subscription_id String,
    alert_id String,
    attempts UInt16,
    status LowCardinality(String),
    http_status Nullable(UInt16),
    error String,
    first_attempt_at DateTime64(3, 'UTC'),
    last_attempt_at DateTime64(3, 'UTC'),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(first_attempt_at)
ORDER BY (subscription_id, alert_id);
-- migrate:down
DROP TABLE IF EXISTS {db}.webhook_deliveries;
DROP TABLE IF EXISTS {db}.webhook_subscriptions;
DROP TABLE IF EXISTS {db}.silences;
DROP TABLE IF EXISTS {db}.incidents;
DROP TABLE IF EXISTS {db}.alert_acks;
DROP TABLE IF EXISTS {db}.alerts;
