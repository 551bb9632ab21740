//! One socket's life: authenticate, say hello, then send the user's stream
//! in order, each offset once, until the socket closes.
//!
//! Written against `Sink<Message>` and `Stream<Item = Result<Message, _>>`,
//! so the tests drive it with channels (session_tests.rs).
//!
//! The session keeps the client's position (`epoch`, `offset`: the last
//! event it sent) and sends only the next offset. A live event at or below
//! the position is a duplicate (a redelivery, or already replayed) and is
//! skipped; one above the next offset means something is missing (a resume
//! behind the live stream, or a lost push), and the hole is filled from
//! the change feed first. Live events that arrive while a replay runs wait
//! in the socket's bounded queue ([`crate::hub`]), so replay and live never
//! interleave and never leave a gap.

use std::sync::Arc;
use std::time::Duration;

use auth::Authenticator;
use axum::extract::ws::{Message, Utf8Bytes};
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until, timeout};

use crate::feed::{ChangeFeed, FeedError, Page, Position};
use crate::hub::{Hub, Live, Subscription};
use crate::protocol::{self, ClientMessage, Close, ServerMessage};
use crate::token::{self, TokenError, Verified};

/// A session's limits (config.rs reads them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// How long a socket may stay open without a valid `auth` message.
    pub auth_timeout: Duration,
    /// How often the gateway sends a WebSocket ping.
    pub ping_interval: Duration,
    /// Closed when nothing (a message, a pong) came for this long.
    pub idle_timeout: Duration,
    /// Events per change-feed page during a replay.
    pub replay_page: i64,
    /// Most queued events written before one flush.
    pub burst: usize,
    /// How long one write (or flush) may wait on a client that does not
    /// read; then the socket is closed with 4429 and the client resumes.
    pub write_timeout: Duration,
}

/// How long the final close frame may wait for a stalled client.
pub(crate) const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What every session shares.
#[derive(Clone)]
pub struct Context<F> {
    pub feed: F,
    pub hub: Hub,
    pub auth: Arc<Authenticator>,
    pub config: SessionConfig,
    /// Turns true when the gateway shuts down.
    pub shutdown: watch::Receiver<bool>,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The gateway closed the socket with this code.
    Closed(Close),
    /// The client went away (closed, or the connection broke).
    Gone,
}

/// Runs one socket until it ends; `pre` is the token the upgrade request
/// carried in its `Authorization` header, already verified.
pub async fn run<F, Si, St, E>(
    ctx: Context<F>,
    mut sink: Si,
    mut stream: St,
    pre: Option<Verified>,
) -> End
where
    F: ChangeFeed,
    Si: Sink<Message> + Unpin,
    Si::Error: std::fmt::Display,
    St: Stream<Item = Result<Message, E>> + Unpin,
{
    let end = match session(&ctx, &mut sink, &mut stream, pre).await {
        Ok(never) => match never {},
        Err(end) => end,
    };
    if let End::Closed(close) = end {
        tracing::debug!(code = close.code(), "closing socket");
        // A client that stopped reading must not hold the session: the
        // close frame gets a moment, then the connection is dropped.
        let _ = timeout(CLOSE_WRITE_TIMEOUT, sink.send(close.frame())).await;
    }
    end
}

/// The state of an authenticated socket.
struct Socket<'a, F, Si, St> {
    ctx: &'a Context<F>,
    sink: &'a mut Si,
    stream: &'a mut St,
    verified: Verified,
    position: Position,
    last_heard: Instant,
    /// Fires when the hub found this socket's queue full.
    kicked: oneshot::Receiver<()>,
    shutdown: watch::Receiver<bool>,
}

async fn session<F, Si, St, E>(
    ctx: &Context<F>,
    sink: &mut Si,
    stream: &mut St,
    pre: Option<Verified>,
) -> Result<std::convert::Infallible, End>
where
    F: ChangeFeed,
    Si: Sink<Message> + Unpin,
    Si::Error: std::fmt::Display,
    St: Stream<Item = Result<Message, E>> + Unpin,
{
    let verified = match pre {
        Some(verified) => verified,
        None => authenticate(ctx, stream).await?,
    };
    // Registered before the head is read: whatever commits after that read
    // is published after it, so it reaches this socket's queue.
    let Subscription {
        registration: _registration,
        live,
        kicked,
    } = ctx.hub.register(&verified.user);
    let position = ctx.feed.head(&verified.token).await.map_err(feed_end)?;
    let mut socket = Socket {
        ctx,
        sink,
        stream,
        verified,
        position,
        last_heard: Instant::now(),
        kicked,
        shutdown: ctx.shutdown.clone(),
    };
    let hello = ServerMessage::Hello {
        epoch: &socket.position.epoch,
        offset: socket.position.offset,
    };
    socket.send(hello.to_text()).await?;
    socket.serve(live).await
}

/// Waits for the first message, which must be a valid `auth`.
async fn authenticate<F, St, E>(ctx: &Context<F>, stream: &mut St) -> Result<Verified, End>
where
    St: Stream<Item = Result<Message, E>> + Unpin,
{
    let mut shutdown = ctx.shutdown.clone();
    let first = tokio::select! {
        () = stopping(&mut shutdown) => return Err(End::Closed(Close::GoingAway)),
        first = timeout(ctx.config.auth_timeout, next_text(stream)) => first,
    };
    let text = match first {
        Err(_elapsed) => return Err(End::Closed(Close::Unauthenticated)),
        Ok(Err(end)) => return Err(end),
        Ok(Ok(text)) => text,
    };
    let Ok(ClientMessage::Auth { token }) = protocol::parse(&text) else {
        return Err(End::Closed(Close::Unauthenticated));
    };
    token::verify(&ctx.auth, &token).await.map_err(refused)
}

/// 4401 for a token that is not valid; 4402 for one past its `exp` (but
/// within the leeway), before any hello, so the client gets a fresh token
/// instead of reconnecting into an immediate close.
fn refused(error: TokenError) -> End {
    tracing::info!(%error, "socket token refused");
    match error {
        TokenError::Expired => End::Closed(Close::TokenExpired),
        TokenError::Refused(_) => End::Closed(Close::Unauthenticated),
    }
}

/// The next text frame, skipping control frames.
async fn next_text<St, E>(stream: &mut St) -> Result<Utf8Bytes, End>
where
    St: Stream<Item = Result<Message, E>> + Unpin,
{
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Binary(_))) => return Err(End::Closed(Close::BadMessage)),
            Some(Ok(Message::Close(_)) | Err(_)) | None => return Err(End::Gone),
        }
    }
}

fn feed_end(error: FeedError) -> End {
    match error {
        FeedError::Unauthorized => End::Closed(Close::TokenExpired),
        FeedError::Unavailable(reason) => {
            tracing::warn!(%reason, "change feed unavailable");
            End::Closed(Close::TryAgainLater)
        }
    }
}

/// Resolves when the gateway shuts down (or its sender is gone).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    // The guard wait_for returns is not Send: drop it here.
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}

impl<F, Si, St, E> Socket<'_, F, Si, St>
where
    F: ChangeFeed,
    Si: Sink<Message> + Unpin,
    Si::Error: std::fmt::Display,
    St: Stream<Item = Result<Message, E>> + Unpin,
{
    async fn serve(
        &mut self,
        mut live: mpsc::Receiver<Arc<Live>>,
    ) -> Result<std::convert::Infallible, End> {
        let config = self.ctx.config;
        let mut shutdown = self.shutdown.clone();
        let mut ping =
            tokio::time::interval_at(Instant::now() + config.ping_interval, config.ping_interval);
        loop {
            tokio::select! {
                biased;
                () = stopping(&mut shutdown) => return Err(End::Closed(Close::GoingAway)),
                _ = &mut self.kicked => return Err(End::Closed(Close::TooSlow)),
                () = sleep_until(self.verified.expires_at) => {
                    return Err(End::Closed(Close::TokenExpired));
                }
                () = sleep_until(self.last_heard + config.idle_timeout) => {
                    return Err(End::Closed(Close::Idle));
                }
                _ = ping.tick() => self.write(Message::Ping(Default::default())).await?,
                message = self.stream.next() => self.on_message(message).await?,
                Some(event) = live.recv() => self.on_live(event, &mut live).await?,
            }
        }
    }

    async fn on_message(&mut self, message: Option<Result<Message, E>>) -> Result<(), End> {
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                self.last_heard = Instant::now();
                return Ok(());
            }
            Some(Ok(Message::Binary(_))) => return Err(End::Closed(Close::BadMessage)),
            Some(Ok(Message::Close(_)) | Err(_)) | None => return Err(End::Gone),
        };
        self.last_heard = Instant::now();
        match protocol::parse(&text) {
            Ok(ClientMessage::Ping) => self.send(ServerMessage::Pong.to_text()).await,
            Ok(ClientMessage::Resume { epoch, offset }) => {
                self.position = Position { epoch, offset };
                self.catch_up().await?;
                self.flush().await
            }
            Ok(ClientMessage::Auth { token }) => self.reauthenticate(&token).await,
            Err(error) => {
                tracing::info!(%error, "unknown client message");
                Err(End::Closed(Close::BadMessage))
            }
        }
    }

    /// A fresh token for the same user extends the socket's life.
    async fn reauthenticate(&mut self, token: &str) -> Result<(), End> {
        match token::verify(&self.ctx.auth, token).await {
            Ok(fresh) if fresh.user == self.verified.user => {
                self.verified = fresh;
                Ok(())
            }
            Ok(_) => Err(End::Closed(Close::Unauthenticated)),
            Err(error) => Err(refused(error)),
        }
    }

    /// Sends `first` and whatever else is queued (up to a burst), then
    /// flushes once.
    async fn on_live(
        &mut self,
        first: Arc<Live>,
        queue: &mut mpsc::Receiver<Arc<Live>>,
    ) -> Result<(), End> {
        let mut next = Some(first);
        let mut written = 0;
        while let Some(live) = next.take() {
            self.deliver(&live).await?;
            written += 1;
            if written < self.ctx.config.burst {
                next = queue.try_recv().ok();
            }
        }
        self.flush().await
    }

    /// Writes one live event if it is the next offset; skips duplicates;
    /// fills a hole from the feed first.
    async fn deliver(&mut self, live: &Live) -> Result<(), End> {
        if live.epoch == self.position.epoch && live.offset <= self.position.offset {
            return Ok(());
        }
        if !self.follows(live) {
            self.catch_up().await?;
        }
        if self.follows(live) {
            self.feed(live.text.clone()).await?;
            self.position.offset = live.offset;
        }
        Ok(())
    }

    fn follows(&self, live: &Live) -> bool {
        live.epoch == self.position.epoch && live.offset == self.position.offset + 1
    }

    /// Replays the change feed from the position to its end; on a reset,
    /// moves to the head and tells the client.
    async fn catch_up(&mut self) -> Result<(), End> {
        let page = self.ctx.config.replay_page;
        loop {
            let answer = self
                .ctx
                .feed
                .after(
                    &self.verified.token,
                    &self.position.epoch,
                    self.position.offset,
                    page,
                )
                .await
                .map_err(feed_end)?;
            let events = match answer {
                Page::Events(events) => events,
                Page::Reset { .. } => return self.reset().await,
            };
            let (count, before) = (events.len(), self.position.offset);
            for data in events.iter().filter(|d| d.offset > before) {
                if data.offset != self.position.offset + 1 {
                    break;
                }
                self.feed(ServerMessage::event(data)).await?;
                self.position.offset = data.offset;
            }
            self.flush().await?;
            // A short page is the end; a page that did not move (which the
            // feed never gives) must not spin.
            if i64::try_from(count).unwrap_or(i64::MAX) < page || self.position.offset == before {
                return Ok(());
            }
        }
    }

    async fn reset(&mut self) -> Result<(), End> {
        self.position = self
            .ctx
            .feed
            .head(&self.verified.token)
            .await
            .map_err(feed_end)?;
        let reset = ServerMessage::Reset {
            epoch: &self.position.epoch,
            offset: self.position.offset,
        };
        self.send(reset.to_text()).await
    }

    // Every write is guarded: a client that stops reading stalls it, and
    // while it waits the serve loop's timers are not polled, so the guard
    // watches them itself (see [`guarded`]).
    async fn feed(&mut self, text: Utf8Bytes) -> Result<(), End> {
        let (deadline, expires_at) = self.write_limits();
        let write = self.sink.feed(Message::Text(text));
        guarded(
            &mut self.kicked,
            &mut self.shutdown,
            deadline,
            expires_at,
            write,
        )
        .await
    }

    async fn flush(&mut self) -> Result<(), End> {
        let (deadline, expires_at) = self.write_limits();
        let write = self.sink.flush();
        guarded(
            &mut self.kicked,
            &mut self.shutdown,
            deadline,
            expires_at,
            write,
        )
        .await
    }

    async fn send(&mut self, text: Utf8Bytes) -> Result<(), End> {
        self.write(Message::Text(text)).await
    }

    async fn write(&mut self, message: Message) -> Result<(), End> {
        let (deadline, expires_at) = self.write_limits();
        let write = self.sink.send(message);
        guarded(
            &mut self.kicked,
            &mut self.shutdown,
            deadline,
            expires_at,
            write,
        )
        .await
    }

    fn write_limits(&self) -> (Instant, Instant) {
        let deadline = Instant::now() + self.ctx.config.write_timeout;
        (deadline, self.verified.expires_at)
    }
}

/// `write`, unless something that ends the session comes first: the hub's
/// kick (queue full), the write deadline (a client that stopped reading
/// with fewer events than its queue holds would otherwise hold the session
/// for good), shutdown, or the token's expiry.
async fn guarded<E: std::fmt::Display>(
    kicked: &mut oneshot::Receiver<()>,
    shutdown: &mut watch::Receiver<bool>,
    deadline: Instant,
    expires_at: Instant,
    write: impl std::future::Future<Output = Result<(), E>>,
) -> Result<(), End> {
    tokio::select! {
        biased;
        written = write => written.map_err(|error| {
            tracing::debug!(%error, "socket write failed");
            End::Gone
        }),
        _ = kicked => Err(End::Closed(Close::TooSlow)),
        () = stopping(shutdown) => Err(End::Closed(Close::GoingAway)),
        () = sleep_until(expires_at) => Err(End::Closed(Close::TokenExpired)),
        () = sleep_until(deadline) => {
            tracing::info!("a write waited past WS_WRITE_TIMEOUT_MS: closing the socket");
            Err(End::Closed(Close::TooSlow))
        }
    }
}
