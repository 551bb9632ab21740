//! Test fixtures over the real PostgreSQL named by `DATABASE_URL`.
//!
//! With `TODO_EVENTS_STACK=1` (set by `./scripts/test`) a missing or
//! unreachable database fails the test; without it, the test says why it
//! did not run and returns.

use chrono::{DateTime, Utc};
use contracts::testing::task_snapshot;
use contracts::{EventKind, TaskEventData};
use uuid::Uuid;

use crate::store::{AuditEntry, AuditStore};

/// A store over the test database, migrated; `None` when no stack is meant
/// to be there.
pub async fn store_or_skip() -> Option<AuditStore> {
    let required = std::env::var("TODO_EVENTS_STACK").is_ok_and(|v| v == "1");
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if required => panic!("TODO_EVENTS_STACK=1 but DATABASE_URL is not set"),
        _ => {
            eprintln!("skipped: DATABASE_URL is not set (run ./scripts/test for the real stack)");
            return None;
        }
    };
    let pool = service::db::pool(&url, 4).expect("DATABASE_URL parses");
    if let Err(error) =
        service::db::wait_ready(&pool, &url, std::time::Duration::from_secs(5)).await
    {
        if required {
            panic!("{error}");
        }
        eprintln!("skipped: {error}");
        return None;
    }
    service::db::migrate(&url, crate::migrations(), crate::MIGRATION_TABLE)
        .await
        .expect("audit migrations apply");
    Some(AuditStore::new(pool))
}

/// An audit row to insert directly, at a chosen time.
#[derive(Debug, Clone)]
pub struct TestEntry {
    pub event_id: String,
    pub kind: EventKind,
    pub user_id: String,
    pub task_id: Uuid,
    pub sequence: i64,
    pub occurred_at: DateTime<Utc>,
}

impl TestEntry {
    pub fn new(user_id: &str, task_id: Uuid, sequence: i64, occurred_at: DateTime<Utc>) -> Self {
        Self {
            event_id: Uuid::now_v7().to_string(),
            kind: EventKind::TaskUpdated,
            user_id: user_id.to_owned(),
            task_id,
            sequence,
            occurred_at,
        }
    }

    /// `created`, `updated`, `completed` or `deleted`.
    pub fn kind(mut self, short: &str) -> Self {
        self.kind = EventKind::parse(&format!("com.todo.task.{short}"))
            .unwrap_or_else(|| panic!("not a task event kind: {short}"));
        self
    }

    pub async fn insert(&self, store: &AuditStore) -> String {
        let data = TaskEventData {
            task_id: self.task_id,
            user_id: self.user_id.clone(),
            sequence: self.sequence,
            task: task_snapshot(self.task_id, &self.user_id, self.sequence),
            changed: vec!["title".to_owned()],
        };
        let stored = store
            .record(&AuditEntry {
                event_id: &self.event_id,
                event_type: self.kind.as_str(),
                source: "/todo-events/task-api",
                occurred_at: self.occurred_at,
                data: &data,
            })
            .await
            .expect("test row stored");
        assert!(stored, "test event ids are fresh");
        self.event_id.clone()
    }
}

/// Whether the entry is gone within a second. Purges skip rows another
/// purge has locked (`FOR UPDATE SKIP LOCKED`), and tests here purge the
/// same table concurrently, so a row can outlive the purge that returned
/// first by the time the other one commits.
pub async fn purged_soon(store: &AuditStore, event_id: &str) -> bool {
    for _ in 0..50 {
        if store.get(event_id).await.unwrap().is_none() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}
