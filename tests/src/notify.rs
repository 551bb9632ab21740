//! Helpers for notification's stack tests: where notification and
//! mailpit are, the local Web Push service (scripts/lib/push_service.py)
//! started per test, and the API calls the tests repeat.

use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;

use crate::{Stack, eventually};

/// Tests that change mailpit (chaos) or stop notification take this for
/// writing; every other mail test for reading.
pub static MAIL: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Enough for the outbox, Kafka, daprd and the scheduler on a busy
/// two-core machine.
pub const WAIT: Duration = Duration::from_secs(40);

fn var(key: &str, default: &str) -> String {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

pub struct Env {
    pub stack: Stack,
    pub notification: String,
    /// notification's daprd: its state store holds the view and records.
    pub notification_dapr: String,
    pub mailpit: String,
}

pub fn env() -> Env {
    Env {
        stack: Stack::from_env(),
        notification: var("NOTIFICATION_URL", "http://127.0.0.1:8083"),
        notification_dapr: var("NOTIFICATION_DAPR_URL", "http://127.0.0.1:3503"),
        mailpit: var("MAILPIT_URL", "http://127.0.0.1:8025"),
    }
}

/// The firing job's name for a reminder of a task (as the API returns
/// it): `reminder-<id, 32 digits>-<firing ms>`.
pub fn firing_job(reminder_id: &str, fire_at: DateTime<Utc>) -> String {
    let id = Uuid::parse_str(reminder_id).expect("reminder id");
    format!("reminder-{}-{}", id.simple(), fire_at.timestamp_millis())
}

/// A state store key as a daprd path segment (`|` encoded).
fn state_path(key: &str) -> String {
    key.replace('|', "%7C")
}

pub fn unique_user() -> String {
    format!("notify-e2e-{}", Uuid::new_v4().simple())
}

/// The local push service, started for one test and killed with it.
pub struct PushService {
    base: String,
    _child: tokio::process::Child,
}

impl PushService {
    pub async fn start() -> Self {
        let python = std::env::var("PUSH_PYTHON").unwrap_or_else(|_| {
            panic!("PUSH_PYTHON is not set: ./scripts/test sets it (scripts/lib/push.sh)")
        });
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/lib/push_service.py"
        );
        let mut child = tokio::process::Command::new(python)
            .arg(script)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("push service did not start: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .expect("push service prints its URL");
        Self {
            base: line.trim().to_owned(),
            _child: child,
        }
    }

    /// A browser's subscription; `respond` makes its pushes answer that.
    pub async fn subscribe(&self, http: &reqwest::Client, respond: Option<u16>) -> Value {
        self.subscribe_with(http, json!({ "respond": respond }))
            .await
    }

    /// A subscription whose pushes are answered only after `delay` (a
    /// slow push service).
    pub async fn subscribe_slow(&self, http: &reqwest::Client, delay: Duration) -> Value {
        self.subscribe_with(http, json!({ "delay_ms": delay.as_millis() as u64 }))
            .await
    }

    /// `options`: what scripts/lib/push_service.py's `POST /subscriptions`
    /// takes.
    async fn subscribe_with(&self, http: &reqwest::Client, options: Value) -> Value {
        http.post(format!("{}/subscriptions", self.base))
            .json(&options)
            .send()
            .await
            .expect("push service reachable")
            .json()
            .await
            .expect("subscription JSON")
    }

    pub async fn messages(&self, http: &reqwest::Client, sub: &Value) -> Vec<Value> {
        let url = format!(
            "{}/messages/{}",
            self.base,
            sub["id"].as_str().unwrap_or_default()
        );
        let body: Value = http
            .get(url)
            .send()
            .await
            .expect("push service")
            .json()
            .await
            .expect("json");
        body["items"].as_array().cloned().unwrap_or_default()
    }
}

impl Env {
    pub async fn call(
        &self,
        method: reqwest::Method,
        user: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .stack
            .http
            .request(method, format!("{}{path}", self.notification))
            .bearer_auth(self.stack.token(user, false));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("notification is not reachable: {e}"));
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Delivers a job trigger to notification the way its daprd does
    /// (`POST /job/<name>` with the app token): the status and the body.
    pub async fn trigger(&self, job: &str) -> (StatusCode, Value) {
        let mut request = self
            .stack
            .http
            .post(format!("{}/job/{job}", self.notification))
            .json(&json!({}));
        if let Some(token) = &self.stack.app_api_token {
            request = request.header("dapr-api-token", token);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("notification is not reachable: {e}"));
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    fn dapr(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self
            .stack
            .http
            .request(method, format!("{}{path}", self.notification_dapr));
        match &self.stack.dapr_api_token {
            Some(token) => request.header("dapr-api-token", token),
            None => request,
        }
    }

    /// Writes `key` in notification's state store through its daprd, as
    /// notification itself would have (for states only a crash leaves).
    pub async fn put_state(&self, key: &str, value: &Value) {
        let response = self
            .dapr(reqwest::Method::POST, "/v1.0/state/statestore")
            .json(&json!([{"key": key, "value": value, "metadata": {"ttlInSeconds": "3600"}}]))
            .send()
            .await
            .unwrap_or_else(|e| panic!("notification's daprd is not reachable: {e}"));
        let status = response.status();
        assert!(status.is_success(), "state write {key}: {status}");
    }

    /// Reads `key` from notification's state store (`Null` when absent).
    pub async fn state(&self, key: &str) -> Value {
        let response = self
            .dapr(
                reqwest::Method::GET,
                &format!("/v1.0/state/statestore/{}", state_path(key)),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("notification's daprd is not reachable: {e}"));
        assert!(response.status().is_success(), "state read {key}");
        response.json().await.unwrap_or(Value::Null)
    }

    /// Whether notification's daprd holds a job of this name.
    pub async fn job_exists(&self, job: &str) -> bool {
        let response = self
            .dapr(reqwest::Method::GET, &format!("/v1.0-alpha1/jobs/{job}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("notification's daprd is not reachable: {e}"));
        response.status().is_success()
    }

    /// An admin's call to notification's API.
    pub async fn admin(&self, method: reqwest::Method, path: &str) -> (StatusCode, Value) {
        let response = self
            .stack
            .http
            .request(method, format!("{}{path}", self.notification))
            .bearer_auth(self.stack.token(&unique_user(), true))
            .send()
            .await
            .unwrap_or_else(|e| panic!("notification is not reachable: {e}"));
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The user's address, set through the settings API.
    pub async fn email_for(&self, user: &str) -> String {
        let address = format!("{user}@example.test");
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                user,
                "/api/notification-settings",
                Some(json!({"email": address, "email_enabled": true, "push_enabled": true})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        address
    }

    pub async fn register(&self, user: &str, sub: &Value) -> Value {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                user,
                "/api/devices",
                Some(json!({"endpoint": sub["endpoint"], "p256dh": sub["p256dh"], "auth": sub["auth"]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Mail that mailpit received for `address`: (subject, received at).
    pub async fn mail(&self, address: &str) -> Vec<(String, DateTime<Utc>)> {
        let response = self
            .stack
            .http
            .get(format!("{}/api/v1/search", self.mailpit))
            .query(&[("query", format!("to:\"{address}\""))])
            .send()
            .await
            .unwrap_or_else(|e| panic!("mailpit is not reachable: {e}"));
        let body: Value = response.json().await.expect("mailpit JSON");
        body["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                let created = m["Created"]
                    .as_str()
                    .and_then(|c| DateTime::parse_from_rfc3339(c).ok());
                (
                    m["Subject"].as_str().unwrap_or_default().to_owned(),
                    created.map(|c| c.to_utc()).unwrap_or_default(),
                )
            })
            .collect()
    }

    pub async fn task_with_reminder(&self, user: &str, title: &str, at: DateTime<Utc>) -> String {
        let task = self
            .stack
            .create_task(
                user,
                &json!({
                    "title": title,
                    "due_at": at + chrono::Duration::hours(1),
                    "time_zone": "Europe/Paris",
                    "reminders": [{"at": at, "channels": ["email", "push"]}]
                }),
            )
            .await;
        task["id"].as_str().expect("task id").to_owned()
    }

    pub async fn task_api(
        &self,
        method: reqwest::Method,
        user: &str,
        path: &str,
        body: Option<Value>,
    ) -> StatusCode {
        let mut request = self
            .stack
            .http
            .request(method, format!("{}{path}", self.stack.task_api))
            .bearer_auth(self.stack.token(user, false));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("task-api reachable").status()
    }
}

impl Env {
    /// `GET` from task-api as `user`: the status and the body.
    pub async fn task_json(&self, user: &str, path: &str) -> (StatusCode, Value) {
        let response = self
            .stack
            .http
            .get(format!("{}{path}", self.stack.task_api))
            .bearer_auth(self.stack.token(user, false))
            .send()
            .await
            .expect("task-api reachable");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A new user with an email address and one push device registered on
    /// `push`: (user, address, device subscription).
    pub async fn user_with_device(&self, push: &PushService) -> (String, String, Value) {
        let user = unique_user();
        let address = self.email_for(&user).await;
        let device = push.subscribe(&self.stack.http, None).await;
        self.register(&user, &device).await;
        (user, address, device)
    }

    /// Moves `task`'s only reminder to `at`, by email.
    pub async fn move_reminder(&self, user: &str, task: &str, at: DateTime<Utc>) {
        let status = self
            .task_api(
                reqwest::Method::PATCH,
                user,
                &format!("/api/tasks/{task}"),
                Some(json!({"reminders": [{"at": at, "channels": ["email"]}]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "moving {task}'s reminder");
    }

    /// `user`'s delivery history (`GET /api/notifications`), newest first.
    pub async fn history(&self, user: &str) -> Vec<Value> {
        let (status, body) = self
            .call(reqwest::Method::GET, user, "/api/notifications", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["items"].as_array().cloned().unwrap_or_default()
    }
}

pub async fn one_mail(env: &Env, address: &str) -> Vec<(String, DateTime<Utc>)> {
    eventually(WAIT, || async {
        let mail = env.mail(address).await;
        (!mail.is_empty()).then_some(mail)
    })
    .await
    .unwrap_or_else(|| panic!("no mail for {address} within {WAIT:?}"))
}
