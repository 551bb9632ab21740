//! The gap check: per task, which sequence numbers the trail lacks.
//!
//! Every task event carries the task's sequence, gap-free from 1, so a
//! complete trail holds every number from 1 to the highest one seen. audit
//! owns only its own table, so this finds holes *below* the highest
//! sequence it has; a lost *tail* (the newest events of a task) needs the
//! task's current sequence, which `functions/audit/ops/audit-gaps.sql`
//! compares in the database, read-only.
//!
//! Numbers at or below a task's retention floor (`audit_purged`) expired on
//! purpose and are not holes.

use serde::Serialize;
use uuid::Uuid;

use crate::query::split_page;
use crate::store::{AuditStore, StoreError};

/// At most this many missing numbers are listed per task; `missing_count`
/// always has the full count.
pub const MAX_LISTED: i64 = 1_000;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GapQuery {
    pub task_id: Option<Uuid>,
    /// Tasks after this id (the previous page's `next_cursor`).
    pub after: Option<Uuid>,
    /// Tasks per page, 1..=500.
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskGaps {
    pub task_id: Uuid,
    pub user_id: String,
    /// The highest sequence in the trail.
    pub max_sequence: i64,
    /// Sequences up to here were removed by retention.
    pub purged_through: i64,
    pub missing_count: i64,
    pub missing: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapReport {
    pub items: Vec<TaskGaps>,
    pub next_cursor: Option<String>,
}

/// Counting distinct sequences above the floor against the span says
/// whether a task has holes without listing every number; only tasks with
/// holes get the generate_series listing.
const GAPS: &str = "
WITH per_task AS (
    SELECT a.task_id,
           min(a.user_id) AS user_id,
           max(a.sequence) AS max_seq,
           COALESCE(max(p.through_sequence), 0) AS floor,
           count(DISTINCT a.sequence) FILTER (WHERE a.sequence > COALESCE(p.through_sequence, 0)) AS seen
    FROM audit_logs a
    LEFT JOIN audit_purged p ON p.task_id = a.task_id
    WHERE ($1::uuid IS NULL OR a.task_id = $1)
      AND ($2::uuid IS NULL OR a.task_id > $2)
    GROUP BY a.task_id
)
SELECT t.task_id, t.user_id, t.max_seq, t.floor,
       GREATEST(t.max_seq - t.floor, 0) - t.seen AS missing_count,
       ARRAY(
           SELECT s FROM generate_series(t.floor + 1, t.max_seq) AS s
           WHERE NOT EXISTS (
               SELECT 1 FROM audit_logs x WHERE x.task_id = t.task_id AND x.sequence = s)
           ORDER BY s
           LIMIT $4
       ) AS missing
FROM per_task t
WHERE t.seen < t.max_seq - t.floor
ORDER BY t.task_id
LIMIT $3";

impl AuditStore {
    /// Tasks whose trail has holes, in task id order.
    pub async fn gaps(&self, query: &GapQuery) -> Result<GapReport, StoreError> {
        let limit = query
            .limit
            .unwrap_or(crate::query::DEFAULT_LIMIT)
            .clamp(1, crate::query::MAX_LIMIT);
        let mut client = self.client().await?;
        let rows = client
            .query(
                GAPS,
                &[&query.task_id, &query.after, &(limit + 1), &MAX_LISTED],
            )
            .await
            .map_err(StoreError::from_db)?;
        let items = rows
            .iter()
            .map(|row| -> Result<TaskGaps, tokio_postgres::Error> {
                Ok(TaskGaps {
                    task_id: row.try_get(0)?,
                    user_id: row.try_get(1)?,
                    max_sequence: row.try_get(2)?,
                    purged_through: row.try_get(3)?,
                    missing_count: row.try_get(4)?,
                    missing: row.try_get(5)?,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Refused(e.to_string()))?;
        let (items, next_cursor) = split_page(items, limit, |last| last.task_id.to_string());
        Ok(GapReport { items, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestEntry, test_store};
    use chrono::Utc;

    #[tokio::test]
    #[ignore = "needs PostgreSQL (DATABASE_URL): ./scripts/test runs it"]
    async fn holes_below_the_highest_sequence_are_listed() {
        let store = test_store().await;
        let user = format!("gaps-{}", Uuid::now_v7());
        let holey = Uuid::now_v7();
        let whole = Uuid::now_v7();
        for seq in [1, 2, 5, 7] {
            TestEntry::new(&user, holey, seq, Utc::now())
                .insert(&store)
                .await;
        }
        for seq in 1..=3 {
            TestEntry::new(&user, whole, seq, Utc::now())
                .insert(&store)
                .await;
        }
        // A redelivered sequence (new event id, same number) is no hole.
        TestEntry::new(&user, whole, 3, Utc::now())
            .insert(&store)
            .await;

        let report = store
            .gaps(&GapQuery {
                task_id: Some(holey),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(report.items.len(), 1);
        let gaps = &report.items[0];
        assert_eq!(gaps.user_id, user);
        assert_eq!(gaps.max_sequence, 7);
        assert_eq!(gaps.missing, vec![3, 4, 6]);
        assert_eq!(gaps.missing_count, 3);

        let whole_report = store
            .gaps(&GapQuery {
                task_id: Some(whole),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(whole_report.items.is_empty(), "{whole_report:?}");
    }
}
