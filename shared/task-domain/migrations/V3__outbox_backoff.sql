-- The relay's backoff. A publish that daprd refuses as a client error (4xx:
-- the event or its topic is refused, so retrying at once cannot help) is not
-- retried before next_attempt_at; until then the row blocks the later rows
-- of its partition key, so nothing overtakes it. NULL means "now".
-- attempts and last_error (V1) count and explain the refusals.
ALTER TABLE outbox ADD COLUMN next_attempt_at timestamptz;
