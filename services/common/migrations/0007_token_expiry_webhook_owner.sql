-- Least privilege (docs/CONTRACT.md, "Tokens"): tokens expire, and webhooks belong to the token that
-- made them.
--
-- api_tokens.expires_at: when the token stops working (NULL: never). Written by `barometre token create`
-- (a year unless told otherwise); services compare it with their clock at every request. A revocation
-- stays what it was: a new version of the row with revoked = 1.
--
-- webhook_subscriptions.owner: the SHA-256 of the token that created the subscription (api_tokens'
-- token_hash; for the bootstrap token, the SHA-256 of BAROMETRE_BOOTSTRAP_TOKEN). A token sees and
-- deletes only its own subscriptions, an admin token every one. Subscriptions made before this
-- migration have owner '': only admin tokens see them.
-- migrate:up
ALTER TABLE {db}.api_tokens ADD COLUMN IF NOT EXISTS expires_at Nullable(DateTime64(3, 'UTC')) AFTER created_at;
ALTER TABLE {db}.webhook_subscriptions ADD COLUMN IF NOT EXISTS owner String DEFAULT '' AFTER created_by;
-- migrate:down
ALTER TABLE {db}.webhook_subscriptions DROP COLUMN IF EXISTS owner;
ALTER TABLE {db}.api_tokens DROP COLUMN IF EXISTS expires_at;
