//! The app side of Dapr: what daprd calls on us.
//!
//! - [`Subscription`] is one entry of `GET /dapr/subscribe`.
//! - [`Outcome`] is a handler's verdict on one event, and [`reply`] is the
//!   only place that spells it for the deliverer: Dapr reads a status field,
//!   Knative Eventing reads the HTTP status.
//! - [`decode_delivery`] is the first step of every event handler: poison
//!   becomes a `Drop` verdict, and the event's ids go on the handler's span.
//! - [`require_app_token`] (in [`crate::callback_auth`]) refuses calls
//!   without daprd's app token or the Knative push token, and tells the
//!   handler which of the two delivered ([`DeliveredBy`]).

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use contracts::{Delivery, Received, Topic, decode_push};
use serde::Serialize;
use telemetry::trace_context::TraceParent;

// Where functions have always found them.
pub use crate::callback_auth::{
    AppToken, DeliveredBy, KNATIVE_PUSH_TOKEN_HEADER, require_app_token,
};

/// One programmatic subscription, in Dapr's v1 subscribe format.
#[derive(Debug, Clone, Serialize)]
pub struct Subscription {
    pub pubsubname: String,
    pub topic: String,
    pub route: String,
    #[serde(rename = "deadLetterTopic")]
    pub dead_letter_topic: String,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl Subscription {
    /// Subscribes `route` to `topic` with the topic's dead-letter topic.
    pub fn new(pubsub: &str, topic: Topic, route: &str) -> Self {
        Self {
            pubsubname: pubsub.to_owned(),
            topic: topic.name().to_owned(),
            route: route.to_owned(),
            dead_letter_topic: topic.dead_letter().to_owned(),
            metadata: serde_json::Map::new(),
        }
    }
}

/// A handler's verdict on one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Processed (or already processed before: redelivery is success).
    Success,
    /// A transient failure: deliver again later.
    Retry(String),
    /// Poison: retrying cannot help; dead-letter it.
    Drop(String),
}

/// Decodes one pushed event (Dapr or Knative: the same CloudEvent).
///
/// A body that is not a valid event of ours is poison: it is logged once
/// here and answered `Drop`, so it leaves for the dead-letter topic instead
/// of blocking its partition. A decoded event's id, and the W3C trace the
/// API request started (Dapr carries it through Kafka), are recorded on the
/// current span: handlers declare `event_id` and `trace_id` fields.
pub fn decode_delivery(headers: &HeaderMap, body: &[u8]) -> Result<Received, Outcome> {
    let received = decode_push(headers, body).map_err(|error| {
        tracing::warn!(%error, "poison event dropped to the dead-letter topic");
        Outcome::Drop(error.to_string())
    })?;
    let span = tracing::Span::current();
    span.record("event_id", received.id.as_str());
    if let Some(trace) = received.traceparent.as_deref().and_then(TraceParent::parse) {
        span.record("trace_id", trace.trace_id());
    }
    Ok(received)
}

#[derive(Serialize)]
struct DaprStatus {
    status: &'static str,
}

/// Spells an outcome for whoever delivered the event (as proven by its
/// token: [`DeliveredBy`]).
pub fn reply(outcome: &Outcome, delivery: Delivery) -> Response {
    match (delivery, outcome) {
        (Delivery::Dapr, Outcome::Success) => dapr_status("SUCCESS"),
        (Delivery::Dapr, Outcome::Retry(_)) => dapr_status("RETRY"),
        (Delivery::Dapr, Outcome::Drop(_)) => dapr_status("DROP"),
        (Delivery::Knative, Outcome::Success) => StatusCode::OK.into_response(),
        // Knative retries 5xx and sends a non-retryable 4xx straight to the
        // dead-letter sink, which is exactly RETRY and DROP.
        (Delivery::Knative, Outcome::Retry(reason)) => {
            knative_problem(StatusCode::SERVICE_UNAVAILABLE, "Try again later", reason)
        }
        (Delivery::Knative, Outcome::Drop(reason)) => {
            knative_problem(StatusCode::BAD_REQUEST, "Undeliverable event", reason)
        }
    }
}

fn dapr_status(status: &'static str) -> Response {
    (StatusCode::OK, Json(DaprStatus { status })).into_response()
}

pub(crate) fn knative_problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn body_of(response: Response) -> (StatusCode, String) {
        let status = response.status();
        let bytes = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn dapr_replies_are_status_documents() {
        for (outcome, word) in [
            (Outcome::Success, "SUCCESS"),
            (Outcome::Retry("db".into()), "RETRY"),
            (Outcome::Drop("bad".into()), "DROP"),
        ] {
            let (status, body) = body_of(reply(&outcome, Delivery::Dapr)).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body, format!("{{\"status\":\"{word}\"}}"));
        }
    }

    #[tokio::test]
    async fn knative_replies_use_http_status() {
        let (ok, _) = body_of(reply(&Outcome::Success, Delivery::Knative)).await;
        let (retry, _) = body_of(reply(&Outcome::Retry("x".into()), Delivery::Knative)).await;
        let (drop, body) =
            body_of(reply(&Outcome::Drop("bad json".into()), Delivery::Knative)).await;
        assert_eq!(ok, StatusCode::OK);
        assert_eq!(retry, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(drop, StatusCode::BAD_REQUEST);
        assert!(body.contains("bad json"));
    }

    #[test]
    fn subscription_serialises_in_dapr_format() {
        let json = serde_json::to_value(Subscription::new(
            "pubsub",
            Topic::TaskEvents,
            "/events/task-events",
        ))
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "pubsubname": "pubsub", "topic": "task-events",
                "route": "/events/task-events", "deadLetterTopic": "task-events-dlq"
            })
        );
    }
}
