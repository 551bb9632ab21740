//! Completions from `task-events`: decode once, create the successor once,
//! reply once.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use contracts::{Event, EventKind, Received, Topic};
use dapr_http::{DeliveredBy, Outcome, decode_delivery, reply};
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use task_domain::RepoError;
use task_domain::repo::SuccessorOutcome;

use crate::{AppState, IGNORED_ROUTE, TASK_EVENTS_ROUTE};

/// Counters of what ingest decided.
#[derive(Debug, Clone, Default)]
pub struct IngestMetrics {
    pub created: Counter,
    /// Completions that needed nothing: redelivered, raced, an older
    /// occurrence, a reopened or deleted task, an ended series.
    pub skipped: Counter,
    pub retried: Counter,
    pub dropped: Counter,
}

impl IngestMetrics {
    /// Adds the counters to the `/metrics` registry.
    pub fn register(&self, metrics: &telemetry::metrics::Metrics) {
        let counters = [
            (
                "occurrences_created",
                "Next occurrences created",
                &self.created,
            ),
            (
                "completions_skipped",
                "Completions that created nothing (duplicate, older occurrence, ended, deleted)",
                &self.skipped,
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
        ];
        for (name, help, counter) in counters {
            metrics.register(name, help, counter.clone());
        }
    }
}

/// One programmatic subscription in Dapr's v2 format: routing rules
/// (CEL over the CloudEvent as `event`) and a default route. The shape is
/// daprd 1.18's `SubscriptionJSON` / `RoutesJSON` / `RuleJSON`
/// (pkg/runtime/pubsub/subscriptions.go).
#[derive(Debug, Clone, Serialize)]
pub struct RoutedSubscription {
    pub pubsubname: String,
    pub topic: &'static str,
    pub routes: Routes,
    #[serde(rename = "deadLetterTopic")]
    pub dead_letter_topic: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Routes {
    pub rules: Vec<Rule>,
    pub default: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    #[serde(rename = "match")]
    pub match_: String,
    pub path: &'static str,
}

/// `GET /dapr/subscribe`: completions to the handler, every other type to
/// the route that acknowledges it.
pub async fn subscriptions(State(state): State<AppState>) -> Json<Vec<RoutedSubscription>> {
    Json(vec![RoutedSubscription {
        pubsubname: state.pubsub.clone(),
        topic: Topic::TaskEvents.name(),
        routes: Routes {
            rules: vec![Rule {
                match_: format!("event.type == \"{}\"", EventKind::TaskCompleted.as_str()),
                path: TASK_EVENTS_ROUTE,
            }],
            default: IGNORED_ROUTE,
        },
        dead_letter_topic: Topic::TaskEvents.dead_letter(),
    }])
}

/// `POST /events/task-events/ignored`: the types this function does not
/// handle, acknowledged unread (daprd's default route).
pub async fn ignored(DeliveredBy(deliverer): DeliveredBy) -> Response {
    reply(&Outcome::Success, deliverer)
}

/// `POST /events/task-events`.
#[tracing::instrument(skip_all, fields(event_id, trace_id))]
pub async fn task_event(
    State(state): State<AppState>,
    DeliveredBy(deliverer): DeliveredBy,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome = match decode_delivery(&headers, &body) {
        Ok(received) => handle(&state, &received).await,
        Err(poison) => poison,
    };
    count(&state.metrics, &outcome);
    reply(&outcome, deliverer)
}

/// What one decoded event asks of this function.
async fn handle(state: &AppState, received: &Received) -> Outcome {
    let data = match &received.event {
        Event::TaskCompleted(data) => data,
        // Every other well-formed event, of a known type or not, is not
        // ours: acknowledged, as daprd's default route does for the types
        // the routing rule does not send here, so a Knative push and a Dapr
        // delivery get the same answer. It is not poison for this function;
        // audit is the subscriber that dead-letters types it does not know.
        other => {
            if matches!(other, Event::Unknown { .. }) {
                tracing::info!(event_id = %received.id, event_type = %received.event_type, "not a completion; acknowledged");
            }
            return Outcome::Success;
        }
    };
    let created = state
        .repo
        .create_successor(&data.user_id, data.task_id, received.traceparent.as_deref())
        .await;
    match created {
        Ok(SuccessorOutcome::Created(task)) => {
            // Published right away by this function's relay.
            state.relay.wake();
            state.metrics.created.inc();
            tracing::info!(event_id = %received.id, completed = %data.task_id, task_id = %task.id, occurrence = task.occurrence, due_at = ?task.due_at, "next occurrence created");
            Outcome::Success
        }
        Ok(other) => {
            state.metrics.skipped.inc();
            tracing::info!(event_id = %received.id, task_id = %data.task_id, outcome = ?other, "completion needs no new occurrence");
            Outcome::Success
        }
        Err(RepoError::Unavailable(reason)) => {
            tracing::warn!(event_id = %received.id, %reason, "database unavailable; asking for redelivery");
            Outcome::Retry(reason)
        }
        Err(error) => {
            tracing::error!(event_id = %received.id, %error, "completion cannot be processed; dead-lettering");
            Outcome::Drop(error.to_string())
        }
    }
}

fn count(metrics: &IngestMetrics, outcome: &Outcome) {
    match outcome {
        Outcome::Success => 0,
        Outcome::Retry(_) => metrics.retried.inc(),
        Outcome::Drop(_) => metrics.dropped.inc(),
    };
}
