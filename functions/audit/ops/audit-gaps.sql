-- The audit gap check against each task's own sequence, read-only.
--
-- GET /api/audit-logs/gaps finds holes below the highest sequence audit has
-- seen; only the task table knows a task's current sequence, so a lost tail
-- (a task's newest events never stored) shows up only here. audit never
-- reads task tables at run time (each table has one owner); this is an
-- operator's command, run against the same database:
--
--   psql "$DATABASE_URL" -X -f functions/audit/ops/audit-gaps.sql
--   psql "$DATABASE_URL" -X -v task_id=<uuid> -v settle_seconds=0 -f functions/audit/ops/audit-gaps.sql
--
-- One row per task whose trail lacks a sequence in (purged_through,
-- tasks.sequence]; no rows means nothing is missing. Tasks changed in the
-- last settle_seconds (default 60) are skipped: their newest events may
-- still be on their way through the outbox relay and Kafka.

\if :{?settle_seconds}
\else
\set settle_seconds 60
\endif
\if :{?task_id}
\else
\set task_id ''
\endif

SET default_transaction_read_only = on;

WITH checked AS (
    SELECT t.id AS task_id,
           t.user_id,
           t.sequence AS task_sequence,
           COALESCE(p.through_sequence, 0) AS purged_through
    FROM tasks t
    LEFT JOIN audit_purged p ON p.task_id = t.id
    WHERE t.updated_at < now() - make_interval(secs => :settle_seconds)
      AND (:'task_id' = '' OR t.id = NULLIF(:'task_id', '')::uuid)
), counted AS (
    SELECT c.*,
           (SELECT count(DISTINCT a.sequence) FROM audit_logs a
            WHERE a.task_id = c.task_id
              AND a.sequence > c.purged_through
              AND a.sequence <= c.task_sequence) AS seen,
           (SELECT COALESCE(max(a.sequence), 0) FROM audit_logs a
            WHERE a.task_id = c.task_id) AS audit_max
    FROM checked c
)
SELECT task_id,
       user_id,
       task_sequence,
       audit_max,
       purged_through,
       task_sequence - purged_through - seen AS missing_count,
       ARRAY(
           SELECT s FROM generate_series(purged_through + 1, task_sequence) AS s
           WHERE NOT EXISTS (
               SELECT 1 FROM audit_logs a WHERE a.task_id = counted.task_id AND a.sequence = s)
           ORDER BY s
           LIMIT 50
       ) AS missing
FROM counted
WHERE seen < task_sequence - purged_through
ORDER BY task_id;
