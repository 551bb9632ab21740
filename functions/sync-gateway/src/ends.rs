//! What ends a session besides its own loop, and the close each gets: a
//! refused token, a read error, a change-feed error, a write that waits
//! too long (or meets the kick, shutdown or the token's expiry), and the
//! per-socket resume rate.

use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::time::{Instant, sleep_until};

use crate::feed::FeedError;
use crate::protocol::{Close, ParseError};
use crate::session::End;
use crate::token::TokenError;

/// 4401 for a token that is not valid; 4402 for one past its `exp` (but
/// within the leeway), before any hello, so the client gets a fresh token
/// instead of reconnecting into an immediate close.
pub(crate) fn refused(error: TokenError) -> End {
    tracing::info!(%error, "socket token refused");
    match error {
        TokenError::Expired => End::Closed(Close::TokenExpired),
        TokenError::Refused(_) => End::Closed(Close::Unauthenticated),
    }
}

/// A read error: a client frame over the size limits is 1009 (tungstenite
/// refuses it with a `CapacityError` and the connection can still carry
/// the close); anything else means the connection is gone.
pub(crate) fn read_failed(error: &(dyn std::error::Error + 'static)) -> End {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<tokio_tungstenite::tungstenite::error::CapacityError>() {
            tracing::info!(%error, "client message over WS_MAX_MESSAGE_BYTES");
            return End::Closed(Close::TooBig);
        }
        cause = error.source();
    }
    End::Gone
}

/// 4400 for a message outside the protocol. serde_json's own words quote
/// the offending value (serde 1.0.229 src/core/de/mod.rs: `Unexpected::Str` displays as
/// `string "…"` in an invalid-type error), and a malformed `auth` can carry a token:
/// a JSON error is logged by its category and place only, never its text.
pub(crate) fn bad_message(error: &ParseError) -> End {
    match error {
        ParseError::Json(error) => tracing::info!(
            category = ?error.classify(),
            line = error.line(),
            column = error.column(),
            "unreadable client message"
        ),
        ParseError::Invalid(reason) | ParseError::Position(reason) => {
            tracing::info!(reason, "a client message outside the protocol");
        }
    }
    End::Closed(Close::BadMessage)
}

pub(crate) fn feed_end(error: FeedError) -> End {
    match error {
        FeedError::Unauthorized => End::Closed(Close::TokenExpired),
        // A request task-api calls malformed will be malformed on every
        // retry: 4400 (do not resume), never 1013 (resume forever).
        FeedError::Refused(status) => {
            tracing::warn!(%status, "the change feed refused a request");
            End::Closed(Close::BadMessage)
        }
        FeedError::Unavailable(reason) => {
            tracing::warn!(%reason, "change feed unavailable");
            End::Closed(Close::TryAgainLater)
        }
    }
}

/// Resolves when the gateway shuts down (or its sender is gone).
pub(crate) async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    // The guard wait_for returns is not Send: drop it here.
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}

/// What a session's writes watch while they wait.
pub(crate) struct Guard {
    /// Fires when the hub found the socket's queue full.
    pub(crate) kicked: oneshot::Receiver<()>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Guard {
    /// `write`, unless something that ends the session comes first: the
    /// hub's kick (queue full), the write deadline `timeout` from now (a
    /// client that stopped reading with fewer events than its queue holds
    /// would otherwise hold the session for good), shutdown, or the
    /// token's expiry.
    pub(crate) async fn write<E: std::fmt::Display>(
        &mut self,
        timeout: Duration,
        expires_at: Instant,
        write: impl std::future::Future<Output = Result<(), E>>,
    ) -> Result<(), End> {
        let deadline = Instant::now() + timeout;
        tokio::select! {
            biased;
            written = write => written.map_err(|error| {
                tracing::debug!(%error, "socket write failed");
                End::Gone
            }),
            _ = &mut self.kicked => Err(End::Closed(Close::TooSlow)),
            () = stopping(&mut self.shutdown) => Err(End::Closed(Close::GoingAway)),
            () = sleep_until(expires_at) => Err(End::Closed(Close::TokenExpired)),
            () = sleep_until(deadline) => {
                tracing::info!("a write waited past WS_WRITE_TIMEOUT_MS: closing the socket");
                Err(End::Closed(Close::TooSlow))
            }
        }
    }
}

/// Resumes admitted in the current minute.
#[derive(Debug)]
pub(crate) struct Window {
    started: Instant,
    count: u32,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            count: 0,
        }
    }
}

impl Window {
    /// Counts one more; false once `limit` were admitted in this minute.
    pub(crate) fn admit(&mut self, limit: u32) -> bool {
        if self.started.elapsed() >= Duration::from_secs(60) {
            *self = Self::default();
        }
        self.count = self.count.saturating_add(1);
        self.count <= limit
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::protocol::parse;

    /// What a subscriber writes, kept for the test to read.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Malformed messages whose serde_json error quotes the client's value
    /// (a token where a position or a type belongs): the log names the
    /// category and the place, never the value.
    #[test]
    fn a_malformed_message_is_logged_without_its_text() {
        let secret = "eyJhbGciOiJFUzI1NiJ9.c2VjcmV0.c2ln";
        for text in [
            format!(r#"{{"type":"auth","token":"t","resume":"{secret}"}}"#),
            format!(r#"{{"type":"{secret}"}}"#),
            format!(r#"{{"type":"resume","epoch":"e","offset":"{secret}"}}"#),
        ] {
            let error = parse(&text).expect_err("malformed");
            assert!(error.to_string().contains(secret), "{error}");
            let captured = Captured::default();
            let writer = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish();
            let end = tracing::subscriber::with_default(subscriber, || bad_message(&error));
            assert_eq!(end, End::Closed(Close::BadMessage));
            let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
            assert!(log.contains("unreadable client message"), "{log}");
            assert!(log.contains("category=Data"), "{log}");
            assert!(!log.contains(secret), "{log}");
        }
    }
}
