-- Registered official accounts, named panels, and API tokens: small reference tables written by
-- `barometre import accounts|panel` and `barometre token create`, read by ingest (validation) and api.
--
-- accounts: ORDER BY account_id because ingest looks accounts up by id and the api joins on it;
-- ReplacingMergeTree(version) so that re-registering an account (a new handle, another entity) replaces it.
-- `deleted` lets an import retire an account without losing its history.
-- migrate:up
CREATE TABLE IF NOT EXISTS {db}.accounts (
    account_id String,
    platform LowCardinality(String),
    entity_id String,
    handle Nullable(String),
    url Nullable(String),
    deleted UInt8 DEFAULT 0,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY account_id;
-- panels: one row per (panel, entity); ORDER BY (panel, entity_id) because every use reads one panel's
-- members. Removing an entity from a panel writes a row with removed = 1 (a value, not a blind delete).
CREATE TABLE IF NOT EXISTS {db}.panels (
    panel LowCardinality(String),
    entity_id String,
    removed UInt8 DEFAULT 0,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (panel, entity_id);
-- api_tokens: only a SHA-256 of each token is stored; ORDER BY token_hash, the lookup key.
CREATE TABLE IF NOT EXISTS {db}.api_tokens (
    token_hash FixedString(64),
    token_prefix String,
    scopes Array(LowCardinality(String)),
    description String DEFAULT '',
    created_at DateTime64(3, 'UTC'),
    revoked UInt8 DEFAULT 0,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY token_hash;
-- migrate:down
DROP TABLE IF EXISTS {db}.api_tokens;
DROP TABLE IF EXISTS {db}.panels;
DROP TABLE IF EXISTS {db}.accounts;
