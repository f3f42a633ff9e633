ALTER TABLE {db}.webhook_subscriptions ON CLUSTER 'barometre' DROP COLUMN IF EXISTS owner;

ALTER TABLE {db}.api_tokens ON CLUSTER 'barometre' DROP COLUMN IF EXISTS expires_at;
