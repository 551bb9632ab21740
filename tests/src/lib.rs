//! Helpers shared by the cross-function tests: where the real local stack
//! is, tokens for it, a database client, daprd's publish API and
//! `scripts/dev` for disruptions.
//!
//! Every test that needs the stack is `#[ignore = "needs the local stack:
//! ./scripts/test runs it"]`, so a plain `cargo test` lists it as ignored,
//! never as passed. `./scripts/test` starts the stack, sets
//! `TODO_EVENTS_STACK=1` and runs them with `--include-ignored`; then a
//! missing or unreachable part fails the test. Run explicitly without that
//! variable, [`Stack::from_env`] panics: a stack test never passes without
//! the stack.

pub mod bench;
pub mod cpu;
pub mod notify;
pub mod retry;
pub mod topic;
pub mod verify;
pub mod ws;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

/// The running local stack.
#[derive(Debug, Clone)]
pub struct Stack {
    pub task_api: String,
    pub audit: String,
    pub task_api_dapr: String,
    pub audit_dapr: String,
    pub recurring: String,
    pub recurring_dapr: String,
    pub database_url: String,
    pub dapr_api_token: Option<String>,
    pub app_api_token: Option<String>,
    pub jwt_secret: String,
    pub dev_script: PathBuf,
    pub http: reqwest::Client,
}

/// What `./scripts/test` sets; without it a stack test cannot run.
pub const STACK_FLAG: &str = "TODO_EVENTS_STACK";

/// The reason every stack test is ignored by a plain `cargo test`.
pub const NEEDS_STACK: &str = "needs the local stack: ./scripts/test runs it";

impl Stack {
    /// The stack described by the environment `./scripts/test` sets up.
    ///
    /// # Panics
    /// When `TODO_EVENTS_STACK` is not set: the test was run (it is
    /// `#[ignore]`d otherwise) but cannot reach a stack, and must fail
    /// rather than pass having checked nothing.
    pub fn from_env() -> Stack {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// [`Stack::from_env`] over any lookup, so the refusal is testable
    /// without touching the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Stack {
        let var = |key: &str| lookup(key).filter(|v| !v.is_empty());
        let env = |key: &str, default: &str| var(key).unwrap_or_else(|| default.to_owned());
        if var(STACK_FLAG).is_none() {
            panic!(
                "{STACK_FLAG} is not set, so this test cannot reach the local stack and fails \
                 instead of passing unchecked. Run ./scripts/test (it starts the stack and runs \
                 the ignored stack tests), or export the environment it sets and pass \
                 --include-ignored."
            );
        }
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        Stack {
            task_api: env("TASK_API_URL", "http://127.0.0.1:8080"),
            audit: env("AUDIT_URL", "http://127.0.0.1:8081"),
            task_api_dapr: env("TASK_API_DAPR_URL", "http://127.0.0.1:3500"),
            audit_dapr: env("AUDIT_DAPR_URL", "http://127.0.0.1:3501"),
            recurring: env("RECURRING_URL", "http://127.0.0.1:8082"),
            recurring_dapr: env("RECURRING_DAPR_URL", "http://127.0.0.1:3502"),
            database_url: env("DATABASE_URL", "postgres://todo:todo@127.0.0.1:5432/todo"),
            dapr_api_token: var("DAPR_API_TOKEN"),
            app_api_token: var("APP_API_TOKEN"),
            jwt_secret: var("JWT_HS256_SECRET")
                .unwrap_or_else(|| panic!("JWT_HS256_SECRET must be set when {STACK_FLAG} is")),
            dev_script: var("TODO_EVENTS_DEV")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo.join("scripts/dev")),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap_or_default(),
        }
    }

    /// A valid user token signed with the stack's secret.
    pub fn token(&self, user: &str, admin: bool) -> String {
        user_token(user, admin, &self.jwt_secret)
    }

    /// A fresh database connection.
    pub async fn db(&self) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| {
                    panic!("PostgreSQL at {} is not reachable: {e}", self.database_url)
                });
        tokio::spawn(connection);
        client
    }

    /// Creates a task through the API; returns the response JSON.
    pub async fn create_task(&self, user: &str, body: &Value) -> Value {
        let response = self
            .http
            .post(format!("{}/api/tasks", self.task_api))
            .bearer_auth(self.token(user, false))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("task-api at {} is not reachable: {e}", self.task_api));
        let status = response.status();
        let json: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(
            status,
            reqwest::StatusCode::CREATED,
            "create failed: {json}"
        );
        json
    }

    /// Publishes a structured CloudEvent through task-api's daprd, the way
    /// the outbox relay does. Returns daprd's status code.
    pub async fn publish(&self, topic: &str, partition_key: &str, event: &Value) -> u16 {
        let mut request = self
            .http
            .post(format!(
                "{}/v1.0/publish/pubsub/{topic}",
                self.task_api_dapr
            ))
            .query(&[("metadata.partitionKey", partition_key)])
            .header("content-type", "application/cloudevents+json")
            .body(event.to_string());
        if let Some(token) = &self.dapr_api_token {
            request = request.header("dapr-api-token", token);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("daprd at {} is not reachable: {e}", self.task_api_dapr));
        response.status().as_u16()
    }

    /// Runs `scripts/dev ARGS…`, failing the test if it fails.
    pub async fn dev(&self, args: &[&str]) -> String {
        self.script("dev", args).await
    }

    /// Runs `scripts/NAME ARGS…` (a project command), failing the test if it
    /// fails; returns its standard output.
    pub async fn script(&self, name: &str, args: &[&str]) -> String {
        let path = self.dev_script.with_file_name(name);
        let output = tokio::process::Command::new(&path)
            .args(args)
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
        assert!(
            output.status.success(),
            "scripts/{name} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// A one-hour token for `user`, signed with `secret`, carrying the issuer
/// and audience task-api checks when `JWT_ISSUER` / `JWT_AUDIENCE` are set.
pub fn user_token(user: &str, admin: bool, secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let roles = if admin {
        serde_json::json!(["admin"])
    } else {
        serde_json::json!([])
    };
    let mut claims =
        serde_json::json!({"sub": user, "iat": now, "exp": now + 3600, "roles": roles});
    for (claim, var) in [("iss", "JWT_ISSUER"), ("aud", "JWT_AUDIENCE")] {
        if let Ok(value) = std::env::var(var) {
            claims[claim] = Value::String(value);
        }
    }
    auth::testing::sign(&claims, secret)
}

/// Polls `probe` every 100 ms until it returns `Some`, for at most `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs a `SELECT count(*) …` with one parameter; -1 when the query fails,
/// so a broken database never reads as "no rows yet".
async fn count(
    db: &tokio_postgres::Client,
    sql: &str,
    param: &(dyn tokio_postgres::types::ToSql + Sync),
) -> i64 {
    db.query_one(sql, &[param])
        .await
        .map(|row| row.get(0))
        .unwrap_or(-1)
}

/// Counts audit rows for `task_id` (of every type).
pub async fn audit_rows_for_task(db: &tokio_postgres::Client, task_id: uuid::Uuid) -> i64 {
    count(
        db,
        "SELECT count(*) FROM audit_logs WHERE task_id = $1",
        &task_id,
    )
    .await
}

/// Counts audit rows stored for one event id.
pub async fn audit_rows_for_event(db: &tokio_postgres::Client, event_id: &str) -> i64 {
    count(
        db,
        "SELECT count(*) FROM audit_logs WHERE event_id = $1",
        &event_id,
    )
    .await
}

/// Counts a user's outbox rows the relay has not published yet.
pub async fn unsent_outbox_rows(db: &tokio_postgres::Client, user_id: &str) -> i64 {
    count(
        db,
        "SELECT count(*) FROM outbox WHERE partition_key = $1 AND sent_at IS NULL",
        &user_id,
    )
    .await
}

/// A schema of the test's own holding the task tables (task-domain's real
/// migrations), so a test's rows are seen by nothing else on the shared
/// stack (task-api's relay included), and its counts are exact.
pub struct PrivateSchema {
    /// Connections whose `search_path` is the schema.
    pub pool: deadpool_postgres::Pool,
    pub name: String,
    /// A connection set to the schema, for the test's own queries.
    pub db: tokio_postgres::Client,
}

impl PrivateSchema {
    /// Creates `<prefix>_<unix time>_<random>` with the task tables, after
    /// dropping this prefix's schemas a failed run left behind (more than
    /// an hour old).
    pub async fn create(stack: &Stack, prefix: &str, pool_size: usize) -> PrivateSchema {
        let db = stack.db().await;
        let stale = db
            .query(
                "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)
                 AND split_part(substr(nspname, length($1) + 1), '_', 1) ~ '^[0-9]+$'
                 AND split_part(substr(nspname, length($1) + 1), '_', 1)::bigint
                     < extract(epoch FROM now()) - 3600",
                &[&format!("{prefix}_")],
            )
            .await
            .expect("list schemas");
        for row in stale {
            let name: String = row.get(0);
            let _ = db
                .batch_execute(&format!("DROP SCHEMA {name} CASCADE"))
                .await;
        }
        let name = format!(
            "{prefix}_{}_{}",
            chrono::Utc::now().timestamp(),
            uuid::Uuid::new_v4().simple()
        );
        db.batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .expect("create schema");
        let separator = if stack.database_url.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!(
            "{}{separator}options=-c%20search_path%3D{name}",
            stack.database_url
        );
        service::db::migrate(
            &url,
            task_domain::migrations(),
            task_domain::MIGRATION_TABLE,
        )
        .await
        .expect("migrations in the private schema");
        db.batch_execute(&format!("SET search_path = {name}"))
            .await
            .expect("search_path");
        let pool = service::db::pool(&url, pool_size).expect("pool");
        PrivateSchema { pool, name, db }
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(self) {
        self.db
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await
            .expect("drop schema");
    }
}

/// A valid `task.sync` event (`task-updates`) of a made-up task of
/// `user` at stream `offset`, as the relay tests enqueue them.
pub fn sync_event(user: &str, offset: i64, epoch: &str) -> contracts::OutgoingEvent {
    let task_id = uuid::Uuid::now_v7();
    let data = contracts::TaskSyncData {
        task_id,
        user_id: user.to_owned(),
        sequence: 1,
        epoch: epoch.into(),
        offset,
        op: "created".into(),
        task: Some(contracts::testing::task_snapshot(task_id, user, 1)),
        changed: vec!["title".into()],
    };
    contracts::OutgoingEvent::new(
        contracts::EventKind::TaskSync,
        "task-api",
        task_id.to_string(),
        &data,
    )
    .expect("a valid sync event")
}

/// The line of audit's JSON log that stored an event of `task_id`
/// ("audit entry stored"), within `timeout`: its span shows the trace id
/// the handler received.
pub async fn audit_stored_line(task_id: &str, timeout: Duration) -> Option<Value> {
    let run_dir =
        std::env::var("TODO_EVENTS_RUN").unwrap_or_else(|_| "/var/tmp/todo-events".into());
    let log = std::path::Path::new(&run_dir).join("logs/app-audit.log");
    eventually(timeout, || async {
        let text = std::fs::read_to_string(&log).ok()?;
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|entry| entry["task_id"] == task_id && entry["message"] == "audit entry stored")
    })
    .await
}

/// How a relay test shapes its relay: events per daprd call, keys in
/// parallel, and how often leftovers are retried.
pub fn relay_config(
    batch_size: i64,
    concurrency: usize,
    poll_interval: Duration,
) -> task_domain::RelayConfig {
    task_domain::RelayConfig {
        pubsub: "pubsub".into(),
        batch_size,
        concurrency,
        poll_interval,
    }
}

/// A relay of `pool`'s outbox publishing through `dapr`, as the relay
/// tests drive it by hand, with the counters it keeps.
pub fn outbox_relay(
    pool: &deadpool_postgres::Pool,
    dapr: dapr_http::DaprClient,
    config: task_domain::RelayConfig,
) -> (task_domain::Relay, task_domain::relay::RelayMetrics) {
    let metrics = task_domain::relay::RelayMetrics::default();
    let relay = task_domain::Relay::new(pool.clone(), dapr, config, metrics.clone());
    (relay, metrics)
}

impl Stack {
    /// A client of task-api's daprd, the one that publishes its outbox.
    pub fn task_api_daprd(&self, timeout: Duration) -> dapr_http::DaprClient {
        dapr_http::DaprClient::new(&self.task_api_dapr, self.dapr_api_token.clone(), timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    #[should_panic(expected = "TODO_EVENTS_STACK is not set")]
    fn a_stack_test_run_without_the_stack_fails() {
        let empty: HashMap<&str, String> = HashMap::new();
        Stack::from_lookup(|key| empty.get(key).cloned());
    }

    #[test]
    fn the_stack_flag_and_its_settings_are_read() {
        let map: HashMap<&str, String> = [
            (STACK_FLAG, "1".to_owned()),
            ("JWT_HS256_SECRET", "s".repeat(32)),
            ("AUDIT_URL", "http://127.0.0.1:9".to_owned()),
            ("APP_API_TOKEN", String::new()),
        ]
        .into();
        let stack = Stack::from_lookup(|key| map.get(key).cloned());
        assert_eq!(stack.audit, "http://127.0.0.1:9");
        assert_eq!(stack.task_api, "http://127.0.0.1:8080");
        assert_eq!(stack.app_api_token, None, "empty counts as unset");
    }
}
