//! Reminders falling due through the faults: every reminder that fell due
//! is delivered exactly once per channel and device, or is recorded as
//! failed and dead-lettered.
//!
//! Up to [`Scale::reminders`] of the run's users get an email address and
//! one push device on a local push service (scripts/lib/push_service.py,
//! started here). Each reminder is a task created (with an
//! `Idempotency-Key`) with a reminder 30 s to 3 min ahead, by email and
//! push; some are moved once (a new time and a new title, by `If-Match`)
//! and some cancelled (the reminder removed, or the task deleted). Every
//! title is unique to one firing, so what arrived is counted per firing:
//! mailpit's messages by subject (`Reminder: <title>`, notification's
//! email.rs) and the push service's decrypted payloads by `title`.
//!
//! The states accepted, per (firing, target), with `n` messages that
//! arrived — notification's delivery record (functions/notification/src/
//! delivery.rs `Status`, read from the user's history `GET
//! /api/notifications`):
//! - `sent` with n = 1; n = 0 is lost.
//! - `unknown` with n ≤ 1, counted as unknown: a send whose outcome could
//!   not be known (a timeout after the request went out, or a record left
//!   `sending` by a crash, delivery.rs `claim`/`Abandoned`) is never sent
//!   again by itself, so at most once is the promise.
//! - `failed` with n ≤ 1, counted as failed and recorded: retries ran out
//!   (trigger.rs `settle`); like `unknown` it must be on the admins'
//!   failed list, which `history::publish_failed` fills together with its
//!   publish to `reminders-dlq`.
//! - `missed` (the firing reached notification past the late limit, 15
//!   min by default, trigger.rs `record_missed`: nothing sent, nothing
//!   dead-lettered): not lost by a crash but late beyond the promise, so
//!   reported as a problem.
//! - `skipped` (no address, device gone), still `sending`/`retrying`
//!   after the settle wait, or no record at all: lost when n = 0, a
//!   problem otherwise.
//! - n ≥ 2 is duplicated, whatever the record says.
//!
//! A firing that was moved or cancelled may still have been sent when
//! the change reached notification after its time (the view is updated
//! by the `reminders` topic, which a fault can hold up): at most once.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use e2e_tests::notify::PushService;
use e2e_tests::retry::Answer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::{Env, Phase, Rng, Scale, Tally};

const REQUEST_WAIT: Duration = Duration::from_secs(150);
/// After quiet, how long deliveries may take to settle: the retries
/// (1 s, 5 s, 25 s), a `sending` record ageing into `unknown` (60 s,
/// delivery.rs `IN_FLIGHT_LIMIT`) and daprd's re-offer; within the
/// orchestrator's bound on a workload's checks.
const SETTLE: Duration = Duration::from_secs(150);

/// A delivery record's status, as notification's history shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Sent,
    Unknown,
    Failed,
    Missed,
    Skipped,
    /// `sending` or `retrying`: not settled.
    Open,
    /// No record for this firing and target.
    Absent,
}

impl Record {
    pub fn parse(status: &str) -> Record {
        match status {
            "sent" => Record::Sent,
            "unknown" => Record::Unknown,
            "failed" => Record::Failed,
            "missed" => Record::Missed,
            "skipped" => Record::Skipped,
            _ => Record::Open,
        }
    }
}

/// The judgement of one (firing, target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    Delivered,
    /// Moved or cancelled, sent at most once.
    Superseded,
    Unknown,
    FailedRecorded,
    Lost,
    Duplicated,
    /// Neither lost nor duplicated, but not what the promise allows.
    Problem(&'static str),
}

/// Judges one (firing, target): its record, the messages that arrived for
/// it, and whether the firing still stood at the end (not moved or
/// cancelled).
pub fn judge(record: Record, arrived: usize, live: bool) -> Judgement {
    if arrived >= 2 {
        return Judgement::Duplicated;
    }
    if !live {
        return Judgement::Superseded;
    }
    match (record, arrived) {
        (Record::Unknown, _) => Judgement::Unknown,
        (Record::Failed, _) => Judgement::FailedRecorded,
        (Record::Missed, _) => {
            Judgement::Problem("missed: reached notification past the late limit")
        }
        (_, 0) => Judgement::Lost,
        // One message (two or more returned above).
        (Record::Sent, _) => Judgement::Delivered,
        (Record::Skipped, _) => Judgement::Problem("delivered, but recorded as skipped"),
        (Record::Open, _) => Judgement::Problem("delivered, but its record never settled"),
        (Record::Absent, _) => Judgement::Problem("delivered without a delivery record"),
    }
}

/// One user able to receive reminders.
struct Receiver {
    user: String,
    address: String,
    subscription: Value,
    device_id: String,
}

/// One firing the run caused: a reminder at a time, under a unique title.
#[derive(Debug, Clone)]
struct Firing {
    user: usize,
    reminder_id: String,
    fire_at: DateTime<Utc>,
    title: String,
    /// Still standing at the end: not moved or cancelled since.
    live: bool,
}

pub async fn run(env: Arc<Env>, scale: Scale, seed: u64, phase: Phase) -> anyhow::Result<Tally> {
    if env.push_python.is_none() {
        anyhow::bail!(
            "PUSH_PYTHON is not set: scripts/faults must export it (scripts/lib/push.sh)"
        );
    }
    let push = PushService::start().await;
    let count = scale.reminders.min(env.users.len());
    let mut receivers = Vec::with_capacity(count);
    for user in env.users.iter().take(count) {
        receivers.push(receiver(&env, &push, user, None).await?);
    }
    let receivers = Arc::new(receivers);
    // Created over the first half of about ops/10 seconds, each due 30 s
    // to 3 min later: the firings fall within the faults.
    let span_ms = (scale.ops as u64 * 50).max(10_000);
    let drivers = (0..scale.reminders).map(|n| {
        let (env, receivers) = (env.clone(), receivers.clone());
        let rng = Rng::derive(seed, &format!("reminders-{n}"));
        tokio::spawn(async move { drive(&env, &receivers, n, span_ms, rng).await })
    });
    let mut firings = Vec::new();
    let mut tally = Tally::new("reminders");
    for driver in futures::future::join_all(drivers).await {
        let (made, counts) = driver.context("a reminder driver panicked")?;
        firings.extend(made);
        tally.unknown += counts.unknown;
        tally.recovered += counts.recovered;
        tally.problems.extend(counts.problems);
    }
    // The load is the firings themselves: driving lasts until the last
    // one is due, so faults keep coming while reminders fall due.
    let last = firings
        .iter()
        .map(|f| f.fire_at)
        .max()
        .unwrap_or_else(Utc::now);
    if let Ok(wait) = (last - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    phase.driving_done();
    phase.wait_quiet().await;
    check(&env, &push, &receivers, &firings, tally).await
}

/// Sets `user` up with an address and one device; `respond`: what the
/// device's push service answers (scripts/lib/push_service.py), or a
/// normal delivery.
async fn receiver(
    env: &Env,
    push: &PushService,
    user: &str,
    respond: Option<u16>,
) -> anyhow::Result<Receiver> {
    let api = crate::workload::as_user(env, &env.notification, user);
    let address = format!("{user}@example.test");
    let settings = json!({"email": address, "email_enabled": true, "push_enabled": true});
    let until = Instant::now() + REQUEST_WAIT;
    let put = api
        .call(
            Method::PUT,
            "/api/notification-settings",
            Some(&settings),
            &[],
            until,
        )
        .await;
    anyhow::ensure!(
        put.status() == Some(StatusCode::OK),
        "settings of {user}: {put:?}"
    );
    let subscription = push.subscribe(&env.http, respond).await;
    let device = json!({"endpoint": subscription["endpoint"], "p256dh": subscription["p256dh"], "auth": subscription["auth"]});
    let registered = api
        .call(Method::POST, "/api/devices", Some(&device), &[], until)
        .await;
    // 200: the retry of a registration that was stored (api.rs
    // `register_device`).
    let device_id = registered.body()["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    anyhow::ensure!(!device_id.is_empty(), "device of {user}: {registered:?}");
    Ok(Receiver {
        user: user.to_owned(),
        address,
        subscription,
        device_id,
    })
}

/// Creates reminder `n`, maybe moves or cancels it; returns its firings
/// and how many requests stayed without an answer.
async fn drive(
    env: &Env,
    receivers: &[Receiver],
    n: usize,
    span_ms: u64,
    mut rng: Rng,
) -> (Vec<Firing>, Counts) {
    let user = n % receivers.len().max(1);
    let Some(receiver) = receivers.get(user) else {
        return (Vec::new(), Counts::default());
    };
    let api = crate::workload::as_user(env, &env.task_api, &receiver.user);
    tokio::time::sleep(Duration::from_millis(rng.next_u64() % span_ms)).await;
    let title = format!("faults-{}-rem-{n:05}-v0", env.run_id);
    let fire_at = Utc::now() + ahead(&mut rng, span_ms);
    let body = task_body(&title, fire_at);
    let key = [("idempotency-key", title.clone())];
    let until = Instant::now() + REQUEST_WAIT;
    let created = api
        .call(Method::POST, "/api/tasks", Some(&body), &key, until)
        .await;
    if created.status() != Some(StatusCode::CREATED) {
        let mut counts = Counts::default();
        counts.fell_through(&created, &format!("{title}: create"));
        return (Vec::new(), counts);
    }
    let task = created.body().clone();
    let mut firings = vec![firing(user, &task, &title)];
    let mut counts = Counts {
        recovered: u64::from(created.uncertain()),
        ..Counts::default()
    };
    // 6 in 10 stay, 1 in 4 moves, the rest are cancelled: a change is
    // sent well before the firing (15 s or more).
    let roll = rng.below(20);
    if roll < 12 {
        return (firings, counts);
    }
    let lead = (fire_at - Utc::now()).num_milliseconds().max(0) as u64;
    tokio::time::sleep(Duration::from_millis(
        rng.next_u64() % lead.saturating_sub(15_000).max(1),
    ))
    .await;
    let id = task["id"].as_str().unwrap_or_default();
    let path = format!("/api/tasks/{id}");
    let if_match = [("if-match", format!("\"{}\"", task["sequence"]))];
    let until = Instant::now() + REQUEST_WAIT;
    let answer = if roll < 17 {
        let title = format!("faults-{}-rem-{n:05}-v1", env.run_id);
        let moved = Utc::now() + ahead(&mut rng, span_ms);
        let patch = json!({"title": title, "reminders": task_body(&title, moved)["reminders"]});
        let answer = api
            .call(Method::PATCH, &path, Some(&patch), &if_match, until)
            .await;
        let applied = match answer.status() {
            Some(StatusCode::OK) => Some(answer.body().clone()),
            // Applied by an attempt whose answer was lost: read it back.
            Some(StatusCode::PRECONDITION_FAILED) if answer.uncertain() => {
                let read = api.call(Method::GET, &path, None, &[], until).await;
                (read.body()["title"] == title.as_str()).then(|| read.body().clone())
            }
            _ => None,
        };
        if let Some(task) = applied {
            firings.push(firing(user, &task, &title));
        }
        answer
    } else if roll < 19 {
        let patch = json!({"reminders": []});
        api.call(Method::PATCH, &path, Some(&patch), &if_match, until)
            .await
    } else {
        api.call(Method::DELETE, &path, None, &if_match, until)
            .await
    };
    let changed = matches!(answer.status(), Some(StatusCode::OK | StatusCode::NO_CONTENT))
        // The retry of a change that applied while its answer was lost.
        || (matches!(answer.status(), Some(StatusCode::PRECONDITION_FAILED | StatusCode::NOT_FOUND))
            && answer.uncertain());
    if changed {
        firings[0].live = false;
        counts.recovered += u64::from(answer.uncertain());
    } else {
        // A change of unknown outcome leaves the first firing's fate
        // open: judged as superseded (at most once).
        firings[0].live = !counts.fell_through(&answer, &format!("{title}: change"));
    }
    (firings, counts)
}

/// What one reminder's requests met.
#[derive(Debug, Default, Clone)]
struct Counts {
    /// Requests without an answer (or with a 5xx) until their deadline.
    unknown: u64,
    /// Requests that met a fault and came through by their retry.
    recovered: u64,
    /// Requests refused where nothing should refuse them.
    problems: Vec<String>,
}

impl Counts {
    /// Records a request that did not do what it asked; true when its
    /// outcome is unknown (it may have applied).
    fn fell_through(&mut self, answer: &Answer, what: &str) -> bool {
        eprintln!("reminders: {what}: {answer:?}");
        match answer.status() {
            Some(status) if !e2e_tests::retry::transient(status) => {
                self.problems
                    .push(format!("{what}: {status} {}", answer.body()));
                false
            }
            _ => {
                self.unknown += 1;
                true
            }
        }
    }
}

/// 30 s to 3 min ahead (less in a run shorter than that).
fn ahead(rng: &mut Rng, span_ms: u64) -> chrono::Duration {
    chrono::Duration::milliseconds(30_000 + (rng.next_u64() % span_ms.min(150_000)) as i64)
}

fn task_body(title: &str, at: DateTime<Utc>) -> Value {
    json!({
        "title": title,
        "due_at": at + chrono::Duration::hours(1),
        "time_zone": "Europe/Paris",
        "reminders": [{"at": at, "channels": ["email", "push"]}],
    })
}

fn firing(user: usize, task: &Value, title: &str) -> Firing {
    let reminder = &task["reminders"][0];
    Firing {
        user,
        reminder_id: reminder["id"].as_str().unwrap_or_default().to_owned(),
        fire_at: reminder["fire_at"]
            .as_str()
            .or(reminder["at"].as_str())
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.to_utc())
            .unwrap_or_default(),
        title: title.to_owned(),
        live: true,
    }
}

#[path = "reminders_check.rs"]
mod check;
use check::check;
pub(crate) use check::stored_record;

#[cfg(test)]
#[path = "reminders_tests.rs"]
mod tests;
