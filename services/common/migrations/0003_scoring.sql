-- The scoring worker's tables (docs/SCORING.md). Every table can be rebuilt from the snapshots topic
-- (`barometre rebuild`); every write is idempotent: inserts carry deduplication tokens (the non-replicated
-- window below; Replicated tables deduplicate by default) and ReplacingMergeTree keeps one row per key.
--
-- snapshots: every snapshot ever accepted, one row per event_id.
-- ORDER BY (account_id, observed_at, event_id): account history reads one account's rows in time order,
-- and a replayed event (same key) collapses into one row. PARTITION BY month of observed_at: historical
-- imports land in their own months, old months are never rewritten by live traffic.
-- migrate:up
CREATE TABLE IF NOT EXISTS {db}.snapshots (
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
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(observed_at)
ORDER BY (account_id, observed_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000;
-- account_daily: each account's daily point (its last snapshot of each UTC day) with the score then.
-- ORDER BY (account_id, day): history and as-of queries read a range of days of many accounts;
-- ReplacingMergeTree(version) with version = observed_at in ms keeps the day's latest snapshot whatever
-- the arrival order. PARTITION BY year: as-of queries prune to the years they touch.
CREATE TABLE IF NOT EXISTS {db}.account_daily (
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
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYear(day)
ORDER BY (account_id, day)
SETTINGS non_replicated_deduplication_window = 1000;
-- account_latest: one row per account, its latest daily point and what live figures need: the
-- followers one window before it (null when unknown), its presence now, its good-practice score.
-- ORDER BY (platform, account_id): live account rankings read one platform; ~300,000 rows in all.
-- version = write time in ns: a late event may change a baseline without changing the latest point.
CREATE TABLE IF NOT EXISTS {db}.account_latest (
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
) ENGINE = ReplacingMergeTree(version)
ORDER BY (platform, account_id)
SETTINGS non_replicated_deduplication_window = 1000;
-- presence: each account's presence intervals [start, end) (docs/SCORING.md), as two arrays in one row
-- per account, so presence at any instant is a range test over ~300,000 small rows.
-- ORDER BY (platform, account_id): presence is always asked per platform.
CREATE TABLE IF NOT EXISTS {db}.presence (
    platform LowCardinality(String),
    account_id String,
    entity_id String,
    starts Array(DateTime64(3, 'UTC')),
    ends Array(DateTime64(3, 'UTC')),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (platform, account_id)
SETTINGS non_replicated_deduplication_window = 1000;
-- entity_latest: per entity and platform, the live sums across the entity's accounts there
-- (accounts observed within the staleness window). Recomputed by the worker for the entities a batch
-- touched, from account_latest, with version = server time of the recomputation: the last recomputation
-- saw every account row written before it, so concurrent workers converge on the right sums.
-- ORDER BY (platform, category, entity_id): live rankings read one platform and usually one category.
CREATE TABLE IF NOT EXISTS {db}.entity_latest (
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
) ENGINE = ReplacingMergeTree(version)
ORDER BY (platform, category, entity_id)
SETTINGS non_replicated_deduplication_window = 1000;
-- migrate:down
DROP TABLE IF EXISTS {db}.entity_latest;
DROP TABLE IF EXISTS {db}.presence;
DROP TABLE IF EXISTS {db}.account_latest;
DROP TABLE IF EXISTS {db}.account_daily;
DROP TABLE IF EXISTS {db}.snapshots;
