//! The end checks that belong to no workload: once the system is quiet
//! (no fault, every process back), the outbox holds no unsent row of the
//! run's users. The relays (task-api's and recurring's) publish every row
//! with retries and backoff, so after a bounded wait every row still
//! unsent is a finding: an event that never left the database.

use std::time::Duration;

use tokio::time::Instant;

use crate::{Env, Tally};

/// The unsent rows the report lists one by one; the rest are counted.
const LISTED: usize = 20;

/// Waits up to `wait` for the outbox rows of `users` to be sent; every row
/// still unsent then is a problem.
pub async fn outbox_drained(env: &Env, users: &[String], wait: Duration) -> Tally {
    let mut tally = Tally::new("quiet: outbox");
    let deadline = Instant::now() + wait;
    let mut last_error = None;
    loop {
        match unsent(env, users).await {
            Ok((total, rows)) => {
                tally.checked = total;
                if rows.is_empty() {
                    return tally;
                }
                if Instant::now() >= deadline {
                    tally.problems = findings(&rows, wait);
                    return tally;
                }
            }
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= deadline {
            let error = last_error.unwrap_or_default();
            tally.problems.push(format!(
                "could not read the outbox within {wait:?}: {error}"
            ));
            return tally;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One outbox row not sent yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsent {
    pub id: i64,
    pub event_type: String,
    pub topic: String,
    pub attempts: i32,
}

/// The users' outbox rows in all, and those unsent.
async fn unsent(env: &Env, users: &[String]) -> Result<(u64, Vec<Unsent>), String> {
    let db = env.db().await.map_err(|e| format!("{e:#}"))?;
    let total: i64 = db
        .query_one(
            "SELECT count(*) FROM outbox WHERE partition_key = ANY($1)",
            &[&users],
        )
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    let rows = db
        .query(
            "SELECT id, event_type, topic, attempts FROM outbox
              WHERE partition_key = ANY($1) AND sent_at IS NULL ORDER BY id",
            &[&users],
        )
        .await
        .map_err(|e| e.to_string())?;
    let unsent = rows
        .iter()
        .map(|r| Unsent {
            id: r.get(0),
            event_type: r.get(1),
            topic: r.get(2),
            attempts: r.get(3),
        })
        .collect();
    Ok((u64::try_from(total).unwrap_or_default(), unsent))
}

/// One problem line per unsent row (the first [`LISTED`]), then a count.
pub fn findings(rows: &[Unsent], waited: Duration) -> Vec<String> {
    let mut lines: Vec<String> = rows
        .iter()
        .take(LISTED)
        .map(|r| {
            format!(
                "outbox row {} ({} to {}, {} attempts) still unsent {waited:?} after the system was quiet",
                r.id, r.event_type, r.topic, r.attempts
            )
        })
        .collect();
    if rows.len() > LISTED {
        lines.push(format!("… and {} more unsent rows", rows.len() - LISTED));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64) -> Unsent {
        Unsent {
            id,
            event_type: "com.todo.task.created".into(),
            topic: "task-events".into(),
            attempts: 3,
        }
    }

    #[test]
    fn every_unsent_row_is_a_finding_up_to_the_listed_ones() {
        assert!(findings(&[], Duration::from_secs(1)).is_empty());
        let two = findings(&[row(1), row(2)], Duration::from_secs(120));
        assert_eq!(two.len(), 2);
        assert!(
            two[0].starts_with("outbox row 1 (com.todo.task.created to task-events, 3 attempts)")
        );
        let many: Vec<Unsent> = (0..25).map(row).collect();
        let lines = findings(&many, Duration::from_secs(1));
        assert_eq!(lines.len(), LISTED + 1);
        assert_eq!(lines[LISTED], "… and 5 more unsent rows");
    }
}
