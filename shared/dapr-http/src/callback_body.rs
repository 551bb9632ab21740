//! The body limit of the callback routes, and what a body past it gets.
//!
//! Without it a callback route has axum's default of 2 MiB (axum-core 0.5
//! `ext_traits/request.rs`, `with_limited_body`), and an extractor past that
//! answers a plain-text 413. daprd treats every status outside 2xx but 404
//! as retriable (dapr 1.18 `pkg/runtime/subscription/postman/http/http.go`,
//! `Deliver`), so under
//! the inbound no-end retry policy a too-large event would block its
//! partition for good. Instead, a body past [`ENV_CALLBACK_MAX_BODY_BYTES`]
//! is poison (the guard reads it, so no handler ever sees it), answered as
//! its deliverer reads poison ([`crate::reply`] with
//! `Outcome::Drop`: daprd `200 {"status":"DROP"}`, Knative a 400
//! problem+json), so it goes to the dead-letter topic and the partition
//! moves on.
//!
//! The limit holds whatever outer `DefaultBodyLimit` a function sets for
//! its API (task-api's `MAX_BODY_BYTES` is 64 KiB): the guard reads the
//! body itself and lifts the extractors' limit for the handler (the
//! innermost `DefaultBodyLimit` is the one they read). A body past the
//! limit is still read on, up to a bound, so the reply reaches a deliverer
//! that is still sending instead of a closed connection.
//! It is at least the pubsub's `maxMessageBytes` (1 MiB,
//! `dapr/*/pubsub.yaml`), so no event the broker took is refused.

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header;
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

/// How much of a body past the limit is still read (and discarded) so the
/// deliverer gets its reply: answered before its body is all sent, a client
/// sees the connection close mid-request (an error daprd retries). Past
/// this many times the limit the connection is given up.
const DRAIN_FACTOR: usize = 16;

/// Why a body was not taken.
enum Refused {
    TooLarge,
    /// The connection broke mid-body: the deliverer sees no reply anyway.
    Broken,
}

/// Reads the body up to `limit` bytes; past it, reads on (discarding) up
/// to `DRAIN_FACTOR` times the limit, then refuses it.
async fn read_limited(body: Body, limit: usize) -> Result<Bytes, Refused> {
    let drain_cap = limit.saturating_mul(DRAIN_FACTOR);
    let mut body = std::pin::pin!(body);
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let Ok(data) = frame.map_err(|_| Refused::Broken)?.into_data() else {
            continue; // trailers
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            kept.extend_from_slice(&data);
        } else if seen > drain_cap {
            return Err(Refused::TooLarge);
        }
    }
    if seen > limit {
        return Err(Refused::TooLarge);
    }
    Ok(Bytes::from(kept))
}

/// Runs the handler on the body read up to `limit` bytes; a larger body is
/// poison for `delivery` and the handler never sees it.
pub(crate) async fn run_limited(
    limit: usize,
    delivery: Delivery,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let declared_too_large = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|length| length > limit.saturating_mul(DRAIN_FACTOR));
    let read = if declared_too_large {
        Err(Refused::TooLarge)
    } else {
        read_limited(body, limit).await
    };
    match read {
        Ok(bytes) => {
            // The body is within the limit: lift axum's default (2 MiB) and
            // any outer API limit for the handler's extractor.
            let request = Request::from_parts(parts, Body::from(bytes));
            match DefaultBodyLimit::disable()
                .layer(next)
                .oneshot(request)
                .await
            {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
        Err(Refused::TooLarge) => {
            tracing::warn!(path = %parts.uri.path(), limit, "callback body too large: dead-lettered");
            let reason =
                format!("the body is larger than {ENV_CALLBACK_MAX_BODY_BYTES} ({limit} bytes)");
            reply(&Outcome::Drop(reason), delivery)
        }
        Err(Refused::Broken) => {
            tracing::warn!(path = %parts.uri.path(), "callback body broken off");
            reply(
                &Outcome::Retry("the body was broken off".to_owned()),
                delivery,
            )
        }
    }
}
