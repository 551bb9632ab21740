-- Which occurrences a series has advanced to, kept when the occurrence's
-- task is deleted: a completion whose successor was created once (and then
-- deleted by its user) must not create it again when the completion event
-- is redelivered, duplicated or the predecessor is completed once more.
-- The unique index on tasks (series_id, occurrence) cannot say that: the
-- deleted row is gone. V1–V6 are never edited.

CREATE TABLE series_advances (
    series_id   uuid        NOT NULL,
    occurrence  integer     NOT NULL CHECK (occurrence >= 1),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (series_id, occurrence)
);

-- Every occurrence that exists now was reached once.
INSERT INTO series_advances (series_id, occurrence)
SELECT series_id, occurrence FROM tasks WHERE series_id IS NOT NULL
ON CONFLICT DO NOTHING;
