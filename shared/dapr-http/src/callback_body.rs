//! The body limit of the callback routes, and what a body past it gets.
//!
//! Without it a callback route has axum's default of 2 MiB (axum-core 0.5
//! `ext_traits/request.rs`, `with_limited_body`), and an extractor past that
//! answers a plain-text 413. daprd treats every status outside 2xx but 404
//! as retriable (dapr 1.18 `pkg/runtime/subscription/postman/http/http.go`,
//! `Deliver`), so under
//! the inbound no-end retry policy a too-large event would block its
//! partition for good. Instead, a body past [`ENV_CALLBACK_MAX_BODY_BYTES`]
//! is poison, answered as its deliverer reads poison ([`crate::reply`] with
//! `Outcome::Drop`: daprd `200 {"status":"DROP"}`, Knative a 400
//! problem+json), so it goes to the dead-letter topic and the partition
//! moves on.
//!
//! The limit holds whatever outer `DefaultBodyLimit` a function sets for
//! its API (task-api's `MAX_BODY_BYTES` is 64 KiB): the guard sets its own
//! on the request, and the innermost setting is the one extractors read.
//! It is at least the pubsub's `maxMessageBytes` (1 MiB,
//! `dapr/*/pubsub.yaml`), so no event the broker took is refused.

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use contracts::Delivery;
use settings::{SettingError, Settings};
use tower::{Layer, ServiceExt};

use crate::callback::{Outcome, reply};

/// The largest body a callback route reads, in bytes.
pub const ENV_CALLBACK_MAX_BODY_BYTES: &str = "CALLBACK_MAX_BODY_BYTES";
/// Twice the largest event the pubsub publishes: room for the envelope a
/// deliverer adds around it.
pub const DEFAULT_CALLBACK_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// The pubsub components' `maxMessageBytes`: a smaller limit would
/// dead-letter events the broker accepted.
pub const MIN_CALLBACK_MAX_BODY_BYTES: usize = 1024 * 1024;
const _: () = assert!(DEFAULT_CALLBACK_MAX_BODY_BYTES >= MIN_CALLBACK_MAX_BODY_BYTES);

/// Reads [`ENV_CALLBACK_MAX_BODY_BYTES`], refusing a limit below
/// [`MIN_CALLBACK_MAX_BODY_BYTES`].
pub fn max_body_bytes(s: &Settings<'_>) -> Result<usize, SettingError> {
    let limit = s.parsed(ENV_CALLBACK_MAX_BODY_BYTES, DEFAULT_CALLBACK_MAX_BODY_BYTES)?;
    if limit < MIN_CALLBACK_MAX_BODY_BYTES {
        return Err(SettingError::Invalid {
            key: ENV_CALLBACK_MAX_BODY_BYTES.to_owned(),
            value: limit.to_string(),
            reason: format!(
                "must be at least {MIN_CALLBACK_MAX_BODY_BYTES} (the pubsub's maxMessageBytes), \
                 or events the broker accepted would be dead-lettered"
            ),
        });
    }
    Ok(limit)
}

/// Runs the handler with the body limited to `limit` bytes. The handlers'
/// extractors enforce it and answer 413 past it; a callback handler has no
/// other reason to answer 413, so that answer becomes poison for
/// `delivery`.
pub(crate) async fn run_limited(
    limit: usize,
    delivery: Delivery,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let response = match DefaultBodyLimit::max(limit)
        .layer(next)
        .oneshot(request)
        .await
    {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return response;
    }
    tracing::warn!(%path, limit, "callback body too large: dead-lettered");
    let reason = format!("the body is larger than {ENV_CALLBACK_MAX_BODY_BYTES} ({limit} bytes)");
    reply(&Outcome::Drop(reason), delivery)
}
