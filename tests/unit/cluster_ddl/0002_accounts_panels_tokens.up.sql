CREATE TABLE IF NOT EXISTS {db}.accounts ON CLUSTER 'barometre' (
    account_id String,
    platform LowCardinality(String),
    entity_id String,
    handle Nullable(String),
    url Nullable(String),
    deleted UInt8 DEFAULT 0,
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}', version)
ORDER BY account_id;

CREATE TABLE IF NOT EXISTS {db}.panels ON CLUSTER 'barometre' (
    panel LowCardinality(String),
    entity_id String,
    removed UInt8 DEFAULT 0,
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}', version)
ORDER BY (panel, entity_id);

CREATE TABLE IF NOT EXISTS {db}.api_tokens ON CLUSTER 'barometre' (
    token_hash FixedString(64),
    token_prefix String,
    scopes Array(LowCardinality(String)),
    description String DEFAULT '',
    created_at DateTime64(3, 'UTC'),
    revoked UInt8 DEFAULT 0,
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}', version)
ORDER BY token_hash;
