-- Reminders, idempotency keys, push subscriptions, list indexes, and the
-- occurrence counter recurrence needs. V1 is never edited.

-- Which occurrence of a recurring series this task is (1 = the first). The
-- recurrence engine compares it with an "after N occurrences" end.
ALTER TABLE tasks ADD COLUMN occurrence integer NOT NULL DEFAULT 1 CHECK (occurrence >= 1);

CREATE INDEX tasks_by_user_updated ON tasks (user_id, updated_at, id);
CREATE INDEX tasks_by_user_due ON tasks (user_id, (COALESCE(due_at, 'infinity'::timestamptz)), id);
CREATE INDEX tasks_tags ON tasks USING gin (tags);

-- A task's reminders. `fire_at` is derived (relative: due_at minus
-- minutes_before; absolute: at) and kept so the diff of firing times is a
-- comparison, not a recomputation; NULL when the reminder cannot fire.
CREATE TABLE reminders (
    id              uuid PRIMARY KEY,
    task_id         uuid        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    user_id         text        NOT NULL,
    minutes_before  integer     CHECK (minutes_before BETWEEN 0 AND 525600),
    at              timestamptz,
    channels        text[]      NOT NULL CHECK (cardinality(channels) BETWEEN 1 AND 2),
    fire_at         timestamptz,
    created_at      timestamptz NOT NULL,
    -- Exactly one of the two kinds.
    CHECK ((minutes_before IS NULL) <> (at IS NULL))
);
CREATE INDEX reminders_by_task ON reminders (task_id);

-- Idempotency-Key replays for POST /api/tasks: the first request's hash and
-- response, per user and key.
CREATE TABLE idempotency_keys (
    user_id       text        NOT NULL,
    key           text        NOT NULL,
    request_hash  text        NOT NULL,
    status        smallint    NOT NULL,
    body          jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

-- Web Push subscriptions, read by the notification function.
CREATE TABLE devices (
    id          uuid PRIMARY KEY,
    user_id     text        NOT NULL,
    endpoint    text        NOT NULL,
    p256dh      text        NOT NULL,
    auth        text        NOT NULL,
    created_at  timestamptz NOT NULL,
    UNIQUE (user_id, endpoint)
);
