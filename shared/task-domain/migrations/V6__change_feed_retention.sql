-- Retention of the outbox and of Idempotency-Key records (src/prune.rs):
-- sent rows are deleted oldest first, per horizon (task-updates, the
-- change feed, is kept longer than the other topics). Partial on
-- sent_at IS NOT NULL: unsent rows are never pruned, and the relay's own
-- index (outbox_pending) covers those. The change feed's reads use V1's
-- outbox_user_stream (partition_key, stream_offset).
-- V1–V5 are never edited.
CREATE INDEX outbox_sent_by_topic ON outbox (topic, created_at) WHERE sent_at IS NOT NULL;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
