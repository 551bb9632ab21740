-- Recurring series: every occurrence is computed from the series' anchor
-- (RFC 5545's DTSTART), never from the previous occurrence, so monthly
-- from Jan 31, yearly from Feb 29 and a daily time skipped by a DST gap do
-- not drift. V1–V3 are never edited.

ALTER TABLE tasks
    -- The same for every occurrence of one series.
    ADD COLUMN series_id           uuid,
    -- DTSTART: the anchor's local wall time, in series_time_zone.
    ADD COLUMN series_start        timestamp,
    ADD COLUMN series_time_zone    text,
    -- The occurrence index DTSTART has: 1 for a new series; an edit of a
    -- series' due date re-anchors it at the edited occurrence's index.
    ADD COLUMN series_start_index  integer CHECK (series_start_index >= 1),
    ADD CONSTRAINT tasks_series_anchor_complete CHECK (
        (series_start IS NULL) = (series_time_zone IS NULL)
        AND (series_start IS NULL) = (series_start_index IS NULL)
        AND (series_start IS NULL OR series_id IS NOT NULL)
    );

-- Existing recurring tasks get their anchor from their current due date,
-- read in their own zone (a zone PostgreSQL does not know is read as UTC,
-- which the engine would also fall back to).
UPDATE tasks t
SET series_id          = t.id,
    series_start       = t.due_at AT TIME ZONE z.zone,
    series_time_zone   = z.zone,
    series_start_index = t.occurrence
FROM (SELECT id,
             CASE WHEN EXISTS (SELECT 1 FROM pg_timezone_names n WHERE n.name = tasks.time_zone)
                  THEN time_zone ELSE 'UTC' END AS zone
      FROM tasks) z
WHERE z.id = t.id AND t.recurrence IS NOT NULL AND t.due_at IS NOT NULL;

-- Exactly one task per (series, occurrence index): whatever races or is
-- redelivered, a completion creates its successor at most once.
CREATE UNIQUE INDEX tasks_series_occurrence ON tasks (series_id, occurrence)
    WHERE series_id IS NOT NULL;
