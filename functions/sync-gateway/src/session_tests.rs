//! Session tests: the socket loop driven through channels, over an
//! in-memory change feed that answers with task-api's own decision
//! (`task_domain::changes::decide`), on tokio's paused clock. Every text
//! frame the gateway sends is checked against
//! `shared/contracts/schemas/sync-server-message.v1.json`.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use auth::Authenticator;
use auth::testing::{TEST_SECRET, sign, test_config, token_for};
use axum::extract::ws::{Message, Utf8Bytes};
use contracts::TaskSyncData;
use futures::channel::mpsc;
use futures::{Sink, StreamExt};
use serde_json::{Value, json};
use task_domain::changes::{Feed, decide};
use task_domain::stream::StreamPosition;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::feed::{ChangeFeed, FeedError, Page, Position};
use crate::hub::{Hub, Live};
use crate::protocol::{Close, ServerMessage};
use crate::session::{Context, End, SessionConfig, run};
use crate::token::{self, Verified};

pub(crate) const USER: &str = "alice";

/// One user's stream as task-api keeps it.
#[derive(Default)]
pub(crate) struct Stream {
    epoch: Uuid,
    events: Vec<TaskSyncData>,
    /// Offsets up to this one were pruned.
    pub(crate) pruned_through: i64,
    pub(crate) down: bool,
    /// Answers every page with this client error (task-api's 400).
    pub(crate) refuse: Option<u16>,
    /// Pages asked for (`after` calls).
    pub(crate) pages: usize,
}

#[derive(Clone, Default)]
pub(crate) struct MemFeed(pub(crate) Arc<Mutex<Stream>>);

fn sync(epoch: Uuid, offset: i64) -> TaskSyncData {
    TaskSyncData {
        task_id: Uuid::from_u128(offset as u128),
        user_id: USER.into(),
        sequence: 1,
        epoch: epoch.to_string(),
        offset,
        op: "deleted".into(),
        task: None,
        changed: vec![],
    }
}

impl MemFeed {
    pub(crate) fn with(offsets: i64) -> Self {
        let feed = MemFeed::default();
        feed.0.lock().unwrap().epoch = Uuid::new_v4();
        feed.commit(offsets);
        feed
    }

    pub(crate) fn epoch(&self) -> String {
        self.0.lock().unwrap().epoch.to_string()
    }

    /// Commits `n` more changes; returns their live form.
    pub(crate) fn commit(&self, n: i64) -> Vec<Arc<Live>> {
        (0..n).map(|_| self.commit_with(|_| {})).collect()
    }

    /// Commits one change, as `edit` makes it; returns its live form.
    pub(crate) fn commit_with(&self, edit: impl FnOnce(&mut TaskSyncData)) -> Arc<Live> {
        let mut stream = self.0.lock().unwrap();
        let mut data = sync(stream.epoch, stream.events.len() as i64 + 1);
        edit(&mut data);
        stream.events.push(data.clone());
        Arc::new(Live {
            epoch: data.epoch.clone(),
            offset: data.offset,
            text: ServerMessage::event(&data),
        })
    }
}

impl ChangeFeed for MemFeed {
    async fn head(&self, _token: &str) -> Result<Position, FeedError> {
        let stream = self.0.lock().unwrap();
        if stream.down {
            return Err(FeedError::Unavailable("down".into()));
        }
        Ok(Position {
            epoch: stream.epoch.to_string(),
            offset: stream.events.len() as i64,
        })
    }

    async fn after(&self, _: &str, epoch: &str, after: i64, limit: i64) -> Result<Page, FeedError> {
        let mut stream = self.0.lock().unwrap();
        stream.pages += 1;
        if stream.down {
            return Err(FeedError::Unavailable("down".into()));
        }
        if let Some(status) = stream.refuse {
            return Err(FeedError::Refused(
                reqwest::StatusCode::from_u16(status).unwrap(),
            ));
        }
        let head = StreamPosition {
            epoch: stream.epoch,
            offset: stream.events.len() as i64,
        };
        let rows = stream
            .events
            .iter()
            .filter(|e| e.offset > after && e.offset > stream.pruned_through)
            .take(limit as usize)
            .map(|e| (e.offset, json!({"data": e})))
            .collect();
        let epoch = Uuid::parse_str(epoch).unwrap_or_default();
        Ok(match decide(head, epoch, after, rows) {
            Feed::Events { events, .. } => Page::Events(
                events
                    .into_iter()
                    .map(|e| serde_json::from_value(e["data"].clone()).unwrap())
                    .collect(),
            ),
            Feed::Reset { epoch, .. } => Page::Reset {
                epoch: epoch.to_string(),
            },
        })
    }
}

/// The gateway's side of the socket: counts flushes.
struct CountingSink {
    inner: mpsc::Sender<Message>,
    flushes: Arc<AtomicUsize>,
}

impl Sink<Message> for CountingSink {
    type Error = mpsc::SendError;
    fn poll_ready(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_ready(cx)
    }
    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        Pin::new(&mut self.inner).start_send(item)
    }
    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Result<(), Self::Error>> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_close(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

pub(crate) struct Harness {
    pub(crate) feed: MemFeed,
    pub(crate) hub: Hub,
    pub(crate) config: SessionConfig,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) replays: Arc<tokio::sync::Semaphore>,
}

pub(crate) struct Client {
    pub(crate) to_server: mpsc::UnboundedSender<Result<Message, Infallible>>,
    pub(crate) from_server: mpsc::Receiver<Message>,
    pub(crate) flushes: Arc<AtomicUsize>,
    pub(crate) session: JoinHandle<End>,
}

fn config() -> SessionConfig {
    SessionConfig {
        auth_timeout: Duration::from_secs(5),
        ping_interval: Duration::from_secs(20),
        idle_timeout: Duration::from_secs(60),
        replay_page: 2,
        burst: 64,
        write_timeout: Duration::from_secs(10),
        // Off unless a test is about them: they would add feed reads.
        settle: Duration::ZERO,
        head_check: Duration::ZERO,
        max_per_user: 8,
        resumes_per_minute: 30,
    }
}

impl Harness {
    pub(crate) fn new(feed: MemFeed, queue: usize) -> Self {
        Self {
            feed,
            hub: Hub::new(queue),
            config: config(),
            shutdown: watch::channel(false).0,
            replays: Arc::new(tokio::sync::Semaphore::new(8)),
        }
    }

    /// A socket whose client reads at most `window` frames ahead.
    pub(crate) fn connect_with(&self, pre: Option<Verified>, window: usize) -> Client {
        self.connect_with_auth(pre, window, Authenticator::new(&test_config()))
    }

    pub(crate) fn connect_with_auth(
        &self,
        pre: Option<Verified>,
        window: usize,
        auth: Authenticator,
    ) -> Client {
        let (to_server, stream) = mpsc::unbounded();
        let (sink, from_server) = mpsc::channel(window);
        let flushes = Arc::new(AtomicUsize::new(0));
        let ctx = self.context(auth);
        let sink = CountingSink {
            inner: sink,
            flushes: flushes.clone(),
        };
        let session = tokio::spawn(run(ctx, sink, stream, pre));
        Client {
            to_server,
            from_server,
            flushes,
            session,
        }
    }

    /// What a session of this harness shares.
    pub(crate) fn context(&self, auth: Authenticator) -> Context<MemFeed> {
        Context {
            feed: self.feed.clone(),
            hub: self.hub.clone(),
            auth: Arc::new(auth),
            config: self.config,
            shutdown: self.shutdown.subscribe(),
            replays: self.replays.clone(),
        }
    }

    pub(crate) fn connect(&self, pre: Option<Verified>) -> Client {
        self.connect_with(pre, 1024)
    }

    pub(crate) async fn verified(&self, user: &str) -> Verified {
        let auth = Authenticator::new(&test_config());
        token::verify(&auth, &token_for(user, false)).await.unwrap()
    }

    pub(crate) fn publish(&self, events: &[Arc<Live>]) {
        for event in events {
            self.hub.publish(USER, event.clone());
        }
    }
}

fn server_schema() -> jsonschema::Validator {
    let resource = |text: &str| {
        jsonschema::Resource::from_contents(serde_json::from_str(text).unwrap()).unwrap()
    };
    jsonschema::options()
        .with_resource(
            "urn:todo-events:schema:task-snapshot:v1",
            resource(include_str!(
                "../../../shared/contracts/schemas/task-snapshot.json"
            )),
        )
        .with_resource(
            "urn:todo-events:schema:task-sync:v1",
            resource(include_str!(
                "../../../shared/contracts/schemas/task-sync.v1.json"
            )),
        )
        .build(
            &serde_json::from_str(include_str!(
                "../../../shared/contracts/schemas/sync-server-message.v1.json"
            ))
            .unwrap(),
        )
        .unwrap()
}

impl Client {
    pub(crate) fn say(&self, message: Value) {
        self.say_text(&message.to_string());
    }

    /// A text frame as written, JSON or not.
    pub(crate) fn say_text(&self, text: &str) {
        self.to_server
            .unbounded_send(Ok(Message::Text(Utf8Bytes::from(text))))
            .unwrap();
    }

    /// The next text frame (schema-checked) or close frame, skipping pings.
    pub(crate) async fn next(&mut self) -> Value {
        loop {
            match self.from_server.next().await {
                Some(Message::Text(text)) => {
                    let value: Value = serde_json::from_str(&text).unwrap();
                    let errors: Vec<String> = server_schema()
                        .iter_errors(&value)
                        .map(|e| e.to_string())
                        .collect();
                    assert!(errors.is_empty(), "{value} breaks the schema: {errors:?}");
                    return value;
                }
                Some(Message::Close(Some(frame))) => return json!({"close": frame.code}),
                Some(Message::Ping(_)) => {}
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The offsets of the next `n` events.
    pub(crate) async fn offsets(&mut self, n: usize) -> Vec<i64> {
        let mut offsets = Vec::with_capacity(n);
        for _ in 0..n {
            let event = self.next().await;
            assert_eq!(event["type"], "event", "{event}");
            offsets.push(event["offset"].as_i64().unwrap());
        }
        offsets
    }

    pub(crate) async fn ended(self) -> End {
        self.session.await.unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn header_auth_gets_hello_then_each_live_offset_once_in_order() {
    let h = Harness::new(MemFeed::with(3), 16);
    let mut client = h.connect(Some(h.verified(USER).await));
    let hello = client.next().await;
    assert_eq!(
        hello,
        json!({"type": "hello", "epoch": h.feed.epoch(), "offset": 3})
    );
    let live = h.feed.commit(2);
    // A redelivery of 4 and an old 3 around the real ones.
    h.publish(&[live[0].clone(), live[0].clone(), live[1].clone()]);
    assert_eq!(client.offsets(2).await, vec![4, 5]);
    // Another user's socket sees none of it.
    let bob = h.connect(Some(h.verified("bob").await));
    drop(bob);
    assert_eq!(
        client.flushes.load(Ordering::SeqCst),
        2,
        "hello, then one burst"
    );
}

#[tokio::test(start_paused = true)]
async fn the_first_message_must_be_a_valid_auth_in_time() {
    let h = Harness::new(MemFeed::with(0), 16);
    let mut ok = h.connect(None);
    ok.say(json!({"type": "auth", "token": token_for(USER, false)}));
    assert_eq!(ok.next().await["type"], "hello");

    let mut silent = h.connect(None);
    assert_eq!(
        silent.next().await,
        json!({"close": 4401}),
        "no auth within 5 s"
    );
    assert_eq!(silent.ended().await, End::Closed(Close::Unauthenticated));

    let forged = sign(
        &json!({"sub": USER, "exp": 4_000_000_000u64}),
        "another-secret-another-secret-000",
    );
    let expired = sign(&json!({"sub": USER, "exp": 1_000}), TEST_SECRET);
    for first in [
        json!({"type": "auth", "token": forged}),
        json!({"type": "auth", "token": expired}),
        json!({"type": "resume", "epoch": "e", "offset": 0}),
        json!({"type": "auth", "token": ""}),
    ] {
        let mut client = h.connect(None);
        client.say(first.clone());
        assert_eq!(client.next().await, json!({"close": 4401}), "{first}");
    }
}

#[tokio::test(start_paused = true)]
async fn resume_replays_then_goes_live_with_no_gap_and_no_duplicate() {
    let h = Harness::new(MemFeed::with(6), 16);
    let mut client = h.connect(Some(h.verified(USER).await));
    assert_eq!(client.next().await["offset"], 6);
    // 7 and 8 commit and reach the socket's queue while the client asks
    // to resume from 2: the replay covers them, the live copies are skipped.
    let live = h.feed.commit(2);
    client.say(json!({"type": "resume", "epoch": h.feed.epoch(), "offset": 2}));
    h.publish(&live);
    assert_eq!(client.offsets(6).await, vec![3, 4, 5, 6, 7, 8]);
    let next = h.feed.commit(1);
    h.publish(&next);
    assert_eq!(
        client.offsets(1).await,
        vec![9],
        "live again, nothing repeated"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hole_in_the_live_stream_is_filled_from_the_feed() {
    let h = Harness::new(MemFeed::with(2), 16);
    let mut client = h.connect(Some(h.verified(USER).await));
    client.next().await;
    let live = h.feed.commit(3);
    // 3 and 4 never arrive live (a lost push): 5 brings them.
    h.publish(&live[2..]);
    assert_eq!(client.offsets(3).await, vec![3, 4, 5]);
}

#[tokio::test(start_paused = true)]
async fn positions_outside_the_history_get_reset_at_the_head() {
    let h = Harness::new(MemFeed::with(5), 16);
    h.feed.0.lock().unwrap().pruned_through = 3;
    let mut client = h.connect(Some(h.verified(USER).await));
    client.next().await;
    let head = json!({"type": "reset", "epoch": h.feed.epoch(), "offset": 5});
    client.say(json!({"type": "resume", "epoch": h.feed.epoch(), "offset": 1}));
    assert_eq!(client.next().await, head, "pruned");
    client.say(json!({"type": "resume", "epoch": Uuid::new_v4().to_string(), "offset": 5}));
    assert_eq!(client.next().await, head, "another epoch");
    client.say(json!({"type": "resume", "epoch": h.feed.epoch(), "offset": 3}));
    assert_eq!(client.offsets(2).await, vec![4, 5], "3 is still enough");
    h.publish(&h.feed.commit(1));
    assert_eq!(client.offsets(1).await, vec![6]);
}

#[tokio::test(start_paused = true)]
async fn a_slow_client_is_closed_with_4429_and_loses_nothing_on_resume() {
    let h = Harness::new(MemFeed::with(0), 4);
    // The client reads nothing: the gateway's writes stall after a frame.
    let mut slow = h.connect_with(Some(h.verified(USER).await), 0);
    tokio::task::yield_now().await;
    let live = h.feed.commit(10);
    for event in &live {
        h.hub.publish(USER, event.clone());
        tokio::task::yield_now().await;
    }
    let mut got = Vec::new();
    let close = loop {
        let frame = slow.next().await;
        match frame["type"].as_str() {
            Some("event") => got.push(frame["offset"].as_i64().unwrap()),
            Some("hello") => {}
            _ => break frame,
        }
    };
    assert_eq!(close, json!({"close": 4429}));
    assert!(got.len() < 10, "cut off before the end: {got:?}");
    assert_eq!(got, (1..=got.len() as i64).collect::<Vec<_>>(), "in order");
    assert_eq!(slow.ended().await, End::Closed(Close::TooSlow));

    let mut again = h.connect(Some(h.verified(USER).await));
    assert_eq!(again.next().await["offset"], 10);
    let last = *got.last().unwrap_or(&0);
    again.say(json!({"type": "resume", "epoch": h.feed.epoch(), "offset": last}));
    let rest = again.offsets(10 - got.len()).await;
    assert_eq!(rest, (last + 1..=10).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn an_expiring_token_closes_with_4402_unless_a_fresh_one_comes() {
    let mut h = Harness::new(MemFeed::with(0), 16);
    h.config.ping_interval = Duration::from_secs(300);
    h.config.idle_timeout = Duration::from_secs(600);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let short = |user: &str, secs: i64| sign(&json!({"sub": user, "exp": now + secs}), TEST_SECRET);

    let mut expiring = h.connect(None);
    expiring.say(json!({"type": "auth", "token": short(USER, 60)}));
    expiring.next().await;
    let started = tokio::time::Instant::now();
    assert_eq!(expiring.next().await, json!({"close": 4402}));
    assert!(
        started.elapsed() >= Duration::from_secs(58),
        "{:?}",
        started.elapsed()
    );

    let mut renewed = h.connect(None);
    renewed.say(json!({"type": "auth", "token": short(USER, 60)}));
    renewed.next().await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    renewed.say(json!({"type": "auth", "token": short(USER, 3600)}));
    tokio::time::sleep(Duration::from_secs(60)).await;
    renewed.say(json!({"type": "ping"}));
    assert_eq!(renewed.next().await, json!({"type": "pong"}), "still open");
    renewed.say(json!({"type": "auth", "token": short("bob", 3600)}));
    assert_eq!(
        renewed.next().await,
        json!({"close": 4401}),
        "another user's token"
    );
}

#[tokio::test(start_paused = true)]
async fn silence_closes_with_4408_and_pongs_keep_a_socket() {
    let h = Harness::new(MemFeed::with(0), 16);
    let mut silent = h.connect(Some(h.verified(USER).await));
    silent.next().await;
    let started = tokio::time::Instant::now();
    assert_eq!(silent.next().await, json!({"close": 4408}));
    assert!(started.elapsed() >= Duration::from_secs(60));

    let mut alive = h.connect(Some(h.verified(USER).await));
    alive.next().await;
    for _ in 0..6 {
        // Answer each ping the gateway sends, as a browser does.
        match alive.from_server.next().await {
            Some(Message::Ping(_)) => alive
                .to_server
                .unbounded_send(Ok(Message::Pong(Default::default())))
                .unwrap(),
            other => panic!("expected a ping, got {other:?}"),
        }
    }
    alive.say(json!({"type": "ping"}));
    assert_eq!(
        alive.next().await,
        json!({"type": "pong"}),
        "open after 2 minutes"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_says_going_away_and_bad_messages_get_4400() {
    let h = Harness::new(MemFeed::with(0), 16);
    let mut client = h.connect(Some(h.verified(USER).await));
    client.next().await;
    let mut waiting = h.connect(None);
    h.shutdown.send(true).unwrap();
    assert_eq!(client.next().await, json!({"close": 1001}));
    assert_eq!(
        waiting.next().await,
        json!({"close": 1001}),
        "also before auth"
    );

    let h = Harness::new(MemFeed::with(0), 16);
    for bad in [
        json!({"type": "subscribe"}),
        json!({"type": "resume", "epoch": "e"}),
    ] {
        let mut client = h.connect(Some(h.verified(USER).await));
        client.next().await;
        client.say(bad.clone());
        assert_eq!(client.next().await, json!({"close": 4400}), "{bad}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_feed_closes_with_try_again_later() {
    let h = Harness::new(MemFeed::with(3), 16);
    let mut client = h.connect(Some(h.verified(USER).await));
    client.next().await;
    h.feed.0.lock().unwrap().down = true;
    client.say(json!({"type": "resume", "epoch": h.feed.epoch(), "offset": 0}));
    assert_eq!(client.next().await, json!({"close": 1013}));
    let mut late = h.connect(Some(h.verified(USER).await));
    assert_eq!(
        late.next().await,
        json!({"close": 1013}),
        "no head, no hello"
    );
}

#[test]
fn the_client_schema_accepts_exactly_what_the_gateway_parses() {
    let schema = jsonschema::validator_for(
        &serde_json::from_str(include_str!(
            "../../../shared/contracts/schemas/sync-client-message.v1.json"
        ))
        .unwrap(),
    )
    .unwrap();
    for message in [
        json!({"type": "auth", "token": "t"}),
        json!({"type": "auth", "token": "t", "resume": {"epoch": "e", "offset": 3}}),
        json!({"type": "resume", "epoch": "e", "offset": 0}),
        json!({"type": "ping"}),
        json!({"type": "resume", "epoch": "e"}),
        json!({"type": "resume", "epoch": "e", "offset": -1}),
        json!({"type": "resume", "epoch": "", "offset": 0}),
        json!({"type": "resume", "epoch": "e", "offset": 1.5}),
        json!({"type": "auth", "token": ""}),
        json!({"type": "auth", "token": "t", "resume": {"epoch": "e", "offset": -2}}),
        json!({"type": "auth", "token": "t", "resume": {"epoch": "", "offset": 0}}),
        json!({"type": "auth", "token": "t", "resume": {"epoch": "e"}}),
        json!({"type": "auth", "token": "t", "resume": {"epoch": "e", "offset": 0, "x": 1}}),
        json!({"type": "auth", "token": "t", "user": "bob"}),
        json!({"type": "subscribe"}),
        json!({"type": "ping", "extra": 1}),
        json!({"type": "resume", "epoch": "e", "offset": u64::MAX}),
        json!({"type": "resume", "epoch": "e", "offset": i64::MAX}),
    ] {
        assert_eq!(
            schema.is_valid(&message),
            crate::protocol::parse(&message.to_string()).is_ok(),
            "{message}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_reads_is_closed_all_the_same() {
    let h = Harness::new(MemFeed::with(0), 4);
    let stuck = h.connect_with(Some(h.verified(USER).await), 0);
    // Kept open and never read: the gateway's writes stall for good.
    let Client {
        session,
        from_server: _unread,
        to_server: _open,
        ..
    } = stuck;
    tokio::task::yield_now().await;
    for event in h.feed.commit(20) {
        h.hub.publish(USER, event);
        tokio::task::yield_now().await;
    }
    // The close frame itself may wait CLOSE_WRITE_TIMEOUT on the stuck
    // writer; a test bound of exactly that would race it on the paused clock.
    let end = tokio::time::timeout(crate::session::CLOSE_WRITE_TIMEOUT * 3, session)
        .await
        .expect("the session ends though its writes never complete")
        .unwrap();
    assert_eq!(end, End::Closed(Close::TooSlow));
}
