//! Ingest of `task-events`: decode once, store once, reply once, in the
//! terms of the deliverer the request's token proved ([`DeliveredBy`]).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::Utc;
use contracts::{Event, Received, Topic};
use dapr_http::{DeliveredBy, Outcome, Subscription, decode_delivery, reply};
use prometheus_client::metrics::counter::Counter;

use crate::retention::cutoff;
use crate::store::{AuditEntry, StoreError};
use crate::{AppState, TASK_EVENTS_ROUTE};

/// Counters of what ingest decided.
#[derive(Debug, Clone, Default)]
pub struct IngestMetrics {
    pub stored: Counter,
    pub duplicates: Counter,
    pub retried: Counter,
    pub dropped: Counter,
    /// Replays of events already past retention: acknowledged, not stored,
    /// so a replay cannot resurrect what retention removed.
    pub expired: Counter,
}

impl IngestMetrics {
    /// Adds the counters to the `/metrics` registry.
    pub fn register(&self, metrics: &telemetry::metrics::Metrics) {
        let counters = [
            (
                "events_stored",
                "Task events stored or already stored",
                &self.stored,
            ),
            (
                "events_duplicate",
                "Redeliveries that added nothing",
                &self.duplicates,
            ),
            (
                "events_retried",
                "Events answered with RETRY",
                &self.retried,
            ),
            (
                "events_dropped",
                "Poison events answered with DROP",
                &self.dropped,
            ),
            (
                "events_expired",
                "Events older than retention, not stored",
                &self.expired,
            ),
        ];
        for (name, help, counter) in counters {
            metrics.register(name, help, counter.clone());
        }
    }
}

/// `GET /dapr/subscribe`.
pub async fn subscriptions(State(state): State<AppState>) -> Json<Vec<Subscription>> {
    Json(vec![Subscription::new(
        &state.pubsub,
        Topic::TaskEvents,
        TASK_EVENTS_ROUTE,
    )])
}

/// `POST /events/task-events`.
#[tracing::instrument(skip_all, fields(event_id, trace_id, deliverer = ?deliverer))]
pub async fn task_event(
    State(state): State<AppState>,
    DeliveredBy(deliverer): DeliveredBy,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome = match decode_delivery(&headers, &body) {
        Ok(received) => store_event(&state, &received).await,
        Err(poison) => poison,
    };
    count(&state.metrics, &outcome);
    reply(&outcome, deliverer)
}

async fn store_event(state: &AppState, received: &Received) -> Outcome {
    let Some(data) = received.event.task_event() else {
        let what = match &received.event {
            Event::Unknown { event_type } => format!("unknown event type {event_type}"),
            _ => format!("{} does not belong on task-events", received.event_type),
        };
        tracing::warn!(event_id = %received.id, %what, "event dropped");
        return Outcome::Drop(what);
    };
    let now = Utc::now();
    let entry = AuditEntry {
        event_id: &received.id,
        event_type: &received.event_type,
        source: &received.source,
        occurred_at: received.time.unwrap_or(now),
        data,
    };
    if entry.occurred_at < cutoff(now, state.retention.days) {
        state.metrics.expired.inc();
        tracing::info!(event_id = %received.id, occurred_at = %entry.occurred_at, "event older than retention; not stored");
        return Outcome::Success;
    }
    match state.store.record(&entry).await {
        Ok(true) => {
            tracing::info!(event_id = %received.id, task_id = %data.task_id, "audit entry stored");
            Outcome::Success
        }
        Ok(false) => {
            state.metrics.duplicates.inc();
            tracing::debug!(event_id = %received.id, "duplicate delivery ignored");
            Outcome::Success
        }
        Err(StoreError::Unavailable(reason)) => {
            tracing::warn!(event_id = %received.id, %reason, "audit store unavailable; asking for redelivery");
            Outcome::Retry(reason)
        }
        Err(StoreError::Refused(reason)) => {
            tracing::error!(event_id = %received.id, %reason, "audit row refused; dead-lettering");
            Outcome::Drop(reason)
        }
    }
}

fn count(metrics: &IngestMetrics, outcome: &Outcome) {
    match outcome {
        Outcome::Success => metrics.stored.inc(),
        Outcome::Retry(_) => metrics.retried.inc(),
        Outcome::Drop(_) => metrics.dropped.inc(),
    };
}
