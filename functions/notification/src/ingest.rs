//! Ingest of `reminders`: decode once, apply to the view, move the jobs,
//! reply once in the terms of the deliverer the token proved.
//!
//! Order matters for a crash part-way: the view is stored first (by
//! ETag), then jobs are deleted and scheduled. A redelivery after a crash
//! finds the view already applied and moves the jobs again (both calls
//! are idempotent: overwrite, and delete of a missing job), because the
//! job calls are repeated whenever the event is not stale.
//!
//! Except for a firing already more than the lateness limit in the past
//! ([`crate::view::too_late`]): a Kafka redelivery or a `reminders-dlq`
//! replay hours later gets no job (the scheduler would fire a past job at
//! once: go-etcd-cron's one-shot schedule answers its due time whatever
//! it is, `internal/scheduler/oneshot.go`), and the firing's deliveries
//! are recorded as missed.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use contracts::{Event, ReminderEventData, Topic};
use dapr_http::{DeliveredBy, Outcome, Subscription, decode_delivery, reply};

use crate::claims;
use crate::history;
use crate::jobs::one_shot;
use crate::state::StateError;
use crate::trigger::record_missed;
use crate::view::{ReminderView, apply, too_late};
use crate::{AppState, REMINDERS_ROUTE};

/// `GET /dapr/subscribe`.
pub async fn subscriptions(State(state): State<AppState>) -> Json<Vec<Subscription>> {
    Json(vec![Subscription::new(
        &state.pubsub,
        Topic::Reminders,
        REMINDERS_ROUTE,
    )])
}

/// `POST /events/reminders`.
#[tracing::instrument(skip_all, fields(event_id, trace_id, deliverer = ?deliverer))]
pub async fn reminder_event(
    State(state): State<AppState>,
    DeliveredBy(deliverer): DeliveredBy,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = match decode_delivery(&headers, &body) {
        Ok(received) => received,
        Err(poison) => return reply(&poison, deliverer),
    };
    let outcome = match &received.event {
        Event::ReminderScheduled(data) => handle(&state, data, true).await,
        Event::ReminderCancelled(data) => handle(&state, data, false).await,
        // notification's own report of a failed delivery, on reminders-dlq:
        // a `./scripts/dlq replay reminders` brings it here. Dropped, it
        // would be dead-lettered back; it is nothing to apply, so it is
        // acknowledged.
        Event::Unknown { event_type } if event_type == history::FAILED_EVENT => {
            tracing::info!(
                event_type,
                "a failed-delivery report replayed to reminders; acknowledged, nothing to do"
            );
            Outcome::Success
        }
        other => Outcome::Drop(format!(
            "{} does not belong on reminders",
            event_name(other, &received.event_type)
        )),
    };
    reply(&outcome, deliverer)
}

fn event_name(event: &Event, event_type: &str) -> String {
    match event {
        Event::Unknown { event_type } => format!("unknown event type {event_type}"),
        _ => event_type.to_owned(),
    }
}

async fn handle(state: &AppState, data: &ReminderEventData, scheduled: bool) -> Outcome {
    match apply_event(state, data, scheduled).await {
        Ok(()) => Outcome::Success,
        Err(error) => {
            tracing::warn!(%error, reminder_id = %data.reminder_id, "reminder not applied yet; asking for redelivery");
            Outcome::Retry(error.to_string())
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("daprd: {0}")]
    Jobs(String),
    #[error("missed firing not recorded: {0}")]
    Missed(String),
}

async fn apply_event(
    state: &AppState,
    data: &ReminderEventData,
    scheduled: bool,
) -> Result<(), ApplyError> {
    let key = ReminderView::key(data.reminder_id);
    // A concurrent writer of the same view (a second replica during a
    // rebalance) makes the ETag fail: read again and re-apply.
    for _ in 0..5 {
        let current = state.state.get::<ReminderView>(&key).await?;
        let applied = apply(current.as_ref().map(|c| &c.value), data, scheduled);
        if let Some(view) = &applied.view {
            let ttl = state.view_ttl(view);
            let written = match &current {
                Some(c) => state.state.replace(&key, view, &c.etag, ttl).await,
                None => state.state.create(&key, view, ttl).await,
            };
            match written {
                Err(StateError::Conflict) => continue,
                other => other?,
            }
        }
        if let Some(email) = &data.email {
            claims::remember(state, &data.user_id, email).await;
        }
        for job in &applied.delete {
            state.state.delete_job(&job.render()).await?;
        }
        let late = too_late(data.fire_at, chrono::Utc::now(), state.late_limit);
        match (&applied.schedule, &applied.view) {
            (Some(_), Some(view)) if late => record_missed(state, view)
                .await
                .map(|_| ())
                .map_err(|e| ApplyError::Missed(e.to_string()))?,
            (Some(job), _) => {
                let spec = one_shot(
                    data.fire_at,
                    serde_json::json!({"reminder_id": data.reminder_id}),
                );
                state
                    .dapr
                    .schedule_job(&job.render(), &spec)
                    .await
                    .map_err(|e| ApplyError::Jobs(e.to_string()))?;
            }
            _ => {}
        }
        tracing::info!(reminder_id = %data.reminder_id, fire_at = %data.fire_at, scheduled, "reminder view updated");
        return Ok(());
    }
    Err(StateError::Conflict.into())
}
