CREATE TABLE IF NOT EXISTS {db}.alerts ON CLUSTER 'barometre' (
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
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}', version)
PARTITION BY toYYYYMM(detected_at)
ORDER BY alert_id
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {db}.alert_acks ON CLUSTER 'barometre' (
    alert_id String,
    acked_at DateTime64(3, 'UTC'),
    acked_by String,
    comment String,
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}', version)
ORDER BY alert_id;

CREATE TABLE IF NOT EXISTS {db}.incidents ON CLUSTER 'barometre' (
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
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}', version)
PARTITION BY toYYYYMM(detected_at)
ORDER BY incident_id
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {db}.silences ON CLUSTER 'barometre' (
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
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}', version)
ORDER BY silence_id;

CREATE TABLE IF NOT EXISTS {db}.webhook_subscriptions ON CLUSTER 'barometre' (
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
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}', version)
ORDER BY subscription_id;

CREATE TABLE IF NOT EXISTS {db}.webhook_deliveries ON CLUSTER 'barometre' (
    subscription_id String,
    alert_id String,
    attempts UInt16,
    status LowCardinality(String),
    http_status Nullable(UInt16),
    error String,
    first_attempt_at DateTime64(3, 'UTC'),
    last_attempt_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}', version)
PARTITION BY toYYYYMM(first_attempt_at)
ORDER BY (subscription_id, alert_id);
