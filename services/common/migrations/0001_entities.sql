-- The reference registry: every collectivité a barometer can count (INSEE's Code officiel géographique,
-- shipped in services/common/reference) plus the entities users import (a former région, a foreign town).
--
-- ORDER BY entity_id: every lookup is by id (entity pages, joins from accounts and rollups), and the
-- table is small (~37,000 rows), so no partitioning: one part set, merged quickly.
-- ReplacingMergeTree(version): re-importing the reference data or a user's file replaces a row by id
-- instead of duplicating it; the highest version wins (read with FINAL or argMax).
-- migrate:up
CREATE TABLE IF NOT EXISTS {db}.entities (
    entity_id String,
    name String,
    category LowCardinality(String),
    population UInt32,
    departement LowCardinality(String),
    region LowCardinality(String),
    -- 'insee' for the shipped registry, 'import' for rows a user imported
    source LowCardinality(String),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY entity_id;
-- migrate:down
DROP TABLE IF EXISTS {db}.entities;
