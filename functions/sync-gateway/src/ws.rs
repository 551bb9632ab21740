//! `GET /ws/tasks`: the upgrade. A token in the `Authorization` header is
//! checked before upgrading (a refused one is a 401 with the RFC 6750
//! challenge, like the API's); without one the session waits for an
//! `auth` message. tungstenite's buffers are set small (config.rs): an
//! idle socket then costs a few KiB instead of its 128 KiB default.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use crate::AppState;
use crate::config::SocketBuffers;
use crate::session::{self, End};
use crate::token;

/// Open sessions, so shutdown can wait for their close frames, and the
/// most this replica takes (`WS_MAX_SOCKETS`); of those, the most that may
/// still be waiting for their `auth` message (`WS_MAX_PENDING_AUTH`), so
/// anonymous sockets held open until WS_AUTH_TIMEOUT_MS cannot take every
/// place. A socket holds both places until it authenticates, then only
/// the first.
#[derive(Clone)]
pub struct Sessions {
    open: Arc<AtomicUsize>,
    max: usize,
    pending: Arc<AtomicUsize>,
    max_pending: usize,
}

impl Default for Sessions {
    /// No limit.
    fn default() -> Self {
        Self::with_limit(usize::MAX)
    }
}

struct SessionGuard(Arc<AtomicUsize>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Sessions {
    /// At most `max` sockets, any number of them unauthenticated.
    pub fn with_limit(max: usize) -> Self {
        Self::with_limits(max, usize::MAX)
    }

    /// At most `max` sockets, `max_pending` of them unauthenticated.
    pub fn with_limits(max: usize, max_pending: usize) -> Self {
        Self {
            open: Arc::default(),
            max,
            pending: Arc::default(),
            max_pending,
        }
    }

    /// A place for one more session, unless all are taken.
    fn enter(&self) -> Option<SessionGuard> {
        take(&self.open, self.max)
    }

    /// A place for one more socket without a token yet, unless all are taken.
    fn enter_pending(&self) -> Option<SessionGuard> {
        take(&self.pending, self.max_pending)
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Sockets still waiting for their `auth` message.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }
}

/// One more on `count`, unless it is at `max` (the guard gives it back).
fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<SessionGuard> {
    let taken = count.fetch_add(1, Ordering::AcqRel);
    let guard = SessionGuard(count.clone());
    (taken < max).then_some(guard)
}

pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let pre = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let value = value.to_str().unwrap_or_default();
            match token::verify_header(&state.session.auth, value).await {
                Ok(verified) => Some(verified),
                Err(error) => return refused(&error),
            }
        }
    };
    // Taken as a Result so a refused token is a 401 even for a request
    // that is not a valid upgrade.
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return refused_upgrade(rejection),
    };
    let buffers = state.buffers;
    // A token in the header is verified already: only a socket that will
    // wait for its `auth` message holds a pending place.
    let pending = match pre {
        Some(_) => None,
        None => match state.sessions.enter_pending() {
            Some(pending) => Some(pending),
            None => {
                tracing::warn!("WS_MAX_PENDING_AUTH reached: upgrade refused");
                return full();
            }
        },
    };
    let Some(guard) = state.sessions.enter() else {
        tracing::warn!("WS_MAX_SOCKETS reached: upgrade refused");
        return full();
    };
    configure(ws, buffers).on_upgrade(move |socket| async move {
        let _guard = guard;
        let (sink, stream) = socket.split();
        let authenticated = move || drop(pending);
        let end = session::run_then(state.session.clone(), sink, stream, pre, authenticated).await;
        match end {
            End::Closed(close) => state.metrics.closed(close),
            End::Gone => {
                state.metrics.gone.inc();
            }
        }
    })
}

/// axum's answer to a request that is not a WebSocket upgrade it can take;
/// one asking for another protocol version also learns which one this
/// server speaks (RFC 6455 section 4.4: "Sec-WebSocket-Version: 13").
fn refused_upgrade(rejection: WebSocketUpgradeRejection) -> Response {
    let wrong_version = matches!(
        rejection,
        WebSocketUpgradeRejection::InvalidWebSocketVersionHeader(_)
    );
    let mut response = rejection.into_response();
    if wrong_version {
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            header::HeaderValue::from_static("13"),
        );
    }
    response
}

/// tungstenite's buffers and limits for one socket.
pub(crate) fn configure(ws: WebSocketUpgrade, buffers: SocketBuffers) -> WebSocketUpgrade {
    // No max_write_buffer_size: it caps OUTGOING frames (tungstenite 0.29
    // protocol/frame/mod.rs, buffer_frame: a frame that would pass it is
    // WriteBufferFull), and an event can be far larger than anything a
    // client sends (a 10,000-character description of 4-byte characters
    // is ~40 KB). The buffer is bounded anyway: it grows past
    // write_buffer_size only while the socket would block, and then
    // tokio-tungstenite's poll_ready flushes before the next message is
    // taken (tokio-tungstenite 0.29 lib.rs, Sink impl), so the session
    // waits instead (and its write deadline applies).
    ws.read_buffer_size(buffers.read)
        .write_buffer_size(buffers.write)
        .max_message_size(buffers.max_message)
        .max_frame_size(buffers.max_message)
}

/// 503 with a Retry-After: this replica holds as many sockets as it takes
/// (another replica may have room).
fn full() -> Response {
    let mut response = service::Problem::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "the gateway holds as many sockets as it takes: retry later",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// 401 with the RFC 6750 challenge, as the API answers a refused token;
/// the detail is a fixed sentence (the reason is logged).
fn refused(error: &token::TokenError) -> Response {
    tracing::info!(%error, "upgrade token refused");
    let detail = match error {
        token::TokenError::Expired => "the bearer token has expired",
        token::TokenError::Refused(_) => "the bearer token is not valid",
    };
    let mut response = service::Problem::unauthorized(detail).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    response
}
