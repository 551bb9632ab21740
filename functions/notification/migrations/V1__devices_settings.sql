-- notification's own tables: Web Push subscriptions and per-user settings.
-- The reminder view and the delivery log live in the Dapr state store.

-- One row per push endpoint: an endpoint belongs to one user only, so a
-- browser re-registered by another user moves (the primary key on endpoint
-- makes the move one upsert).
CREATE TABLE IF NOT EXISTS push_devices (
    endpoint   text PRIMARY KEY,
    id         uuid NOT NULL UNIQUE,
    user_id    text NOT NULL,
    p256dh     text NOT NULL,
    auth       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS push_devices_user ON push_devices (user_id, created_at);

CREATE TABLE IF NOT EXISTS notification_settings (
    user_id    text PRIMARY KEY,
    email      text,
    email_on   boolean NOT NULL DEFAULT true,
    push_on    boolean NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL DEFAULT now()
);
