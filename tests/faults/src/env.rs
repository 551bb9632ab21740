//! Where the stack is, read from the environment `scripts/faults` exports
//! (the same variables as `scripts/test`, plus `.dev/env`), and the run's
//! own users. A run that cannot reach the stack fails here, with the
//! variable or URL named, never passes.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// Why the stack's environment is unusable.
#[derive(Debug, Error)]
pub enum EnvError {
    #[error(
        "{0} is not set: run the suite through ./scripts/faults (it loads .dev/env and exports the \
         stack's URLs), and start the stack with ./scripts/dev up"
    )]
    Missing(&'static str),
    #[error("{name}={url} is not a loopback URL; the suite only ever talks to the local stack")]
    NotLoopback { name: &'static str, url: String },
    #[error("{what} at {url} is not reachable ({detail}); is the stack up? (./scripts/dev status)")]
    Unreachable {
        what: String,
        url: String,
        detail: String,
    },
}

/// The running local stack and the run's identity.
#[derive(Debug, Clone)]
pub struct Env {
    pub task_api: String,
    /// sync-gateway's base URL (HTTP); its socket is `ws://…/ws/tasks`.
    pub gateway: String,
    pub notification: String,
    pub audit: String,
    pub recurring: String,
    /// mailpit's HTTP API (`…/api/v1/messages`).
    pub mailpit: String,
    pub database_url: String,
    pub jwt_secret: String,
    /// Each function's daprd HTTP API, by function name.
    pub task_api_dapr: String,
    pub audit_dapr: String,
    pub recurring_dapr: String,
    pub notification_dapr: String,
    pub gateway_dapr: String,
    pub dapr_api_token: Option<String>,
    pub app_api_token: Option<String>,
    /// The audience and issuer the stack's functions check (`JWT_AUDIENCE`,
    /// `JWT_ISSUER`; scripts/faults copies them from the running task-api's
    /// environment): unset, a token without them, or with other values, is
    /// valid on this stack.
    pub jwt_audience: Option<String>,
    pub jwt_issuer: Option<String>,
    /// The Python with the push service's packages (`PUSH_PYTHON`), if set.
    pub push_python: Option<String>,
    /// `scripts/dev`, for restarts and status.
    pub dev_script: PathBuf,
    /// A short id unique to this run; every id the run creates carries it.
    pub run_id: String,
    /// The run's user ids, `faults-{run_id}-{n}`.
    pub users: Vec<String>,
    pub http: reqwest::Client,
    /// The stack's pids at the run's start and every restart of ours
    /// ([`crate::procs`]): a pid change it does not explain is a crash.
    pub processes: std::sync::Arc<crate::ProcessLog>,
    /// The e2e helpers' view of the same stack (tokens, database, dev).
    pub stack: e2e_tests::Stack,
}

/// The variables read, and their defaults where `scripts/test` has one
/// (the ports of scripts/lib/stack.sh's FUNCTION_TABLE).
const URLS: [(&str, &str); 11] = [
    ("TASK_API_URL", "http://127.0.0.1:8080"),
    ("SYNC_GATEWAY_URL", "http://127.0.0.1:8090"),
    ("NOTIFICATION_URL", "http://127.0.0.1:8083"),
    ("AUDIT_URL", "http://127.0.0.1:8081"),
    ("RECURRING_URL", "http://127.0.0.1:8082"),
    ("MAILPIT_URL", "http://127.0.0.1:8025"),
    ("TASK_API_DAPR_URL", "http://127.0.0.1:3500"),
    ("AUDIT_DAPR_URL", "http://127.0.0.1:3501"),
    ("RECURRING_DAPR_URL", "http://127.0.0.1:3502"),
    ("NOTIFICATION_DAPR_URL", "http://127.0.0.1:3503"),
    ("SYNC_GATEWAY_DAPR_URL", "http://127.0.0.1:3504"),
];

impl Env {
    /// The stack described by the process environment, with `users` users
    /// for run `run_id`.
    pub fn from_env(run_id: &str, users: usize) -> Result<Env, EnvError> {
        Self::from_lookup(|key| std::env::var(key).ok(), run_id, users)
    }

    /// [`Env::from_env`] over any lookup (testable without the process
    /// environment). The secrets and the database have no default: without
    /// them the run cannot be the stack's.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        run_id: &str,
        users: usize,
    ) -> Result<Env, EnvError> {
        let var = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        let required = |key: &'static str| var(key).ok_or(EnvError::Missing(key));
        required(e2e_tests::STACK_FLAG)?;
        let database_url = required("DATABASE_URL")?;
        let jwt_secret = required("JWT_HS256_SECRET")?;
        let mut urls = std::collections::HashMap::with_capacity(URLS.len());
        for (name, default) in URLS {
            let url = var(name).unwrap_or_else(|| default.to_owned());
            let url = url.trim_end_matches('/').to_owned();
            if !is_loopback(&url) {
                return Err(EnvError::NotLoopback { name, url });
            }
            urls.insert(name, url);
        }
        // Every name of URLS is in the map, checked above.
        let mut url = |name: &str| urls.remove(name).unwrap_or_default();
        let stack = e2e_tests::Stack::from_lookup(&lookup);
        Ok(Env {
            task_api: url("TASK_API_URL"),
            gateway: url("SYNC_GATEWAY_URL"),
            notification: url("NOTIFICATION_URL"),
            audit: url("AUDIT_URL"),
            recurring: url("RECURRING_URL"),
            mailpit: url("MAILPIT_URL"),
            database_url,
            jwt_secret,
            task_api_dapr: url("TASK_API_DAPR_URL"),
            audit_dapr: url("AUDIT_DAPR_URL"),
            recurring_dapr: url("RECURRING_DAPR_URL"),
            notification_dapr: url("NOTIFICATION_DAPR_URL"),
            gateway_dapr: url("SYNC_GATEWAY_DAPR_URL"),
            dapr_api_token: var("DAPR_API_TOKEN"),
            app_api_token: var("APP_API_TOKEN"),
            jwt_audience: var("JWT_AUDIENCE"),
            jwt_issuer: var("JWT_ISSUER"),
            push_python: var("PUSH_PYTHON"),
            dev_script: stack.dev_script.clone(),
            run_id: run_id.to_owned(),
            users: (0..users).map(|n| format!("faults-{run_id}-{n}")).collect(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap_or_default(),
            processes: std::sync::Arc::default(),
            stack,
        })
    }

    /// A valid one-hour token for `user`, signed with the stack's secret.
    pub fn token(&self, user: &str, admin: bool) -> String {
        e2e_tests::user_token(user, admin, &self.jwt_secret)
    }

    /// sync-gateway's socket URL.
    pub fn gateway_ws(&self) -> String {
        format!("{}/ws/tasks", self.gateway.replacen("http", "ws", 1))
    }

    /// A fresh database connection.
    pub async fn db(&self) -> anyhow::Result<tokio_postgres::Client> {
        e2e_tests::verify::db::connect(&self.database_url).await
    }

    /// Every function answers `/healthz` and PostgreSQL answers a query:
    /// the first thing a run checks, so an unreachable stack is a clear
    /// failure.
    pub async fn check_reachable(&self) -> Result<(), EnvError> {
        let apps = [
            ("task-api", &self.task_api),
            ("audit", &self.audit),
            ("recurring", &self.recurring),
            ("notification", &self.notification),
            ("sync-gateway", &self.gateway),
        ];
        for (what, base) in apps {
            let url = format!("{base}/healthz");
            let ok = self.http.get(&url).send().await;
            match ok {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => return Err(unreachable(what, &url, format!("status {}", r.status()))),
                Err(e) => return Err(unreachable(what, &url, e.to_string())),
            }
        }
        let db = self
            .db()
            .await
            .map_err(|e| unreachable("PostgreSQL", &self.database_url, format!("{e:#}")))?;
        db.simple_query("SELECT 1")
            .await
            .map_err(|e| unreachable("PostgreSQL", &self.database_url, e.to_string()))?;
        Ok(())
    }
}

fn unreachable(what: &str, url: &str, detail: String) -> EnvError {
    EnvError::Unreachable {
        what: what.to_owned(),
        url: url.to_owned(),
        detail,
    }
}

fn is_loopback(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .is_some_and(|h| matches!(h.as_str(), "127.0.0.1" | "localhost" | "[::1]"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |key| map.get(key).cloned()
    }

    const BASE: [(&str, &str); 3] = [
        ("TODO_EVENTS_STACK", "1"),
        ("DATABASE_URL", "postgres://todo:todo@127.0.0.1:5432/todo"),
        ("JWT_HS256_SECRET", "s"),
    ];

    #[test]
    fn users_carry_the_run_id() {
        let env = Env::from_lookup(lookup(&BASE), "r1", 3).expect("env");
        assert_eq!(env.users, ["faults-r1-0", "faults-r1-1", "faults-r1-2"]);
        assert_eq!(env.gateway_ws(), "ws://127.0.0.1:8090/ws/tasks");
        assert_eq!(env.notification_dapr, "http://127.0.0.1:3503");
    }

    #[test]
    fn each_variable_lands_in_its_own_field() {
        let mut pairs = BASE.to_vec();
        pairs.push(("AUDIT_URL", "http://127.0.0.1:18081/"));
        pairs.push(("SYNC_GATEWAY_DAPR_URL", "http://localhost:13504"));
        let env = Env::from_lookup(lookup(&pairs), "r", 0).expect("env");
        assert_eq!(env.audit, "http://127.0.0.1:18081");
        assert_eq!(env.gateway_dapr, "http://localhost:13504");
        assert_eq!(env.task_api, "http://127.0.0.1:8080");
        assert!(env.users.is_empty());
        assert_eq!((env.jwt_audience, env.jwt_issuer), (None, None));
        pairs.push(("JWT_AUDIENCE", "todo"));
        pairs.push(("JWT_ISSUER", " "));
        let env = Env::from_lookup(lookup(&pairs), "r", 0).expect("env");
        assert_eq!(env.jwt_audience.as_deref(), Some("todo"));
        assert_eq!(env.jwt_issuer, None, "blank is unset");
        assert!(env.processes.at_start().is_empty());
    }

    #[test]
    fn a_missing_secret_or_flag_is_named() {
        let err = Env::from_lookup(lookup(&BASE[..2]), "r", 1).expect_err("no secret");
        assert!(err.to_string().contains("JWT_HS256_SECRET"), "{err}");
        let err = Env::from_lookup(lookup(&BASE[1..]), "r", 1).expect_err("no flag");
        assert!(err.to_string().contains("TODO_EVENTS_STACK"), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_stack_is_named_not_passed() {
        // Port 9 (discard) is closed on loopback here: nothing answers.
        let mut pairs = BASE.to_vec();
        pairs.push(("TASK_API_URL", "http://127.0.0.1:9"));
        let env = Env::from_lookup(lookup(&pairs), "r", 1).expect("env");
        let err = env.check_reachable().await.expect_err("nothing listens");
        let text = err.to_string();
        assert!(
            text.contains("task-api at http://127.0.0.1:9/healthz"),
            "{text}"
        );
        assert!(text.contains("./scripts/dev status"), "{text}");
    }

    #[test]
    fn a_remote_url_is_refused() {
        let mut pairs = BASE.to_vec();
        pairs.push(("TASK_API_URL", "http://example.com:8080"));
        let err = Env::from_lookup(lookup(&pairs), "r", 1).expect_err("remote");
        assert!(matches!(
            err,
            EnvError::NotLoopback {
                name: "TASK_API_URL",
                ..
            }
        ));
    }
}
