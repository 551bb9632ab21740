-- Indexes for GET /api/audit-logs: every filter is an equality on one
-- column followed by the keyset order (occurred_at, event_id), so each
-- page is one index range scan whatever the table's size. A non-admin's
-- query always carries user_id, hence user+type; user+task needs no index
-- of its own because a task belongs to one user (the task index serves it).
-- (user_id, occurred_at, event_id) and (occurred_at, event_id) exist in V1;
-- (task_id, sequence) stays for the gap check.
CREATE INDEX audit_logs_by_task_time ON audit_logs (task_id, occurred_at, event_id);
CREATE INDEX audit_logs_by_type_time ON audit_logs (event_type, occurred_at, event_id);
CREATE INDEX audit_logs_by_user_type_time ON audit_logs (user_id, event_type, occurred_at, event_id);

-- What retention removed, per task: the highest sequence deleted. The gap
-- check starts after it, so entries that expired on purpose are not
-- reported as lost.
CREATE TABLE audit_purged (
    task_id          uuid        PRIMARY KEY,
    through_sequence bigint      NOT NULL,
    purged_at        timestamptz NOT NULL DEFAULT now()
);
