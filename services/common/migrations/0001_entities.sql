-- The reference registry: every collectivité a barometer can count (INSEE's Code officiel géographique,
-- shipped in services/common/reference) plus the entities users import (a former région, a foreign town).
--
-- ORDER BY entity_id: every lookup is by id (entity pages, joins from accounts and rollups), and the
-- table is small (~37,000 rows), so no partitioning: one part set, merged quickly.
-- ReplacingMergeTree(version): re-loading the reference data or a user's file replaces a row by id
-- instead of duplicating it; the highest version wins (read with FINAL). Shipped rows carry the
-- registry's build number, user imports a nanosecond timestamp, so a user's override always wins.
-- migrate:up
CREATE TABLE IF NOT EXISTS {db}.entities (
    entity_id String,
    name String,
    category LowCardinality(String),
    population Nullable(UInt32),
    departement LowCardinality(Nullable(String)),
    region LowCardinality(Nullable(String)),
    -- 'insee' for the shipped registry, 'import' for rows a user imported
    source LowCardinality(String),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY entity_id;
-- migrate:down
DROP TABLE IF EXISTS {db}.entities;
