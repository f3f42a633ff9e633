CREATE TABLE IF NOT EXISTS {db}.entities ON CLUSTER 'barometre' (
    entity_id String,
    name String,
    category LowCardinality(String),
    population Nullable(UInt32),
    departement LowCardinality(Nullable(String)),
    region LowCardinality(Nullable(String)),
    source LowCardinality(String),
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}', version)
ORDER BY entity_id;
