//! A WebSocket client of the sync gateway for the stack tests: connect
//! with the token in the header or in the first message, read frames with
//! a deadline, and follow a user's stream by the protocol's rule.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// `ws://…/ws/tasks` of the gateway whose base URL is in `var` (scripts/test
/// sets it), else `default`.
pub fn gateway_url(var: &str, default: &str) -> String {
    std::env::var(var)
        .unwrap_or_else(|_| default.to_owned())
        .replacen("http", "ws", 1)
        + "/ws/tasks"
}

/// Opens `url`, with the token in the header or in the first message.
pub async fn connect(url: &str, token: &str, in_header: bool) -> Result<Socket, WsError> {
    let mut request = url.into_client_request()?;
    if in_header {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    if !in_header {
        say(&mut socket, json!({"type": "auth", "token": token})).await;
    }
    Ok(socket)
}

pub async fn say(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .expect("send");
}

/// The next text frame as JSON, `{"close": code}` for a close frame, or
/// `{"gone": …}` when the connection ends without one; `None` on timeout.
pub async fn next(socket: &mut Socket, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()?;
        return Some(match frame {
            Some(Ok(Message::Text(text))) => serde_json::from_str(&text).expect("JSON"),
            Some(Ok(Message::Close(frame))) => {
                json!({"close": frame.map(|f| u16::from(f.code)).unwrap_or(1005)})
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => json!({"gone": error.to_string()}),
            None => json!({"gone": "end of stream"}),
        });
    }
}

/// Reads the `hello` that opens every session.
pub async fn hello(socket: &mut Socket) -> Value {
    let hello = next(socket, Duration::from_secs(10)).await.expect("hello");
    assert_eq!(hello["type"], "hello", "{hello}");
    hello
}

/// A client's view of its stream: what it applied, what came twice.
#[derive(Debug, Default)]
pub struct Follower {
    pub epoch: String,
    pub applied: Vec<i64>,
    pub duplicates: Vec<i64>,
    pub user: String,
}

impl Follower {
    pub fn new(user: &str) -> Self {
        Self {
            user: user.to_owned(),
            ..Self::default()
        }
    }

    pub fn last(&self) -> i64 {
        self.applied.last().copied().unwrap_or(0)
    }

    /// Applies an event frame by the protocol's rule; false for a gap. An
    /// event of another user fails the test.
    pub fn apply(&mut self, frame: &Value) -> bool {
        assert_eq!(frame["data"]["user_id"], self.user.as_str(), "{frame}");
        let offset = frame["offset"].as_i64().expect("offset");
        if offset <= self.last() {
            self.duplicates.push(offset);
            true
        } else if offset == self.last() + 1 {
            self.applied.push(offset);
            true
        } else {
            false
        }
    }

    /// Reads until `until` is applied; returns the first non-event frame
    /// (a close, the connection's end) or `None` when done.
    pub async fn follow(
        &mut self,
        socket: &mut Socket,
        until: i64,
        wait: Duration,
    ) -> Option<Value> {
        while self.last() < until {
            let frame = next(socket, wait)
                .await
                .unwrap_or_else(|| panic!("{}: stuck at {} of {until}", self.user, self.last()));
            if frame["type"] != "event" {
                return Some(frame);
            }
            self.apply(&frame);
        }
        None
    }
}
