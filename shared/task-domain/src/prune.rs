//! Retention of what the task domain keeps only for a while, so the outbox
//! and the idempotency table stop growing forever. Each has its own
//! horizon ([`Horizons`]):
//!
//! - `task-updates` rows are the change feed ([`crate::changes`]): kept
//!   `CHANGE_RETENTION_DAYS` (7 by default). A client behind that gets a
//!   reset and reloads its list.
//! - rows of the other topics are kept only for inspection once sent:
//!   `OUTBOX_SENT_RETENTION_HOURS` (24).
//! - `Idempotency-Key` records: `IDEMPOTENCY_RETENTION_HOURS` (24), the
//!   window in which a client's retry of a create is recognised.
//!
//! Only rows the relay marked sent (`sent_at IS NOT NULL`) are deleted,
//! whatever their age: an unsent row is an event still owed to the broker.
//! Each batch is its own bounded statement with `SKIP LOCKED`, so a backlog
//! never becomes one huge transaction, progress survives a crash, and an
//! overlapping run (or the relay marking rows) never waits on this one.
//! V6's partial index `outbox_sent_by_topic` and `idempotency_keys_created`
//! serve the scans.

use chrono::{DateTime, TimeDelta, Utc};
use contracts::Topic;
use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;

use crate::repo::RepoError;

/// How long each kind of row is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizons {
    pub change_feed: TimeDelta,
    pub sent_events: TimeDelta,
    pub idempotency_keys: TimeDelta,
}

/// What one prune deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    pub change_feed: u64,
    pub sent_events: u64,
    pub idempotency_keys: u64,
    pub batches: u32,
}

/// Sent rows of topic `$1` created before `$2`, at most `$3`, oldest first
/// (a range of `outbox_sent_by_topic`).
const PRUNE_OUTBOX: &str = "
WITH doomed AS (
    SELECT id FROM outbox
    WHERE sent_at IS NOT NULL AND topic = $1 AND created_at < $2
    ORDER BY created_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
DELETE FROM outbox o USING doomed d WHERE o.id = d.id";

const PRUNE_IDEMPOTENCY: &str = "
WITH doomed AS (
    SELECT user_id, key FROM idempotency_keys
    WHERE created_at < $1
    ORDER BY created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
DELETE FROM idempotency_keys k USING doomed d
WHERE k.user_id = d.user_id AND k.key = d.key";

/// `now - age`, or the beginning of time when that underflows (a huge
/// retention keeps everything instead of panicking).
pub fn cutoff(now: DateTime<Utc>, age: TimeDelta) -> DateTime<Utc> {
    now.checked_sub_signed(age)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Deletes what is older than its horizon as of `now`, `batch` rows per
/// statement.
pub async fn prune(
    pool: &Pool,
    horizons: Horizons,
    now: DateTime<Utc>,
    batch: i64,
) -> Result<PruneReport, RepoError> {
    let client = pool.get().await?;
    let outbox = client.prepare(PRUNE_OUTBOX).await?;
    let idempotency = client.prepare(PRUNE_IDEMPOTENCY).await?;
    let mut report = PruneReport::default();
    // Every topic the domain enqueues to (EventKind::topic).
    for topic in Topic::ALL {
        let feed = topic == Topic::TaskUpdates;
        let age = if feed {
            horizons.change_feed
        } else {
            horizons.sent_events
        };
        let before = cutoff(now, age);
        let name = topic.name();
        let (deleted, batches) =
            in_batches(&client, &outbox, &[&name, &before, &batch], batch).await?;
        report.batches += batches;
        if feed {
            report.change_feed += deleted;
        } else {
            report.sent_events += deleted;
        }
    }
    let before = cutoff(now, horizons.idempotency_keys);
    let (deleted, batches) = in_batches(&client, &idempotency, &[&before, &batch], batch).await?;
    report.idempotency_keys = deleted;
    report.batches += batches;
    Ok(report)
}

/// Runs `statement` until a batch deletes fewer than `batch` rows; the
/// rows deleted and the statements run.
async fn in_batches(
    client: &impl GenericClient,
    statement: &Statement,
    params: &[&(dyn ToSql + Sync)],
    batch: i64,
) -> Result<(u64, u32), RepoError> {
    let full = u64::try_from(batch).unwrap_or(u64::MAX);
    let (mut total, mut batches) = (0, 0);
    loop {
        let deleted = client.execute(statement, params).await?;
        batches += 1;
        total += deleted;
        if deleted < full {
            return Ok((total, batches));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_horizon_keeps_everything() {
        assert_eq!(cutoff(Utc::now(), TimeDelta::MAX), DateTime::<Utc>::MIN_UTC);
        let now = Utc::now();
        assert_eq!(cutoff(now, TimeDelta::days(7)), now - TimeDelta::days(7));
    }
}
