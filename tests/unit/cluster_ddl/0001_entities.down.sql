DROP TABLE IF EXISTS {db}.entities ON CLUSTER 'barometre' SYNC;
