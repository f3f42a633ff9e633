CREATE TABLE IF NOT EXISTS {db}.poll_state ON CLUSTER 'barometre' (
    platform LowCardinality(String),
    account_id String,
    next_due DateTime64(3, 'UTC'),
    cadence_s UInt32,
    last_attempt_at Nullable(DateTime64(3, 'UTC')),
    last_success_at Nullable(DateTime64(3, 'UTC')),
    last_reason LowCardinality(String) DEFAULT '',
    last_error String DEFAULT '',
    failures UInt32 DEFAULT 0,
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}', version)
ORDER BY (platform, account_id);

CREATE TABLE IF NOT EXISTS {db}.poll_failures ON CLUSTER 'barometre' (
    platform LowCardinality(String),
    account_id String,
    failed_at DateTime64(3, 'UTC'),
    reason LowCardinality(String),
    detail String
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}')
PARTITION BY toYYYYMM(failed_at)
ORDER BY (platform, failed_at, account_id)
TTL toDateTime(failed_at) + INTERVAL 90 DAY;
