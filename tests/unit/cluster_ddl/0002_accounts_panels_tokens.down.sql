DROP TABLE IF EXISTS {db}.api_tokens ON CLUSTER 'barometre' SYNC;

DROP TABLE IF EXISTS {db}.panels ON CLUSTER 'barometre' SYNC;

DROP TABLE IF EXISTS {db}.accounts ON CLUSTER 'barometre' SYNC;
