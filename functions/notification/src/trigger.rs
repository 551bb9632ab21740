//! `POST /job/{name}`: the Dapr scheduler firing a reminder, or a retry.
//!
//! The view decides whether a firing still stands (a cancelled or moved
//! reminder answers 200 and sends nothing); a firing that reaches the
//! function more than the lateness limit after its time is recorded as
//! missed, not sent. Each target then goes through [`crate::delivery`]'s
//! claim, the send, and the record of its outcome.
//!
//! Answers 503 when the state store cannot be read, or when a delivery is
//! `sending` recently (maybe an attempt under way, maybe one that just
//! died): daprd 1.18.2 reports any answer but 2xx and 404 as a failed
//! trigger (`pkg/runtime/scheduler/internal/cluster/streamer.go`,
//! `invokeApp`; the HTTP status mapped by `invokev1.CodeFromHTTPStatus` in
//! `pkg/channel/http/http_channel.go`), and the job's failure policy
//! offers it again ([`crate::jobs::one_shot`]) until the record settles or
//! ages into `unknown`.

mod retry;

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use chrono::Utc;
use futures::StreamExt;
use serde::Serialize;

use crate::AppState;
use crate::delivery::{Claim, DeliveryRecord, SEND_DEADLINE, Status, Target, claim};
use crate::email::Content;
use crate::error::ApiError;
use crate::history;
use crate::jobs::JobName;
use crate::push::{PushError, Subscription};
use crate::state::StateError;
use crate::view::{ReminderView, too_late};
use retry::{retry_delay, schedule_retry, skip_gone_retry};

/// Deliveries of one firing in flight at once: the email and a few
/// devices; a user has at most 20 devices.
const SEND_CONCURRENCY: usize = 4;

#[derive(Debug, Default, Serialize)]
pub struct TriggerReport {
    /// Why nothing was sent, when nothing was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<&'static str>,
    pub sent: u32,
    pub failed: u32,
    pub retrying: u32,
    pub unknown: u32,
    pub missed: u32,
    /// Deliveries `sending` recently: the trigger answers 503.
    pub in_flight: u32,
}

#[tracing::instrument(skip_all, fields(job = %name))]
pub async fn run_job(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<TriggerReport>, ApiError> {
    let Some(job) = JobName::parse(&name) else {
        tracing::warn!(job = %name, "unknown job triggered");
        return Err(ApiError::UnknownJob(name));
    };
    let (reminder_id, fire_at, only, attempt) = match job {
        JobName::Firing {
            reminder_id,
            fire_at,
        } => (reminder_id, fire_at, None, None),
        JobName::Retry {
            reminder_id,
            fire_at,
            target,
            attempt,
        } => (reminder_id, fire_at, Some(target), Some(attempt)),
    };
    let view = state
        .state
        .get::<ReminderView>(&ReminderView::key(reminder_id))
        .await?;
    let Some(view) = view.map(|v| v.value).filter(|v| v.is_live_firing(fire_at)) else {
        tracing::info!(%reminder_id, %fire_at, "firing cancelled or superseded; nothing sent");
        if let Some(target) = &only {
            skip_gone_retry(
                &state,
                &DeliveryRecord::key_of(reminder_id, fire_at, target),
            )
            .await?;
        }
        return Ok(Json(TriggerReport {
            skipped: Some("cancelled or superseded"),
            ..Default::default()
        }));
    };
    // Retries (and an admin's retry) are this function's own, later on
    // purpose; only the firing itself can arrive too late.
    if attempt.is_none() && too_late(fire_at, Utc::now(), state.late_limit) {
        let missed = record_missed(&state, &view).await?;
        return Ok(Json(TriggerReport {
            skipped: Some("too late"),
            missed,
            ..Default::default()
        }));
    }
    let targets = match only {
        Some(target) => vec![target],
        None => targets(&state, &view).await?,
    };
    // One reminder's targets go out together, a few at a time, so a slow
    // push service does not hold the email (or the other devices) back.
    // The fan-out runs on its own task: hyper drops a handler's future
    // when its request goes away (daprd restarting, a client timeout, the
    // shutdown grace ending), which would cut a delivery between its claim
    // and the record of its outcome (left `sending`, later `unknown`).
    // A spawned task runs on; main waits for it at shutdown.
    // Each delivery is a task of its own too: a bug that panics in one
    // does not take its siblings down mid-send.
    let work = {
        let state = state.clone();
        let view = std::sync::Arc::new(view);
        async move {
            futures::stream::iter(targets)
                .map(|target| {
                    let (own, view) = (state.clone(), view.clone());
                    let one = async move { deliver(&own, &view, target, attempt).await };
                    detached(&state.tasks, one)
                })
                .buffer_unordered(SEND_CONCURRENCY)
                .collect::<Vec<_>>()
                .await
        }
    };
    let outcomes = detached(&state.tasks, work).await?;
    let mut report = TriggerReport::default();
    for outcome in outcomes {
        match outcome.and_then(|o| o)? {
            Some(Status::Sent) => report.sent += 1,
            Some(Status::Failed) => report.failed += 1,
            Some(Status::Retrying) => report.retrying += 1,
            Some(Status::Unknown) => report.unknown += 1,
            Some(Status::Sending) => report.in_flight += 1,
            _ => {}
        }
    }
    tracing::info!(%reminder_id, %fire_at, sent = report.sent, failed = report.failed, retrying = report.retrying, unknown = report.unknown, in_flight = report.in_flight, "firing handled");
    if report.in_flight > 0 {
        return Err(ApiError::DeliveryInFlight);
    }
    Ok(Json(report))
}

/// Runs `work` on a task of its own, tracked by `tasks`, started at once;
/// the returned future waits for it. Dropping that future leaves the task
/// running to its end.
fn detached<T, F>(
    tasks: &crate::TaskTracker,
    work: F,
) -> impl Future<Output = Result<T, ApiError>> + use<T, F>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let handle = tasks.spawn(work);
    async move { handle.await.map_err(|e| ApiError::Internal(e.to_string())) }
}

/// Records each target of a firing that arrived too late as missed (a
/// target with a record already keeps it). Returns how many were new.
pub async fn record_missed(state: &AppState, view: &ReminderView) -> Result<u32, ApiError> {
    let late = (Utc::now() - view.fire_at).num_seconds();
    tracing::warn!(reminder_id = %view.reminder_id, fire_at = %view.fire_at, late_seconds = late, "firing too late to send; recorded as missed");
    let mut missed = 0;
    for target in targets(state, view).await? {
        let key = DeliveryRecord::key_of(view.reminder_id, view.fire_at, &target);
        let mut record = new_record(view, target);
        record.status = Status::Missed;
        record.attempts = 0;
        record.last_error = Some(format!(
            "the firing reached notification {late} s after its time; not sent"
        ));
        match state.state.create(&key, &record, state.record_ttl).await {
            Err(StateError::Conflict) => continue,
            other => other?,
        }
        history::remember(state, &view.user_id, &key).await;
        missed += 1;
    }
    Ok(missed)
}

/// The reminder's channels, as the user's settings allow: the email
/// address, and every device registered by the firing time (a late
/// trigger does not reach a device added since).
async fn targets(state: &AppState, view: &ReminderView) -> Result<Vec<Target>, ApiError> {
    let settings = state.store.settings(&view.user_id).await?;
    let mut out = Vec::new();
    for channel in &view.channels {
        match channel {
            contracts::ReminderChannel::Email if settings.email_enabled => out.push(Target::Email),
            contracts::ReminderChannel::Push if settings.push_enabled => {
                let devices = state.store.devices(&view.user_id).await?;
                out.extend(
                    devices
                        .into_iter()
                        .filter(|d| d.created_at <= view.fire_at)
                        .map(|d| Target::Push(d.id)),
                );
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Claims, sends and records one delivery. `None`: not this trigger's to
/// send (already sent, failed or unknown); `Some(Sending)`: maybe in
/// flight elsewhere, look again later.
async fn deliver(
    state: &AppState,
    view: &ReminderView,
    target: Target,
    attempt: Option<u32>,
) -> Result<Option<Status>, ApiError> {
    let key = DeliveryRecord::key_of(view.reminder_id, view.fire_at, &target);
    let found = state.state.get::<DeliveryRecord>(&key).await?;
    let mut record = match claim(found.as_ref().map(|f| &f.value), attempt, Utc::now()) {
        Claim::Nothing => return Ok(None),
        Claim::InFlight => return Ok(Some(Status::Sending)),
        Claim::Abandoned => {
            let Some(found) = found else { return Ok(None) };
            return abandon(state, &key, found).await;
        }
        Claim::Create => {
            let record = new_record(view, target.clone());
            match state.state.create(&key, &record, state.record_ttl).await {
                Err(StateError::Conflict) => return Ok(None),
                other => other?,
            }
            history::remember(state, &view.user_id, &key).await;
            record
        }
        Claim::Resume => {
            let Some(found) = found else { return Ok(None) };
            let mut record = found.value;
            record.status = Status::Sending;
            record.attempts += 1;
            record.updated_at = Utc::now();
            match state
                .state
                .replace(&key, &record, &found.etag, state.record_ttl)
                .await
            {
                Err(StateError::Conflict) => return Ok(None),
                other => other?,
            }
            record
        }
    };
    let outcome = tokio::time::timeout(SEND_DEADLINE, send(state, view, &target))
        .await
        .unwrap_or_else(|_| {
            Err(SendFailure::Unknown(format!(
                "no outcome within {} s",
                SEND_DEADLINE.as_secs()
            )))
        });
    let next_try = settle(state, &mut record, outcome).await;
    // The job first, then the record: a `retrying` record is never saved
    // without the job that will pick it up. No job, no retry: say so where
    // admins look instead of leaving the record waiting for ever.
    if let Some(delay) = next_try
        && let Err(reason) = schedule_retry(state, &record, delay).await
    {
        record.status = Status::Failed;
        record.last_error = Some(format!("retry not scheduled: {reason}"));
    }
    save_outcome(state, &key, &record).await?;
    if matches!(record.status, Status::Failed | Status::Unknown) {
        history::publish_failed(state, &record).await;
    }
    Ok(Some(record.status))
}

/// A `sending` record no attempt can still own: its process died between
/// the claim and the outcome, maybe after the message went out. Recorded
/// as unknown, for an admin to decide, instead of being sent again.
async fn abandon(
    state: &AppState,
    key: &str,
    found: crate::state::Versioned<DeliveryRecord>,
) -> Result<Option<Status>, ApiError> {
    let mut record = found.value;
    record.status = Status::Unknown;
    record.last_error = Some(format!(
        "attempt {} was left sending since {} (the process stopped mid-send); it may have been delivered",
        record.attempts, record.updated_at
    ));
    record.updated_at = Utc::now();
    match state
        .state
        .replace(key, &record, &found.etag, state.record_ttl)
        .await
    {
        Err(StateError::Conflict) => return Ok(None),
        other => other?,
    }
    tracing::warn!(%key, attempts = record.attempts, "delivery abandoned mid-send; outcome unknown");
    history::publish_failed(state, &record).await;
    Ok(Some(Status::Unknown))
}

fn new_record(view: &ReminderView, target: Target) -> DeliveryRecord {
    DeliveryRecord {
        reminder_id: view.reminder_id,
        task_id: view.task_id,
        user_id: view.user_id.clone(),
        fire_at: view.fire_at,
        target,
        title: view.title.clone(),
        status: Status::Sending,
        attempts: 1,
        last_error: None,
        updated_at: Utc::now(),
    }
}

/// Why a send did not happen.
enum SendFailure {
    /// Worth another attempt, not before the given time.
    Retry(String, Option<Duration>),
    /// Retrying cannot help.
    Permanent(String),
    /// The request went out and no answer came back (a timeout or broken
    /// connection after sending): it may have been delivered, so it is
    /// not retried by itself.
    Unknown(String),
    /// Nothing to send to: the device is gone (and removed), or the user
    /// has no address. Recorded as skipped, not as a failure to alert on.
    Skip(String),
}

async fn send(state: &AppState, view: &ReminderView, target: &Target) -> Result<(), SendFailure> {
    let content = Content::of(view, &state.link_base);
    match target {
        Target::Email => {
            let settings = state
                .store
                .settings(&view.user_id)
                .await
                .map_err(|e| SendFailure::Retry(e.to_string(), None))?;
            // Read at each attempt: a retry (or an admin's) after the user
            // turned email off sends nothing.
            if !settings.email_enabled {
                return Err(SendFailure::Skip(
                    "email is off in the user's settings".into(),
                ));
            }
            let remembered = match settings.email.or_else(|| view.email.clone()) {
                Some(address) => Some(address),
                None => crate::claims::last(state, &view.user_id)
                    .await
                    .map_err(|e| SendFailure::Retry(e.to_string(), None))?,
            };
            let Some(address) = remembered else {
                return Err(SendFailure::Skip("no email address for the user".into()));
            };
            let Some(email) = &state.email else {
                return Err(SendFailure::Permanent("email is not configured".into()));
            };
            email.send(&address, view).await.map_err(|e| match e {
                crate::email::EmailError::Invalid(m) => SendFailure::Permanent(m),
                crate::email::EmailError::Smtp(m) => SendFailure::Retry(m, None),
                crate::email::EmailError::Unknown(m) => SendFailure::Unknown(m),
            })
        }
        Target::Push(device_id) => {
            let Some(push) = &state.push else {
                return Err(SendFailure::Permanent("web push is not configured".into()));
            };
            let settings = state
                .store
                .settings(&view.user_id)
                .await
                .map_err(|e| SendFailure::Retry(e.to_string(), None))?;
            if !settings.push_enabled {
                return Err(SendFailure::Skip(
                    "push is off in the user's settings".into(),
                ));
            }
            let device = state
                .store
                .device(&view.user_id, *device_id)
                .await
                .map_err(|e| SendFailure::Retry(e.to_string(), None))?
                .ok_or_else(|| SendFailure::Skip("device no longer registered".into()))?;
            let to = Subscription {
                endpoint: device.endpoint,
                p256dh: device.p256dh,
                auth: device.auth,
            };
            match push.send(&to, &content).await {
                Ok(()) => Ok(()),
                Err(PushError::Gone(status)) => {
                    if let Err(error) = state.store.remove_device(&view.user_id, *device_id).await {
                        tracing::warn!(%error, %device_id, "expired device not removed yet");
                    }
                    tracing::info!(%device_id, status, "push subscription expired; device removed");
                    Err(SendFailure::Skip(format!("push service answered {status}")))
                }
                Err(PushError::RetryAfter(after)) => {
                    Err(SendFailure::Retry("rate limited (429)".into(), after))
                }
                Err(PushError::Unknown(m)) => Err(SendFailure::Unknown(m)),
                // The device is kept (see `push`'s module doc).
                Err(e) if e.is_permanent() => Err(SendFailure::Permanent(e.to_string())),
                Err(e) => Err(SendFailure::Retry(e.to_string(), None)),
            }
        }
    }
}

/// Moves the record to its outcome; returns when to try again, if ever.
async fn settle(
    state: &AppState,
    record: &mut DeliveryRecord,
    outcome: Result<(), SendFailure>,
) -> Option<Duration> {
    record.updated_at = Utc::now();
    let (status, error, next) = match outcome {
        Ok(()) => (Status::Sent, None, None),
        Err(SendFailure::Skip(m)) => (Status::Skipped, Some(m), None),
        Err(SendFailure::Permanent(m)) => (Status::Failed, Some(m), None),
        Err(SendFailure::Unknown(m)) => (Status::Unknown, Some(m), None),
        Err(SendFailure::Retry(m, after)) => {
            match retry_delay(&state.retry_delays, record.attempts, after) {
                Some(delay) => (Status::Retrying, Some(m), Some(delay)),
                None => (Status::Failed, Some(m), None),
            }
        }
    };
    if let Some(error) = &error {
        tracing::warn!(key = %record.key(), attempts = record.attempts, ?status, %error, "delivery not sent");
    }
    record.status = status;
    record.last_error = error;
    next
}

/// Records the outcome over the claim this trigger holds. The record is
/// re-read for its ETag: only this trigger writes a `sending` record.
async fn save_outcome(
    state: &AppState,
    key: &str,
    record: &DeliveryRecord,
) -> Result<(), ApiError> {
    let current = state.state.get::<DeliveryRecord>(key).await?;
    let Some(current) = current else {
        state.state.create(key, record, state.record_ttl).await?;
        return Ok(());
    };
    state
        .state
        .replace(key, record, &current.etag, state.record_ttl)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
