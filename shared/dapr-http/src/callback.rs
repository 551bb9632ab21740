//! The app side of Dapr: what daprd calls on us.
//!
//! - [`Subscription`] is one entry of `GET /dapr/subscribe`.
//! - [`Outcome`] is a handler's verdict on one event, and [`reply`] is the
//!   only place that spells it for the deliverer: Dapr reads a status field,
//!   Knative Eventing reads the HTTP status.
//! - [`require_app_token`] refuses calls without daprd's app API token.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use contracts::{Delivery, Topic};
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::API_TOKEN_HEADER;

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

#[derive(Serialize)]
struct DaprStatus {
    status: &'static str,
}

/// Spells an outcome for whoever delivered the event.
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

/// Who delivered a push that could not be decoded, so the DROP is spelled
/// for the right deliverer. daprd always sends its app token (the callback
/// guard requires it when one is configured); anything else came from
/// Knative Eventing, whose retry and dead-letter logic reads the HTTP
/// status, so a 200 DROP there would lose the event.
pub fn delivery_of_undecodable(headers: &axum::http::HeaderMap) -> Delivery {
    if headers.contains_key(API_TOKEN_HEADER) {
        Delivery::Dapr
    } else {
        Delivery::Knative
    }
}

fn dapr_status(status: &'static str) -> Response {
    (StatusCode::OK, Json(DaprStatus { status })).into_response()
}

fn knative_problem(status: StatusCode, title: &str, detail: &str) -> Response {
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

/// Who may call the app's callback routes.
///
/// daprd proves itself with the app API token in `dapr-api-token`. A Knative
/// KafkaSource cannot send that header, so in the `scale-to-zero` profile it
/// sends a separate push token as a CloudEvent extension (`pushtoken`, which
/// arrives as the `ce-pushtoken` header). `None` disables a check; with both
/// unset every caller is accepted (tests, or network policy alone).
#[derive(Debug, Clone, Default)]
pub struct AppToken {
    pub dapr: Option<Arc<str>>,
    pub knative_push: Option<Arc<str>>,
}

/// The header a KafkaSource's `ceOverrides.extensions.pushtoken` becomes.
pub const KNATIVE_PUSH_TOKEN_HEADER: &str = "ce-pushtoken";

impl AppToken {
    pub fn new(dapr: Option<&str>, knative_push: Option<&str>) -> Self {
        Self {
            dapr: dapr.map(Arc::from),
            knative_push: knative_push.map(Arc::from),
        }
    }

    fn admits(&self, headers: &axum::http::HeaderMap) -> bool {
        if self.dapr.is_none() && self.knative_push.is_none() {
            return true;
        }
        let matches = |expected: &Option<Arc<str>>, header: &str| {
            expected.as_ref().is_some_and(|expected| {
                let presented = headers
                    .get(header)
                    .map(|v| v.as_bytes())
                    .unwrap_or_default();
                bool::from(presented.ct_eq(expected.as_bytes()))
            })
        };
        matches(&self.dapr, API_TOKEN_HEADER)
            || matches(&self.knative_push, KNATIVE_PUSH_TOKEN_HEADER)
    }
}

/// Middleware: the request must carry daprd's app API token (or the Knative
/// push token, where one is configured).
pub async fn require_app_token(
    State(token): State<AppToken>,
    request: Request,
    next: Next,
) -> Response {
    if token.admits(request.headers()) {
        next.run(request).await
    } else {
        tracing::warn!(path = %request.uri().path(), "app callback refused: missing or wrong token");
        knative_problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "this endpoint is only for the Dapr sidecar and the event sources",
        )
    }
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
    fn tokens_admit_dapr_or_knative_and_nothing_else() {
        use axum::http::HeaderMap;
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (k, v) in pairs {
                map.insert(*k, v.parse().unwrap());
            }
            map
        };
        let open = AppToken::default();
        assert!(open.admits(&headers(&[])));
        let dapr_only = AppToken::new(Some("s3cret"), None);
        assert!(dapr_only.admits(&headers(&[(API_TOKEN_HEADER, "s3cret")])));
        assert!(!dapr_only.admits(&headers(&[(API_TOKEN_HEADER, "wrong")])));
        assert!(!dapr_only.admits(&headers(&[])));
        assert!(!dapr_only.admits(&headers(&[(KNATIVE_PUSH_TOKEN_HEADER, "s3cret")])));
        let both = AppToken::new(Some("d"), Some("k"));
        assert!(both.admits(&headers(&[(KNATIVE_PUSH_TOKEN_HEADER, "k")])));
        assert!(both.admits(&headers(&[(API_TOKEN_HEADER, "d")])));
        assert!(!both.admits(&headers(&[(KNATIVE_PUSH_TOKEN_HEADER, "d")])));
    }

    #[test]
    fn undecodable_pushes_are_answered_in_the_deliverers_terms() {
        let mut headers = axum::http::HeaderMap::new();
        assert_eq!(delivery_of_undecodable(&headers), Delivery::Knative);
        headers.insert(API_TOKEN_HEADER, "t".parse().unwrap());
        assert_eq!(delivery_of_undecodable(&headers), Delivery::Dapr);
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
