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
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};

use crate::ends::{Guard, Window, bad_message, feed_end, read_failed, refused, stopping};
use crate::feed::{ChangeFeed, Page, Position};
use crate::hub::{Hub, Live, Subscription};
use crate::protocol::{self, At, ClientMessage, Close, ParseError, ServerMessage};
use crate::token::{self, Verified};

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
    /// After the hello, one catch-up from the feed this much later (zero:
    /// none), while the replica has had no push yet: a replica that has
    /// just started may accept sockets before its consumer joined, and an
    /// event published in between reaches it never (see README,
    /// Real-time sync).
    pub settle: Duration,
    /// A catch-up whenever no live event came for this long (zero: none):
    /// bounds how long anything a push missed can wait for the next event.
    pub head_check: Duration,
    /// Sockets one user may hold on this replica; more are closed with 1013.
    pub max_per_user: usize,
    /// Resumes one socket may ask for per minute; more close it with 1013.
    pub resumes_per_minute: u32,
}

/// The documented defaults (config.rs), for tests and tools.
impl Default for SessionConfig {
    fn default() -> Self {
        use crate::config::*;
        let ms = Duration::from_millis;
        Self {
            auth_timeout: ms(DEFAULT_WS_AUTH_TIMEOUT_MS),
            ping_interval: ms(DEFAULT_WS_PING_INTERVAL_MS),
            idle_timeout: ms(DEFAULT_WS_IDLE_TIMEOUT_MS),
            replay_page: DEFAULT_WS_REPLAY_PAGE,
            burst: DEFAULT_WS_BURST,
            write_timeout: ms(DEFAULT_WS_WRITE_TIMEOUT_MS),
            settle: ms(DEFAULT_WS_SETTLE_CATCHUP_MS),
            head_check: ms(DEFAULT_WS_HEAD_CHECK_MS),
            max_per_user: DEFAULT_WS_MAX_SOCKETS_PER_USER,
            resumes_per_minute: DEFAULT_WS_RESUMES_PER_MINUTE,
        }
    }
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
    /// Replays (change-feed catch-ups) running at once on this replica.
    pub replays: Arc<Semaphore>,
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
pub async fn run<F, Si, St, E>(ctx: Context<F>, sink: Si, stream: St, pre: Option<Verified>) -> End
where
    F: ChangeFeed,
    Si: Sink<Message> + Unpin,
    Si::Error: std::fmt::Display,
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: std::error::Error + 'static,
{
    run_then(ctx, sink, stream, pre, || ()).await
}

/// [`run`], calling `authenticated` once the socket has a verified token
/// (before its hello), so the upgrade can give back the place it held for
/// a socket still waiting for its `auth` (`WS_MAX_PENDING_AUTH`).
pub async fn run_then<F, Si, St, E, A>(
    ctx: Context<F>,
    mut sink: Si,
    mut stream: St,
    pre: Option<Verified>,
    authenticated: A,
) -> End
where
    F: ChangeFeed,
    Si: Sink<Message> + Unpin,
    Si::Error: std::fmt::Display,
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: std::error::Error + 'static,
    A: FnOnce(),
{
    let end = match session(&ctx, &mut sink, &mut stream, pre, authenticated).await {
        Ok(never) => match never {},
        Err(end) => end,
    };
    match end {
        End::Closed(close) => {
            tracing::debug!(code = close.code(), "closing socket");
            // A client that stopped reading must not hold the session: the
            // close frame gets a moment, then the connection is dropped.
            let _ = timeout(CLOSE_WRITE_TIMEOUT, sink.send(close.frame())).await;
        }
        // The client's own close: tungstenite queued the echo of its close
        // frame while reading it (0.29 protocol/mod.rs, do_close and
        // additional_send) and writes it on the next flush. Without this
        // flush the client sees 1006 instead of its close answered.
        End::Gone => {
            let _ = timeout(CLOSE_WRITE_TIMEOUT, sink.flush()).await;
        }
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
    /// The kick (this socket's queue overflowed) and shutdown, which every
    /// write watches.
    guard: Guard,
    /// When the next unprompted catch-up is due ([`SessionConfig::settle`],
    /// then [`SessionConfig::head_check`]).
    next_check: Option<Instant>,
    resumes: Window,
}

async fn session<F, Si, St, E>(
    ctx: &Context<F>,
    sink: &mut Si,
    stream: &mut St,
    pre: Option<Verified>,
    authenticated: impl FnOnce(),
) -> Result<std::convert::Infallible, End>
where
    F: ChangeFeed,
    Si: Sink<Message> + Unpin,
    Si::Error: std::fmt::Display,
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: std::error::Error + 'static,
{
    let (verified, at) = match pre {
        Some(verified) => (verified, None),
        None => authenticate(ctx, stream).await?,
    };
    authenticated();
    if ctx.hub.sockets_of(&verified.user) >= ctx.config.max_per_user {
        tracing::info!("the user is at WS_MAX_SOCKETS_PER_USER: socket refused");
        return Err(End::Closed(Close::TryAgainLater));
    }
    // Registered before the head is read: whatever commits after that read
    // is published after it, so it reaches this socket's queue.
    let Subscription {
        registration: _registration,
        live,
        kicked,
    } = ctx.hub.register(&verified.user);
    // Read before the head: once a push has come, the consumer was reading
    // before this head, so everything committed after it arrives live and
    // the settle catch-up has nothing to find.
    let settle = if ctx.hub.pushed() {
        ctx.config.head_check
    } else {
        ctx.config.settle
    };
    let position = ctx.feed.head(&verified.token).await.map_err(feed_end)?;
    let mut socket = Socket {
        ctx,
        sink,
        stream,
        verified,
        position,
        last_heard: Instant::now(),
        guard: Guard {
            kicked,
            shutdown: ctx.shutdown.clone(),
        },
        next_check: after(settle),
        resumes: Window::default(),
    };
    let hello = ServerMessage::Hello {
        epoch: &socket.position.epoch,
        offset: socket.position.offset,
    };
    socket.send(hello.to_text()).await?;
    // A position given with the auth is replayed before any live event
    // (they wait in the queue), so none reaches the wire twice.
    if let Some(at) = at {
        socket.resume(at).await?;
    }
    socket.serve(live).await
}

/// `now + wait`, or never for a zero wait.
fn after(wait: Duration) -> Option<Instant> {
    (!wait.is_zero()).then(|| Instant::now() + wait)
}

/// Waits for the first message, which must be a valid `auth` (with the
/// client's position, if it gave one).
async fn authenticate<F, St, E>(
    ctx: &Context<F>,
    stream: &mut St,
) -> Result<(Verified, Option<At>), End>
where
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: std::error::Error + 'static,
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
    let (token, resume) = match protocol::parse(&text) {
        Ok(ClientMessage::Auth { token, resume }) => (token, resume),
        // A message of the protocol before `auth`, or an auth without a
        // token: authentication is what is missing (4401, get a token).
        Ok(_) | Err(ParseError::Invalid(_)) => return Err(End::Closed(Close::Unauthenticated)),
        // Not a message of the protocol (not JSON, an unknown type or
        // field, a position outside the schema): a client bug that a new
        // token would not fix, so 4400 and the client stops instead of
        // reauthenticating in a loop.
        Err(error) => {
            tracing::info!(%error, "a first message outside the protocol");
            return Err(End::Closed(Close::BadMessage));
        }
    };
    let verified = token::verify(&ctx.auth, &token).await.map_err(refused)?;
    Ok((verified, resume))
}

/// The next text frame, skipping control frames.
async fn next_text<St, E>(stream: &mut St) -> Result<Utf8Bytes, End>
where
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: std::error::Error + 'static,
{
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Binary(_))) => return Err(End::Closed(Close::BadMessage)),
            Some(Err(error)) => return Err(read_failed(&error)),
            Some(Ok(Message::Close(_))) | None => return Err(End::Gone),
        }
    }
}

impl<F, Si, St, E> Socket<'_, F, Si, St>
where
    F: ChangeFeed,
    Si: Sink<Message> + Unpin,
    Si::Error: std::fmt::Display,
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: std::error::Error + 'static,
{
    async fn serve(
        &mut self,
        mut live: mpsc::Receiver<Arc<Live>>,
    ) -> Result<std::convert::Infallible, End> {
        let config = self.ctx.config;
        let mut shutdown = self.guard.shutdown.clone();
        let mut ping =
            tokio::time::interval_at(Instant::now() + config.ping_interval, config.ping_interval);
        loop {
            tokio::select! {
                biased;
                () = stopping(&mut shutdown) => return Err(End::Closed(Close::GoingAway)),
                _ = &mut self.guard.kicked => return Err(End::Closed(Close::TooSlow)),
                () = sleep_until(self.verified.expires_at) => {
                    return Err(End::Closed(Close::TokenExpired));
                }
                () = sleep_until(self.last_heard + config.idle_timeout) => {
                    return Err(End::Closed(Close::Idle));
                }
                _ = ping.tick() => self.write(Message::Ping(Default::default())).await?,
                message = self.stream.next() => self.on_message(message).await?,
                Some(event) = live.recv() => {
                    self.on_live(event, &mut live).await?;
                    self.next_check = after(config.head_check);
                }
                () = sleep_until(self.next_check.unwrap_or_else(Instant::now)),
                    if self.next_check.is_some() => {
                    self.next_check = after(config.head_check);
                    self.catch_up().await?;
                }
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
            Some(Err(error)) => return Err(read_failed(&error)),
            Some(Ok(Message::Close(_))) | None => return Err(End::Gone),
        };
        self.last_heard = Instant::now();
        match protocol::parse(&text) {
            Ok(ClientMessage::Ping {}) => self.send(ServerMessage::Pong.to_text()).await,
            // One resume at a time: the loop waits for it to finish before
            // it reads the next message.
            Ok(ClientMessage::Resume { epoch, offset }) => {
                if !self.resumes.admit(self.ctx.config.resumes_per_minute) {
                    tracing::info!("resumes beyond WS_RESUMES_PER_MINUTE");
                    return Err(End::Closed(Close::TryAgainLater));
                }
                self.resume(At { epoch, offset }).await
            }
            Ok(ClientMessage::Auth { token, .. }) => self.reauthenticate(&token).await,
            Err(error) => Err(bad_message(&error)),
        }
    }

    /// Replays from the client's position; a position of another epoch
    /// than the user's current one is a reset without asking the feed.
    async fn resume(&mut self, at: At) -> Result<(), End> {
        if at.epoch != self.position.epoch {
            return self.reset().await;
        }
        self.position.offset = at.offset;
        self.catch_up().await
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

    /// Replays the change feed from the position to its end (flushed); on
    /// a reset, moves to the head and tells the client. At most
    /// WS_MAX_REPLAYS run at once on a replica; one that waits longer than
    /// a write may is closed with 1013.
    async fn catch_up(&mut self) -> Result<(), End> {
        let replays = self.ctx.replays.clone();
        let Ok(Ok(_permit)) = timeout(self.ctx.config.write_timeout, replays.acquire()).await
        else {
            tracing::info!("no replay slot (WS_MAX_REPLAYS) in time");
            return Err(End::Closed(Close::TryAgainLater));
        };
        self.replay().await
    }

    async fn replay(&mut self) -> Result<(), End> {
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
    // watches them itself (see [`Guard::write`]).
    async fn feed(&mut self, text: Utf8Bytes) -> Result<(), End> {
        let (timeout, expires_at) = (self.ctx.config.write_timeout, self.verified.expires_at);
        let write = self.sink.feed(Message::Text(text));
        self.guard.write(timeout, expires_at, write).await
    }

    async fn flush(&mut self) -> Result<(), End> {
        let (timeout, expires_at) = (self.ctx.config.write_timeout, self.verified.expires_at);
        self.guard
            .write(timeout, expires_at, self.sink.flush())
            .await
    }

    async fn send(&mut self, text: Utf8Bytes) -> Result<(), End> {
        self.write(Message::Text(text)).await
    }

    async fn write(&mut self, message: Message) -> Result<(), End> {
        let (timeout, expires_at) = (self.ctx.config.write_timeout, self.verified.expires_at);
        let write = self.sink.send(message);
        self.guard.write(timeout, expires_at, write).await
    }
}
