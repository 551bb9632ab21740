-- The ingest-ordered tail (GET /api/audit-logs?order=ingest): a position
-- every row gets when it is stored, so a client that follows the tail's
-- cursor also gets rows that arrive late (a lagging partition, an outbox
-- backlog, a dead-letter replay), which the event-time order files behind
-- its cursor for good.
--
-- ingest_seq alone is not safe to page by: it is drawn at INSERT, so under
-- concurrent inserts seq 11 can commit (and be read) while seq 10 is still
-- in flight, and a reader that moved past 11 never sees 10. ingest_xid is
-- the inserting transaction's id (xid8: 64 bits, never wraps). The tail
-- hands out only rows whose transaction is older than the oldest one still
-- running (pg_snapshot_xmin of the reader's snapshot), in (ingest_xid,
-- ingest_seq) order: every such row is already committed and visible, and
-- any row stored later belongs to a transaction at or above that horizon,
-- so it sorts after everything handed out (see src/tail.rs).
--
-- Existing rows get the migration's own transaction id and seqs in table
-- order: they come first, in a stable order. Adding both columns rewrites
-- the table under an exclusive lock; on a large trail run it in a quiet
-- window (ingest retries meanwhile).
ALTER TABLE audit_logs
    ADD COLUMN ingest_seq bigint GENERATED ALWAYS AS IDENTITY,
    ADD COLUMN ingest_xid xid8 NOT NULL DEFAULT pg_current_xact_id();

-- The tail's keyset order, alone (admins) and after a user (everyone else's
-- scope).
CREATE INDEX audit_logs_by_ingest ON audit_logs (ingest_xid, ingest_seq);
CREATE INDEX audit_logs_by_user_ingest ON audit_logs (user_id, ingest_xid, ingest_seq);
