ALTER TABLE {db}.api_tokens ON CLUSTER 'barometre' ADD COLUMN IF NOT EXISTS expires_at Nullable(DateTime64(3, 'UTC')) AFTER created_at;

ALTER TABLE {db}.webhook_subscriptions ON CLUSTER 'barometre' ADD COLUMN IF NOT EXISTS owner String DEFAULT '' AFTER created_by;
