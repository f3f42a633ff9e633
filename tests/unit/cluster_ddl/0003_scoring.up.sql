CREATE TABLE IF NOT EXISTS {db}.snapshots_local ON CLUSTER 'barometre' (
    event_id String,
    account_id String,
    platform LowCardinality(String),
    entity_id String,
    handle Nullable(String),
    observed_at DateTime64(3, 'UTC'),
    followers UInt64,
    following Nullable(UInt64),
    posts_total Nullable(UInt64),
    posts_30d Nullable(UInt64),
    interactions_30d Nullable(UInt64),
    replies_30d Nullable(UInt64),
    automated_posts_30d Nullable(UInt64),
    status LowCardinality(String),
    source LowCardinality(String)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toYYYYMM(observed_at)
ORDER BY (account_id, observed_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {db}.snapshots ON CLUSTER 'barometre' AS {db}.snapshots_local
ENGINE = Distributed('barometre', {db}, 'snapshots_local', cityHash64(entity_id));

CREATE TABLE IF NOT EXISTS {db}.account_daily_local ON CLUSTER 'barometre' (
    account_id String,
    day Date,
    platform LowCardinality(String),
    entity_id String,
    observed_at DateTime64(3, 'UTC'),
    event_id String,
    followers UInt64,
    status LowCardinality(String),
    posts_30d Nullable(UInt64),
    interactions_30d Nullable(UInt64),
    replies_30d Nullable(UInt64),
    automated_posts_30d Nullable(UInt64),
    score Nullable(Float32),
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
PARTITION BY toYear(day)
ORDER BY (account_id, day)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {db}.account_daily ON CLUSTER 'barometre' AS {db}.account_daily_local
ENGINE = Distributed('barometre', {db}, 'account_daily_local', cityHash64(entity_id));

CREATE TABLE IF NOT EXISTS {db}.account_latest_local ON CLUSTER 'barometre' (
    platform LowCardinality(String),
    account_id String,
    entity_id String,
    handle Nullable(String),
    observed_at DateTime64(3, 'UTC'),
    followers UInt64,
    status LowCardinality(String),
    before_1d Nullable(UInt64),
    before_7d Nullable(UInt64),
    before_30d Nullable(UInt64),
    before_90d Nullable(UInt64),
    before_365d Nullable(UInt64),
    posts_30d Nullable(UInt64),
    interactions_30d Nullable(UInt64),
    replies_30d Nullable(UInt64),
    automated_posts_30d Nullable(UInt64),
    score Nullable(Float32),
    score_regularity Nullable(Float32),
    score_engagement Nullable(Float32),
    score_conversation Nullable(Float32),
    score_human Nullable(Float32),
    score_growth Nullable(Float32),
    score_formula LowCardinality(String),
    first_seen DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
ORDER BY (platform, account_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {db}.account_latest ON CLUSTER 'barometre' AS {db}.account_latest_local
ENGINE = Distributed('barometre', {db}, 'account_latest_local', cityHash64(entity_id));

CREATE TABLE IF NOT EXISTS {db}.presence_local ON CLUSTER 'barometre' (
    platform LowCardinality(String),
    account_id String,
    entity_id String,
    starts Array(DateTime64(3, 'UTC')),
    ends Array(DateTime64(3, 'UTC')),
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
ORDER BY (platform, account_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {db}.presence ON CLUSTER 'barometre' AS {db}.presence_local
ENGINE = Distributed('barometre', {db}, 'presence_local', cityHash64(entity_id));

CREATE TABLE IF NOT EXISTS {db}.entity_latest_local ON CLUSTER 'barometre' (
    platform LowCardinality(String),
    category LowCardinality(String),
    entity_id String,
    accounts UInt32,
    present UInt8,
    observed_at DateTime64(3, 'UTC'),
    followers UInt64,
    before_1d Nullable(UInt64),
    before_7d Nullable(UInt64),
    before_30d Nullable(UInt64),
    before_90d Nullable(UInt64),
    before_365d Nullable(UInt64),
    score Nullable(Float32),
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
ORDER BY (platform, category, entity_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {db}.entity_latest ON CLUSTER 'barometre' AS {db}.entity_latest_local
ENGINE = Distributed('barometre', {db}, 'entity_latest_local', cityHash64(entity_id));
