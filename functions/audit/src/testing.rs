//! Test fixtures over the real PostgreSQL named by `DATABASE_URL`.
//!
//! Tests that need it are `#[ignore = "needs PostgreSQL (DATABASE_URL):
//! ./scripts/test runs it"]`: a plain `cargo test` lists them as ignored,
//! and `./scripts/test` runs them with `--include-ignored`. Once run, a
//! missing or unreachable database fails them; they never pass unchecked.

use chrono::{DateTime, Utc};
use contracts::testing::task_snapshot;
use contracts::{EventKind, TaskEventData};
use uuid::Uuid;

use crate::store::{AuditEntry, AuditStore};

/// The test database's URL.
///
/// # Panics
/// When `DATABASE_URL` is not set: the test was run without the stack.
pub fn database_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "DATABASE_URL is not set: this test needs PostgreSQL and fails instead of passing \
             unchecked (./scripts/test sets it up and runs the ignored tests)"
        ),
    }
}

/// A store over the test database, migrated.
///
/// # Panics
/// When the database is not configured or does not answer within 5 s.
pub async fn test_store() -> AuditStore {
    let url = database_url();
    let pool = service::db::pool(&url, 4).expect("DATABASE_URL parses");
    service::db::wait_ready(&pool, &url, std::time::Duration::from_secs(5))
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    service::db::migrate(&url, crate::migrations(), crate::MIGRATION_TABLE)
        .await
        .expect("audit migrations apply");
    AuditStore::new(pool)
}

/// A store over a schema of its own in the test database: audit's tables,
/// migrated there, that no other test (and no running audit) can touch.
/// For tests whose assertion a concurrent purge or lock would spoil.
pub struct Isolated {
    pub store: AuditStore,
    pub schema: String,
    /// Every connection of the store's pool carries it, so
    /// `pg_stat_activity` shows which backends are this test's.
    pub application_name: String,
    /// A connection outside the store's pool, to watch it from.
    observer: tokio_postgres::Client,
}

impl Isolated {
    pub async fn new() -> Self {
        let url = database_url();
        let schema = format!("audit_test_{}", Uuid::new_v4().simple());
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at DATABASE_URL: {e}"));
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("schema created");
        let settings = service::db::PoolSettings::new(4)
            .with("search_path", &schema)
            .with("application_name", &schema);
        let pool = service::db::pool_with(&url, &settings).expect("DATABASE_URL parses");
        service::db::migrate_pool(&pool, crate::migrations(), crate::MIGRATION_TABLE)
            .await
            .expect("audit migrations apply in the test schema");
        Self {
            store: AuditStore::new(pool),
            application_name: schema.clone(),
            schema,
            observer: client,
        }
    }

    /// A connection of its own into the schema.
    pub async fn connection(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL reachable");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("SET search_path = {}", self.schema))
            .await
            .unwrap();
        client
    }

    /// How many of the store's backends are running a statement.
    pub async fn active_statements(&self) -> i64 {
        self.observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'",
                &[&self.application_name],
            )
            .await
            .unwrap()
            .get(0)
    }

    pub async fn drop_schema(self) {
        self.observer
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await
            .expect("schema dropped");
    }
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
