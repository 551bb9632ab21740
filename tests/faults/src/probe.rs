//! The recovery probe: after a fault, one change made by the run's own
//! probe user, followed until its effect is seen downstream. A fault has
//! recovered when that happens, not merely when the process answers
//! `/healthz` again. Every request is retried the way a client would
//! (the same `Idempotency-Key`), and every wait is bounded by the deadline.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::Env;
use crate::faults::Seen;

/// What the probe follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// A create: its audit row exists and the gateway pushed it to a socket
    /// (task-api, its relay, Kafka, audit, sync-gateway).
    Pipeline,
    /// A completed occurrence of a daily series gets its successor (recurring).
    Recurring,
    /// A reminder due in a few seconds is mailed (notification, the scheduler).
    Reminder,
}

/// The probe user's client.
#[derive(Debug)]
pub struct Probe {
    env: Arc<Env>,
    user: String,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Probe {
    pub fn new(env: Arc<Env>) -> Probe {
        let user = format!("faults-{}-probe", env.run_id);
        Probe { env, user }
    }

    /// Makes one change of `kind` and waits (until `within` has passed)
    /// for its effect downstream.
    pub async fn run(&self, kind: ProbeKind, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        match kind {
            ProbeKind::Pipeline => self.pipeline(deadline).await,
            ProbeKind::Recurring => self.recurring(deadline).await,
            ProbeKind::Reminder => self.reminder(deadline).await,
        }
    }

    /// Opens a socket, creates a task, and waits for both the socket's
    /// event and the audit row. A socket that drops meanwhile (the gateway
    /// restarting) may have missed the live event: the probe starts over
    /// with a new change.
    async fn pipeline(&self, deadline: Instant) -> Result<(), String> {
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            let mut socket = match self.connect().await {
                Ok(s) => s,
                Err(e) => {
                    last = e;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let id = self
                .create(json!({"title": "fault probe"}), deadline)
                .await?;
            let (seen, audited) = tokio::join!(
                pushed(&mut socket, &id, deadline),
                self.audited(&id, deadline)
            );
            audited?;
            match seen {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        Err(format!("pipeline probe: {last}"))
    }

    async fn connect(&self) -> Result<Socket, String> {
        let mut request = self
            .env
            .gateway_ws()
            .into_client_request()
            .map_err(|e| e.to_string())?;
        let bearer = format!("Bearer {}", self.env.token(&self.user, false));
        request.headers_mut().insert(
            "authorization",
            bearer.parse().map_err(|_| "bad token header".to_owned())?,
        );
        let connect = tokio_tungstenite::connect_async(request);
        let (mut socket, _) = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .map_err(|_| "socket connect timed out".to_owned())?
            .map_err(|e| format!("socket: {e}"))?;
        match next_json(&mut socket, Instant::now() + Duration::from_secs(10)).await {
            Some(hello) if hello["type"] == "hello" => Ok(socket),
            other => Err(format!("no hello: {other:?}")),
        }
    }

    /// POSTs a task, retried with one `Idempotency-Key` until a 2xx or the
    /// deadline; returns its id.
    async fn create(&self, body: Value, deadline: Instant) -> Result<String, String> {
        let key = uuid::Uuid::new_v4().to_string();
        let url = format!("{}/api/tasks", self.env.task_api);
        let response = self
            .retry(deadline, || {
                self.env
                    .http
                    .post(&url)
                    .bearer_auth(self.env.token(&self.user, false))
                    .header("idempotency-key", &key)
                    .json(&body)
            })
            .await?;
        response["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("create answered without an id: {response}"))
    }

    /// Sends what `build` makes until a 2xx; connection errors, 5xx and 429
    /// are retried, any other status is an error.
    async fn retry(
        &self,
        deadline: Instant,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Value, String> {
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            match build().send().await {
                Ok(r) if r.status().is_success() => {
                    return Ok(r.json().await.unwrap_or(Value::Null));
                }
                Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                    last = format!("status {}", r.status());
                }
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    return Err(format!("status {status}: {body}"));
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Err(format!("no 2xx before the deadline: {last}"))
    }

    /// Creates a task titled `title` (retried until `deadline`); its id.
    pub async fn create_task(&self, title: &str, deadline: Instant) -> Result<String, String> {
        self.create(json!({ "title": title }), deadline).await
    }

    /// Whether the task's `task-events` rows have all left the outbox, and
    /// whether audit_logs holds a row for it, now (bounded: 10 s).
    pub async fn seen(&self, task_id: &str) -> Result<Seen, String> {
        let id = uuid::Uuid::parse_str(task_id).map_err(|e| e.to_string())?;
        let read = async {
            let db = self.env.db().await.map_err(|e| format!("{e:#}"))?;
            let outbox = db
                .query_one(
                    "SELECT count(*), count(sent_at) FROM outbox
                      WHERE partition_key = $1 AND topic = 'task-events'
                        AND strpos(payload::text, $2) > 0",
                    &[&self.user, &task_id],
                )
                .await
                .map_err(|e| e.to_string())?;
            let (rows, sent): (i64, i64) = (outbox.get(0), outbox.get(1));
            let audited: i64 = db
                .query_one("SELECT count(*) FROM audit_logs WHERE task_id = $1", &[&id])
                .await
                .map_err(|e| e.to_string())?
                .get(0);
            Ok(Seen {
                published: rows > 0 && sent == rows,
                audited: audited > 0,
            })
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .map_err(|_| "reading the outbox and audit_logs timed out".to_owned())?
    }

    /// Polls audit_logs for the task (reconnecting: PostgreSQL may just
    /// have restarted).
    pub async fn audited(&self, task_id: &str, deadline: Instant) -> Result<(), String> {
        let id = uuid::Uuid::parse_str(task_id).map_err(|e| e.to_string())?;
        self.poll_db(deadline, "audit row", move |db| async move {
            db.query_one("SELECT count(*) FROM audit_logs WHERE task_id = $1", &[&id])
                .await
                .map(|row| row.get::<_, i64>(0) > 0)
        })
        .await
    }

    /// A daily series of two, its first occurrence completed: waits for the
    /// second.
    async fn recurring(&self, deadline: Instant) -> Result<(), String> {
        let due = chrono::Utc::now() + chrono::Duration::hours(1);
        let body = json!({"title": "fault probe series", "due_at": due,
                          "recurrence": {"frequency": "daily", "end": {"after": 2}}});
        let id = self.create(body, deadline).await?;
        let url = format!("{}/api/tasks/{id}/complete", self.env.task_api);
        let token = self.env.token(&self.user, false);
        self.retry(deadline, || self.env.http.post(&url).bearer_auth(&token))
            .await
            .or_else(|e| already_done(&e))?;
        let task = uuid::Uuid::parse_str(&id).map_err(|e| e.to_string())?;
        self.poll_db(deadline, "successor", move |db| async move {
            db.query_one(
                "SELECT count(*) FROM tasks WHERE series_id = (SELECT series_id FROM tasks WHERE id = $1)",
                &[&task],
            )
            .await
            .map(|row| row.get::<_, i64>(0) >= 2)
        })
        .await
    }

    /// A task with an email reminder due in five seconds: waits for the
    /// mail (notification, its daprd and the scheduler's job all worked).
    async fn reminder(&self, deadline: Instant) -> Result<(), String> {
        let address = format!("{}@example.test", self.user);
        let url = format!("{}/api/notification-settings", self.env.notification);
        let token = self.env.token(&self.user, false);
        let settings = json!({"email": address, "email_enabled": true, "push_enabled": false});
        self.retry(deadline, || {
            self.env.http.put(&url).bearer_auth(&token).json(&settings)
        })
        .await?;
        let title = format!("fault probe {}", uuid::Uuid::new_v4().simple());
        let at = chrono::Utc::now() + chrono::Duration::seconds(5);
        let body = json!({"title": title, "due_at": at + chrono::Duration::hours(1),
                          "reminders": [{"at": at, "channels": ["email"]}]});
        self.create(body, deadline).await?;
        while Instant::now() < deadline {
            if self.mailed(&address, &title).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(format!("no mail \"Reminder: {title}\" for {address}"))
    }

    async fn mailed(&self, address: &str, title: &str) -> bool {
        let response = self
            .env
            .http
            .get(format!("{}/api/v1/search", self.env.mailpit))
            .query(&[("query", format!("to:\"{address}\""))])
            .send()
            .await;
        let Ok(body) = (match response {
            Ok(r) => r.json::<Value>().await,
            Err(e) => Err(e),
        }) else {
            return false;
        };
        body["messages"].as_array().is_some_and(|all| {
            all.iter()
                .any(|m| m["Subject"].as_str().is_some_and(|s| s.contains(title)))
        })
    }

    /// Runs `check` on a fresh connection until it returns true.
    async fn poll_db<F, Fut>(&self, deadline: Instant, what: &str, check: F) -> Result<(), String>
    where
        F: Fn(tokio_postgres::Client) -> Fut,
        Fut: std::future::Future<Output = Result<bool, tokio_postgres::Error>>,
    {
        let mut last = String::from("not yet");
        while Instant::now() < deadline {
            match self.env.db().await {
                Ok(db) => match check(db).await {
                    Ok(true) => return Ok(()),
                    Ok(false) => last = "not yet".into(),
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(format!("no {what} before the deadline ({last})"))
    }
}

/// A retried completion whose first attempt committed answers 409: the
/// outcome is the one wanted.
fn already_done(error: &str) -> Result<Value, String> {
    if error.starts_with("status 409") {
        Ok(Value::Null)
    } else {
        Err(error.to_owned())
    }
}

/// Waits for an event frame that names `task_id`.
async fn pushed(socket: &mut Socket, task_id: &str, deadline: Instant) -> Result<(), String> {
    loop {
        let Some(frame) = next_json(socket, deadline).await else {
            return Err(format!("the socket saw no event of {task_id}"));
        };
        if frame.get("gone").is_some() {
            return Err(format!("the socket closed: {frame}"));
        }
        if frame["type"] == "event" && frame.to_string().contains(task_id) {
            return Ok(());
        }
    }
}

/// The next text frame as JSON; `{"gone": …}` when the connection ends;
/// `None` at the deadline.
async fn next_json(socket: &mut Socket, deadline: Instant) -> Option<Value> {
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()?;
        return Some(match frame {
            Some(Ok(Message::Text(text))) => {
                serde_json::from_str(&text).unwrap_or_else(|_| json!({"text": text.as_str()}))
            }
            Some(Ok(Message::Close(_))) | None => json!({"gone": "closed"}),
            Some(Ok(_)) => continue,
            Some(Err(e)) => json!({"gone": e.to_string()}),
        });
    }
}
