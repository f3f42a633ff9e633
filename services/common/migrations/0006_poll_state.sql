-- The poller's memory (`barometre poller`, docs/CONTRACT.md "Polling"): when each account is next due,
-- how it fared last time, and a log of failures for coverage and operators.
--
-- poll_state: one row per polled account. next_due survives restarts, so a restarted poller goes on
-- where it was instead of reading every account again at once. cadence_s is the account's current
-- interval (frequent for large or moving accounts, daily for small quiet ones). last_reason is the
-- FailureReason of the last attempt ('' after a success), last_error its detail, failures how many
-- attempts in a row failed. ORDER BY (platform, account_id): the scheduler loads one platform's
-- accounts, coverage counts per platform. ReplacingMergeTree(version), version = write time in ns.
--
-- poll_failures: every failed attempt, for `/v1/coverage` ("failing, with the last error") and for
-- whoever asks what went wrong last week. ORDER BY (platform, failed_at): read by platform and time.
-- PARTITION BY month and a TTL of 90 days: a log, not a record.
-- migrate:up
CREATE TABLE IF NOT EXISTS {db}.poll_state (
    platform LowCardinality(String),
    account_id String,
    next_due DateTime64(3, 'UTC'),
    cadence_s UInt32,
    last_attempt_at Nullable(DateTime64(3, 'UTC')),
    last_success_at Nullable(DateTime64(3, 'UTC')),
    last_reason LowCardinality(String) DEFAULT '',
    last_error String DEFAULT '',
    failures UInt32 DEFAULT 0,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (platform, account_id);
CREATE TABLE IF NOT EXISTS {db}.poll_failures (
    platform LowCardinality(String),
    account_id String,
    failed_at DateTime64(3, 'UTC'),
    reason LowCardinality(String),
    detail String
) ENGINE = MergeTree
PARTITION BY toYYYYMM(failed_at)
ORDER BY (platform, failed_at, account_id)
TTL toDateTime(failed_at) + INTERVAL 90 DAY;
-- migrate:down
DROP TABLE IF EXISTS {db}.poll_failures;
DROP TABLE IF EXISTS {db}.poll_state;
