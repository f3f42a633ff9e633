DROP TABLE IF EXISTS {db}.webhook_deliveries ON CLUSTER 'barometre' SYNC;

DROP TABLE IF EXISTS {db}.webhook_subscriptions ON CLUSTER 'barometre' SYNC;

DROP TABLE IF EXISTS {db}.silences ON CLUSTER 'barometre' SYNC;

DROP TABLE IF EXISTS {db}.incidents ON CLUSTER 'barometre' SYNC;

DROP TABLE IF EXISTS {db}.alert_acks ON CLUSTER 'barometre' SYNC;

DROP TABLE IF EXISTS {db}.alerts ON CLUSTER 'barometre' SYNC;
