-- The task domain's tables. Owned by shared/task-domain (used by task-api and
-- recurring); no other function writes them.

CREATE TABLE tasks (
    id            uuid PRIMARY KEY,
    user_id       text        NOT NULL,
    title         text        NOT NULL CHECK (char_length(title) BETWEEN 1 AND 500),
    description   text        NOT NULL DEFAULT '' CHECK (char_length(description) <= 10000),
    status        text        NOT NULL CHECK (status IN ('pending', 'completed')),
    priority      text        NOT NULL CHECK (priority IN ('high', 'medium', 'low')),
    tags          text[]      NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 20),
    due_at        timestamptz,
    time_zone     text        NOT NULL DEFAULT 'UTC',
    recurrence    jsonb,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    completed_at  timestamptz,
    -- Incremented in the same transaction as every change of the task.
    sequence      bigint      NOT NULL DEFAULT 1 CHECK (sequence >= 1)
);
CREATE INDEX tasks_by_user_created ON tasks (user_id, created_at DESC, id DESC);

-- One ordered stream per user. Every change takes the next offset while
-- holding this row's lock, which also serialises one user's changes, so
-- outbox ids of one user are allocated (and committed) in offset order.
CREATE TABLE user_streams (
    user_id      text PRIMARY KEY,
    -- Changes only if the stream's history is lost; clients then reload.
    epoch        uuid   NOT NULL,
    last_offset  bigint NOT NULL DEFAULT 0 CHECK (last_offset >= 0)
);

-- The transactional outbox: events commit with the change that causes them
-- and are published by the relay, per partition key in id order.
CREATE TABLE outbox (
    id             bigserial PRIMARY KEY,
    -- The CloudEvent id: the consumers' idempotency key.
    event_id       uuid        NOT NULL UNIQUE,
    topic          text        NOT NULL,
    partition_key  text        NOT NULL,
    event_type     text        NOT NULL,
    -- The whole structured CloudEvent, exactly as it is published.
    payload        jsonb       NOT NULL,
    -- The user's stream offset, for task-updates events (replay source).
    stream_offset  bigint,
    traceparent    text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    sent_at        timestamptz,
    attempts       integer     NOT NULL DEFAULT 0,
    last_error     text
);
CREATE INDEX outbox_pending ON outbox (partition_key, id) WHERE sent_at IS NULL;
CREATE INDEX outbox_user_stream ON outbox (partition_key, stream_offset) WHERE stream_offset IS NOT NULL;
