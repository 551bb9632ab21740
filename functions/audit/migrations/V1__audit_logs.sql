-- Owned by the audit function. One row per task event, keyed by the
-- CloudEvent id, so redelivery and replay add nothing.
CREATE TABLE audit_logs (
    event_id     text        PRIMARY KEY,
    event_type   text        NOT NULL,
    user_id      text        NOT NULL,
    task_id      uuid        NOT NULL,
    sequence     bigint      NOT NULL,
    -- When the change happened (the event's `time`).
    occurred_at  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    source       text        NOT NULL,
    payload      jsonb       NOT NULL
);
CREATE INDEX audit_logs_by_user_time ON audit_logs (user_id, occurred_at, event_id);
CREATE INDEX audit_logs_by_task ON audit_logs (task_id, sequence);
CREATE INDEX audit_logs_by_time ON audit_logs (occurred_at, event_id);
