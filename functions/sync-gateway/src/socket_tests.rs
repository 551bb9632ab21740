//! Sessions over real WebSockets in-process: axum's upgrade with the
//! gateway's buffer settings ([`crate::ws::configure`]) on a loopback
//! port, a tokio-tungstenite client, the in-memory feed of session_tests.
//! What only a real tungstenite shows: frame-size limits both ways and
//! the close handshake.

use std::net::SocketAddr;
use std::time::Duration;

use auth::Authenticator;
use auth::testing::{test_config, token_for};
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::config::{
    DEFAULT_WS_MAX_MESSAGE, DEFAULT_WS_READ_BUFFER, DEFAULT_WS_WRITE_BUFFER, SocketBuffers,
};
use crate::protocol::Close;
use crate::session::{End, run};
use crate::session_tests::{Harness, MemFeed, USER};
use crate::ws::configure;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

/// Serves `/ws` with the harness's sessions and the default buffers; each
/// session's end is sent on the returned channel.
async fn serve(h: &Harness) -> (SocketAddr, mpsc::UnboundedReceiver<End>) {
    let buffers = SocketBuffers {
        read: DEFAULT_WS_READ_BUFFER,
        write: DEFAULT_WS_WRITE_BUFFER,
        max_message: DEFAULT_WS_MAX_MESSAGE,
    };
    let ctx = h.context(Authenticator::new(&test_config()));
    let (ends, ended) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/ws",
        get(move |ws: WebSocketUpgrade| async move {
            configure(ws, buffers).on_upgrade(move |socket| async move {
                let (sink, stream) = socket.split();
                let _ = ends.send(run(ctx, sink, stream, None).await);
            })
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, ended)
}

/// Connects and authenticates; returns the socket after its hello.
async fn connect(address: SocketAddr) -> (Socket, Value) {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/ws"))
        .await
        .unwrap();
    let auth = json!({"type": "auth", "token": token_for(USER, false)});
    socket.send(Message::text(auth.to_string())).await.unwrap();
    let hello = next(&mut socket).await;
    assert_eq!(hello["type"], "hello", "{hello}");
    (socket, hello)
}

/// The next text frame as JSON, `{"close": code}`, or `{"gone": …}`.
async fn next(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a frame in time");
        return match frame {
            Some(Ok(Message::Text(text))) => serde_json::from_str(&text).unwrap(),
            Some(Ok(Message::Close(frame))) => {
                json!({"close": frame.map_or(1005, |f| u16::from(f.code))})
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => json!({"gone": error.to_string()}),
            None => json!({"gone": "end of stream"}),
        };
    }
}

/// The largest task an event can carry: 10,000 four-byte characters of
/// description (task-domain's MAX_DESCRIPTION_CHARS) make a ~40 KB frame,
/// larger than any client message and than the write buffer. It goes out
/// live, and again in a replay.
#[tokio::test]
async fn an_event_of_the_largest_task_reaches_the_client_live_and_replayed() {
    let h = Harness::new(MemFeed::with(1), 16);
    let (address, _ended) = serve(&h).await;
    let (mut socket, _) = connect(address).await;
    let description = "\u{1F600}".repeat(task_domain::model::MAX_DESCRIPTION_CHARS);
    let big = h.feed.commit_with(|data| {
        let mut task = contracts::testing::task_snapshot(data.task_id, USER, 1);
        task.description = description.clone();
        data.op = "created".into();
        data.task = Some(task);
    });
    assert!(big.text.len() > 40_000, "{}", big.text.len());
    h.publish(&[big]);
    let event = next(&mut socket).await;
    assert_eq!(
        (&event["type"], &event["offset"]),
        (&json!("event"), &json!(2))
    );
    assert_eq!(event["data"]["task"]["description"], description.as_str());

    let (mut again, _) = connect(address).await;
    let resume = json!({"type": "resume", "epoch": h.feed.epoch(), "offset": 0});
    again.send(Message::text(resume.to_string())).await.unwrap();
    assert_eq!(next(&mut again).await["offset"], 1);
    let replayed = next(&mut again).await;
    assert_eq!(
        replayed["data"]["task"]["description"],
        description.as_str()
    );
}

/// A client's close is answered with the close handshake (the client sees
/// its own code back, not an abnormal 1006).
#[tokio::test]
async fn a_client_close_is_answered() {
    let h = Harness::new(MemFeed::with(0), 16);
    let (address, mut ended) = serve(&h).await;
    let (mut socket, _) = connect(address).await;
    socket
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .unwrap();
    assert_eq!(next(&mut socket).await, json!({"close": 1000}));
    assert_eq!(ended.recv().await, Some(End::Gone));
}

/// A client message over WS_MAX_MESSAGE_BYTES is closed with 1009.
#[tokio::test]
async fn an_oversized_client_message_gets_1009() {
    let h = Harness::new(MemFeed::with(0), 16);
    let (address, mut ended) = serve(&h).await;
    let (mut socket, _) = connect(address).await;
    let huge = json!({"type": "auth", "token": "x".repeat(DEFAULT_WS_MAX_MESSAGE + 1)});
    socket.send(Message::text(huge.to_string())).await.unwrap();
    assert_eq!(next(&mut socket).await, json!({"close": 1009}));
    assert_eq!(ended.recv().await, Some(End::Closed(Close::TooBig)));
}

/// The real route of `crate::app` with these socket limits (its change
/// feed is unreachable: a session that gets past its auth ends with 1013).
async fn serve_app(h: &Harness, sessions: crate::ws::Sessions) -> SocketAddr {
    let ctx = h.context(Authenticator::new(&test_config()));
    let state = crate::AppState {
        session: crate::session::Context {
            feed: crate::feed::TaskApiFeed::new("http://127.0.0.1:1", WAIT).unwrap(),
            hub: ctx.hub,
            auth: ctx.auth,
            config: ctx.config,
            shutdown: ctx.shutdown,
            replays: ctx.replays,
        },
        buffers: SocketBuffers {
            read: DEFAULT_WS_READ_BUFFER,
            write: DEFAULT_WS_WRITE_BUFFER,
            max_message: DEFAULT_WS_MAX_MESSAGE,
        },
        sessions,
        pubsub: "pubsub".into(),
        metrics: crate::GatewayMetrics::default(),
    };
    let app = crate::app(
        state,
        dapr_http::AppToken::new(Some("t"), None),
        telemetry::metrics::Metrics::new("test"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// Asserts the upgrade is refused with 503 problem+json and Retry-After.
async fn assert_refused(request: impl IntoClientRequest + Unpin) {
    let error = tokio_tungstenite::connect_async(request)
        .await
        .expect_err("no upgrade");
    let tokio_tungstenite::tungstenite::Error::Http(response) = error else {
        panic!("not an HTTP refusal: {error}");
    };
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}

/// A replica at WS_MAX_SOCKETS refuses the upgrade: 503 problem+json with
/// Retry-After, before any session starts.
#[tokio::test]
async fn a_replica_at_its_socket_cap_answers_503() {
    let h = Harness::new(MemFeed::with(0), 16);
    let address = serve_app(&h, crate::ws::Sessions::with_limit(0)).await;
    assert_refused(format!("ws://{address}/ws/tasks")).await;
}

/// Sockets without a token count against WS_MAX_PENDING_AUTH until they
/// authenticate: one more anonymous upgrade is a 503, while one whose
/// header carries a verified token still gets in; the place comes back
/// when the waiting socket sends its `auth`.
#[tokio::test]
async fn anonymous_sockets_are_capped_until_they_authenticate() {
    let h = Harness::new(MemFeed::with(0), 16);
    let sessions = crate::ws::Sessions::with_limits(100, 1);
    let address = serve_app(&h, sessions.clone()).await;
    let url = format!("ws://{address}/ws/tasks");
    let (mut waiting, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    assert_eq!(sessions.pending(), 1);
    assert_refused(url.as_str()).await;

    let mut request = url.as_str().into_client_request().unwrap();
    let bearer = format!("Bearer {}", token_for(USER, false));
    request
        .headers_mut()
        .insert("authorization", bearer.parse().unwrap());
    let (_with_header, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(sessions.pending(), 1);

    let auth = json!({"type": "auth", "token": token_for(USER, false)});
    waiting.send(Message::text(auth.to_string())).await.unwrap();
    // Past its auth, the session reads the (unreachable) feed's head and
    // closes with 1013; the pending place was given back before that.
    assert_eq!(next(&mut waiting).await, json!({"close": 1013}));
    assert_eq!(sessions.pending(), 0);
    let (_another, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
}

/// The place a socket holds while it waits for its `auth` is given back
/// once it authenticates, while the session goes on (not only at its end).
#[tokio::test]
async fn the_authenticated_hook_runs_at_auth_not_at_the_end() {
    let h = Harness::new(MemFeed::with(0), 16);
    let ctx = h.context(Authenticator::new(&test_config()));
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = flag.clone();
    let app = Router::new().route(
        "/ws",
        get(move |ws: WebSocketUpgrade| async move {
            ws.on_upgrade(move |socket| async move {
                let (sink, stream) = socket.split();
                let hook = move || seen.store(true, std::sync::atomic::Ordering::SeqCst);
                crate::session::run_then(ctx, sink, stream, None, hook).await;
            })
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/ws"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!flag.load(std::sync::atomic::Ordering::SeqCst));
    let auth = json!({"type": "auth", "token": token_for(USER, false)});
    socket.send(Message::text(auth.to_string())).await.unwrap();
    assert_eq!(next(&mut socket).await["type"], "hello");
    assert!(flag.load(std::sync::atomic::Ordering::SeqCst));
    socket
        .send(Message::text(r#"{"type":"ping"}"#))
        .await
        .unwrap();
    assert_eq!(next(&mut socket).await["type"], "pong");
}
