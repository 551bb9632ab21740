//! What PostgreSQL shows for the run's users: the outbox, the user streams,
//! the tasks and the audit log, and bounded waits for the relay and the
//! audit function to finish.

use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;
use tokio_postgres::Client;
use uuid::Uuid;

/// One outbox row of a run's user.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub event_id: String,
    pub topic: String,
    pub event_type: String,
    pub user_id: String,
    pub task_id: Option<Uuid>,
    pub sequence: Option<i64>,
    pub stream_offset: Option<i64>,
    pub sent: bool,
    /// The task's title after the change (`data.task.title`).
    pub title: Option<String>,
    /// Whether the change wrote the title (`data.changed` holds "title").
    pub title_changed: bool,
}

/// One audit row of a run's user.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub event_id: String,
    pub event_type: String,
    pub task_id: Uuid,
    pub sequence: i64,
}

/// Every row that matters to the checks.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub outbox: Vec<OutboxRow>,
    pub audit: Vec<AuditRow>,
    /// (user_id, last_offset).
    pub streams: Vec<(String, i64)>,
    /// (task id, sequence) of the tasks that still exist.
    pub tasks: Vec<(Uuid, i64)>,
}

pub async fn connect(database_url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .context("PostgreSQL (DATABASE_URL) is not reachable")?;
    tokio::spawn(connection);
    Ok(client)
}

/// Polls every 200 ms until `done` says so or `deadline` passes; returns
/// whether it was done and the last value seen.
async fn poll<T, F>(
    db: &Client,
    deadline: Instant,
    sql: &str,
    users: &[String],
    mut done: F,
) -> anyhow::Result<(bool, T)>
where
    F: FnMut(&tokio_postgres::Row) -> (bool, T),
{
    loop {
        let row = db.query_one(sql, &[&users]).await?;
        let (ok, value) = done(&row);
        if ok || Instant::now() >= deadline {
            return Ok((ok, value));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the users have at least `expected` outbox rows and none is
/// unsent. Returns whether that happened before `deadline`.
pub async fn wait_published(
    db: &Client,
    users: &[String],
    expected: i64,
    deadline: Instant,
) -> anyhow::Result<bool> {
    let sql = "SELECT count(*), count(*) FILTER (WHERE sent_at IS NULL)
               FROM outbox WHERE partition_key = ANY($1)";
    let (ok, ()) = poll(db, deadline, sql, users, |row| {
        let (all, unsent): (i64, i64) = (row.get(0), row.get(1));
        (all >= expected && unsent == 0, ())
    })
    .await?;
    Ok(ok)
}

/// Waits until the audit log holds as many of the users' rows as the
/// outbox has `task-events` rows for them.
pub async fn wait_audited(
    db: &Client,
    users: &[String],
    deadline: Instant,
) -> anyhow::Result<bool> {
    let sql = "SELECT (SELECT count(*) FROM audit_logs WHERE user_id = ANY($1)),
                      (SELECT count(*) FROM outbox
                        WHERE partition_key = ANY($1) AND topic = 'task-events')";
    let (ok, ()) = poll(db, deadline, sql, users, |row| {
        let (audited, events): (i64, i64) = (row.get(0), row.get(1));
        (audited >= events, ())
    })
    .await?;
    Ok(ok)
}

/// Every user with an outbox row whose id starts with `prefix` (a run's
/// users, `faults-<run id>-`, whichever workload made them).
pub async fn users_with_prefix(db: &Client, prefix: &str) -> anyhow::Result<Vec<String>> {
    let pattern = format!(
        "{}%",
        prefix
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    Ok(db
        .query(
            "SELECT DISTINCT partition_key FROM outbox WHERE partition_key LIKE $1 ORDER BY 1",
            &[&pattern],
        )
        .await
        .context("reading the run's users")?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// How many `task-events` rows of `snapshot` have no audit row yet.
pub fn unaudited(snapshot: &Snapshot) -> usize {
    let audited: std::collections::HashSet<&str> =
        snapshot.audit.iter().map(|r| r.event_id.as_str()).collect();
    snapshot
        .outbox
        .iter()
        .filter(|r| r.topic == "task-events" && !audited.contains(r.event_id.as_str()))
        .count()
}

/// Reads everything the checks compare, for `users`.
pub async fn snapshot(db: &Client, users: &[String]) -> anyhow::Result<Snapshot> {
    let outbox = db
        .query(
            "SELECT event_id::text, topic, event_type, partition_key,
                    (payload->'data'->>'task_id')::uuid, (payload->'data'->>'sequence')::bigint,
                    stream_offset, sent_at IS NOT NULL,
                    payload->'data'->'task'->>'title',
                    coalesce(payload->'data'->'changed' ? 'title', false)
             FROM outbox WHERE partition_key = ANY($1)",
            &[&users],
        )
        .await
        .context("reading the outbox")?
        .iter()
        .map(|r| OutboxRow {
            event_id: r.get(0),
            topic: r.get(1),
            event_type: r.get(2),
            user_id: r.get(3),
            task_id: r.get(4),
            sequence: r.get(5),
            stream_offset: r.get(6),
            sent: r.get(7),
            title: r.get(8),
            title_changed: r.get(9),
        })
        .collect();
    let audit = db
        .query(
            "SELECT event_id, event_type, task_id, sequence FROM audit_logs WHERE user_id = ANY($1)",
            &[&users],
        )
        .await
        .context("reading audit_logs")?
        .iter()
        .map(|r| AuditRow {
            event_id: r.get(0),
            event_type: r.get(1),
            task_id: r.get(2),
            sequence: r.get(3),
        })
        .collect();
    let streams = db
        .query(
            "SELECT user_id, last_offset FROM user_streams WHERE user_id = ANY($1)",
            &[&users],
        )
        .await
        .context("reading user_streams")?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let tasks = db
        .query(
            "SELECT id, sequence FROM tasks WHERE user_id = ANY($1)",
            &[&users],
        )
        .await
        .context("reading tasks")?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(Snapshot {
        outbox,
        audit,
        streams,
        tasks,
    })
}
