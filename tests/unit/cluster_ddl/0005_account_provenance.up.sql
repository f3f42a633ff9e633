ALTER TABLE {db}.accounts ON CLUSTER 'barometre' ADD COLUMN IF NOT EXISTS origin LowCardinality(String) DEFAULT 'import';

ALTER TABLE {db}.accounts ON CLUSTER 'barometre' ADD COLUMN IF NOT EXISTS state LowCardinality(String) DEFAULT 'verified';

ALTER TABLE {db}.accounts ON CLUSTER 'barometre' ADD COLUMN IF NOT EXISTS platform_id Nullable(String);

ALTER TABLE {db}.accounts ON CLUSTER 'barometre' ADD COLUMN IF NOT EXISTS discovered_at Nullable(DateTime64(3, 'UTC'));

ALTER TABLE {db}.accounts ON CLUSTER 'barometre' ADD COLUMN IF NOT EXISTS verified_at Nullable(DateTime64(3, 'UTC'));

ALTER TABLE {db}.accounts ON CLUSTER 'barometre' ADD COLUMN IF NOT EXISTS state_reason String DEFAULT '';

CREATE TABLE IF NOT EXISTS {db}.account_sources ON CLUSTER 'barometre' (
    account_id String,
    source LowCardinality(String),
    entity_id String,
    platform LowCardinality(String),
    handle Nullable(String),
    url Nullable(String),
    reference Nullable(String),
    first_seen DateTime64(3, 'UTC'),
    last_seen DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}', version)
ORDER BY (account_id, source, entity_id);
