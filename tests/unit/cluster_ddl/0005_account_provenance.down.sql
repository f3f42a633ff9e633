DROP TABLE IF EXISTS {db}.account_sources ON CLUSTER 'barometre' SYNC;

ALTER TABLE {db}.accounts ON CLUSTER 'barometre' DROP COLUMN IF EXISTS state_reason;

ALTER TABLE {db}.accounts ON CLUSTER 'barometre' DROP COLUMN IF EXISTS verified_at;

ALTER TABLE {db}.accounts ON CLUSTER 'barometre' DROP COLUMN IF EXISTS discovered_at;

ALTER TABLE {db}.accounts ON CLUSTER 'barometre' DROP COLUMN IF EXISTS platform_id;

ALTER TABLE {db}.accounts ON CLUSTER 'barometre' DROP COLUMN IF EXISTS state;

ALTER TABLE {db}.accounts ON CLUSTER 'barometre' DROP COLUMN IF EXISTS origin;
