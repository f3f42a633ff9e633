DROP TABLE IF EXISTS {db}.entity_latest ON CLUSTER 'barometre' SYNC;

DROP TABLE IF EXISTS {db}.entity_latest_local ON CLUSTER 'barometre' SYNC;

DROP TABLE IF EXISTS {db}.presence ON CLUSTER 'barometre' SYNC;

DROP TABLE IF EXISTS {db}.presence_local ON CLUSTER 'barometre' SYNC;

DROP TABLE IF EXISTS {db}.account_latest ON CLUSTER 'barometre' SYNC;

DROP TABLE IF EXISTS {db}.account_latest_local ON CLUSTER 'barometre' SYNC;

DROP TABLE IF EXISTS {db}.account_daily ON CLUSTER 'barometre' SYNC;

DROP TABLE IF EXISTS {db}.account_daily_local ON CLUSTER 'barometre' SYNC;

DROP TABLE IF EXISTS {db}.snapshots ON CLUSTER 'barometre' SYNC;

DROP TABLE IF EXISTS {db}.snapshots_local ON CLUSTER 'barometre' SYNC;
