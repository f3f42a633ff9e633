DROP TABLE IF EXISTS {db}.poll_failures ON CLUSTER 'barometre' SYNC;

DROP TABLE IF EXISTS {db}.poll_state ON CLUSTER 'barometre' SYNC;
