-- Calendar feeds: a per-user token for GET /api/calendar.ics, which
-- calendar apps fetch without a Bearer header. Only the token's SHA-256 is
-- kept; rotating replaces it, so the old feed URL stops working at once.
-- V1–V4 are never edited.
CREATE TABLE calendar_feeds (
    user_id     text PRIMARY KEY,
    token_hash  text        NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
