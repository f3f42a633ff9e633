-- Where each registered account comes from, and where it stands in review (docs/CONTRACT.md, "Accounts").
--
-- accounts gains:
--   origin        how the account came in: simulator, import, push, poll, discover (AccountOrigin). The
--                 pollers never read a simulator account; rows written before this migration read as
--                 'import' (the simulator re-registers its accounts, as 'simulator', each time it starts).
--   state         candidate, verified, rejected, gone (AccountState); rejected and gone are never polled.
--   platform_id   the platform's stable id once verified (a Bluesky DID, a Mastodon account id, a YouTube
--                 channel id), so that a renamed account stays the same account.
--   discovered_at / verified_at   when a public registry first named it, when the platform confirmed it.
--   state_reason  why the state is what it is (who rejected it and why, what confirmed it gone).
--
-- account_sources: one row per (account, source, entity) naming: which public registry (wikidata,
-- annuaire) or door (import) named the account for which entity, with the link as the source gave it.
-- ORDER BY (account_id, source, entity_id): an account's provenance is read whole, and two entities
-- claiming the same account stay two rows (the evidence of a conflict). ReplacingMergeTree(version):
-- a source seen again replaces its row (last_seen moves on, first_seen is carried over by the writer).
-- migrate:up
ALTER TABLE {db}.accounts ADD COLUMN IF NOT EXISTS origin LowCardinality(String) DEFAULT 'import';
ALTER TABLE {db}.accounts ADD COLUMN IF NOT EXISTS state LowCardinality(String) DEFAULT 'verified';
ALTER TABLE {db}.accounts ADD COLUMN IF NOT EXISTS platform_id Nullable(String);
ALTER TABLE {db}.accounts ADD COLUMN IF NOT EXISTS discovered_at Nullable(DateTime64(3, 'UTC'));
ALTER TABLE {db}.accounts ADD COLUMN IF NOT EXISTS verified_at Nullable(DateTime64(3, 'UTC'));
ALTER TABLE {db}.accounts ADD COLUMN IF NOT EXISTS state_reason String DEFAULT '';
CREATE TABLE IF NOT EXISTS {db}.account_sources (
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
) ENGINE = ReplacingMergeTree(version)
ORDER BY (account_id, source, entity_id);
-- migrate:down
DROP TABLE IF EXISTS {db}.account_sources;
ALTER TABLE {db}.accounts DROP COLUMN IF EXISTS state_reason;
ALTER TABLE {db}.accounts DROP COLUMN IF EXISTS verified_at;
ALTER TABLE {db}.accounts DROP COLUMN IF EXISTS discovered_at;
ALTER TABLE {db}.accounts DROP COLUMN IF EXISTS platform_id;
ALTER TABLE {db}.accounts DROP COLUMN IF EXISTS state;
ALTER TABLE {db}.accounts DROP COLUMN IF EXISTS origin;
