//! The two kinds of socket the bench opens, each reporting every task event
//! it receives as a [`Delivery`]:
//!
//! - the sync gateway's `/ws/tasks`: a bearer token on the upgrade, a
//!   `hello` frame, then one JSON `event` frame per change;
//! - Centrifugo's bidirectional WebSocket with its JSON protocol
//!   (centrifugal/protocol v0.19.2, client.proto): a `connect` command with
//!   the connection token, its reply listing the server-side subscriptions
//!   the token's `channels` claim made, then `push` replies carrying
//!   publications. Replies may share a frame, one per line (protocol
//!   encode.go writes a newline between them), and an empty reply `{}` is a
//!   ping that must be answered by an empty command, or the server ends the
//!   connection after its pong timeout (centrifuge client.go, checkPong).

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::bail;
use e2e_tests::bench::{self, event_task_id, now_us};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Which server a socket is connected to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Server {
    Gateway,
    Centrifugo,
}

/// One task event on one socket.
pub struct Delivery {
    pub server: Server,
    pub socket: usize,
    pub task: String,
    /// Receive time, µs since the epoch.
    pub at: i64,
}

/// Sockets that ended during the run: a run with any is not clean.
pub static CLOSED: AtomicUsize = AtomicUsize::new(0);

/// Where socket number `socket` connects, and from which loopback source.
pub struct Dial<'a> {
    pub to: bench::Dial<'a>,
    pub socket: usize,
}

/// Opens a gateway socket with `token` and reads it in the background.
pub async fn gateway(
    dial: Dial<'_>,
    token: &str,
    tx: mpsc::UnboundedSender<Delivery>,
) -> anyhow::Result<()> {
    let mut socket = bench::dial(&dial.to, Some(token)).await?;
    match socket.next().await {
        Some(Ok(Message::Text(t))) if t.contains("\"hello\"") => {}
        other => bail!("gateway socket {}: no hello: {other:?}", dial.socket),
    }
    let index = dial.socket;
    tokio::spawn(async move {
        while let Some(Ok(frame)) = socket.next().await {
            let at = now_us();
            let Message::Text(text) = frame else { continue };
            if let Some(task) = event_task_id(&text) {
                let _ = tx.send(Delivery {
                    server: Server::Gateway,
                    socket: index,
                    task,
                    at,
                });
            }
        }
        CLOSED.fetch_add(1, Ordering::Relaxed);
    });
    Ok(())
}

/// The claims of a Centrifugo connection token for `user`: the `channels`
/// claim subscribes the connection server-side to the user's channel (named
/// after the user, the record's partitionKey header; see
/// scripts/lib/centrifugo.sh).
pub fn centrifugo_claims(user: &str, now_s: u64) -> Value {
    json!({"sub": user, "exp": now_s + 3600, "channels": [user]})
}

/// Opens a Centrifugo socket, connects with `token`, checks that the
/// server subscribed it to `channel`, and reads it in the background.
pub async fn centrifugo(
    dial: Dial<'_>,
    token: &str,
    channel: &str,
    tx: mpsc::UnboundedSender<Delivery>,
) -> anyhow::Result<()> {
    let mut socket = bench::dial(&dial.to, None).await?;
    let connect = json!({"id": 1, "connect": {"token": token, "name": "bench_fanout"}});
    socket.send(Message::text(connect.to_string())).await?;
    let reply = loop {
        match socket.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.lines().next().unwrap_or_default())?;
                if v["id"] == 1 {
                    break v;
                }
            }
            Some(Ok(_)) => continue,
            other => bail!(
                "centrifugo socket {}: no connect reply: {other:?}",
                dial.socket
            ),
        }
    };
    if reply["connect"]["subs"].get(channel).is_none() {
        bail!(
            "centrifugo socket {}: not subscribed to {channel}: {reply}",
            dial.socket
        );
    }
    let index = dial.socket;
    tokio::spawn(async move {
        while let Some(Ok(frame)) = socket.next().await {
            let at = now_us();
            let Message::Text(text) = frame else { continue };
            for line in text.lines() {
                match centrifugo_reply(line) {
                    Reply::Ping => {
                        if socket.send(Message::text("{}")).await.is_err() {
                            break;
                        }
                    }
                    Reply::Task(task) => {
                        let _ = tx.send(Delivery {
                            server: Server::Centrifugo,
                            socket: index,
                            task,
                            at,
                        });
                    }
                    Reply::Other => {}
                }
            }
        }
        CLOSED.fetch_add(1, Ordering::Relaxed);
    });
    Ok(())
}

#[derive(Debug, PartialEq)]
enum Reply {
    Ping,
    /// A publication whose data is a task-updates CloudEvent: its task id.
    Task(String),
    Other,
}

/// One line of a Centrifugo JSON frame.
fn centrifugo_reply(line: &str) -> Reply {
    let Ok(v) = serde_json::from_str::<Value>(line) else {
        return Reply::Other;
    };
    if v.as_object().is_some_and(|o| o.is_empty()) {
        return Reply::Ping;
    }
    match v["push"]["pub"]["data"]["data"]["task_id"].as_str() {
        Some(task) => Reply::Task(task.to_owned()),
        None => Reply::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_reply_is_a_ping() {
        assert_eq!(centrifugo_reply("{}"), Reply::Ping);
    }

    #[test]
    fn a_publication_yields_the_cloud_event_task_id() {
        let line = r#"{"push":{"channel":"u1","pub":{"data":{"type":"com.todo.task.sync","data":{"task_id":"t-9"}}}}}"#;
        assert_eq!(centrifugo_reply(line), Reply::Task("t-9".into()));
    }

    #[test]
    fn other_replies_and_junk_are_ignored() {
        assert_eq!(centrifugo_reply(r#"{"id":3,"connect":{}}"#), Reply::Other);
        assert_eq!(centrifugo_reply("not json"), Reply::Other);
        assert_eq!(
            centrifugo_reply(r#"{"push":{"channel":"u1","pub":{"data":{"x":1}}}}"#),
            Reply::Other
        );
    }

    #[test]
    fn the_token_subscribes_only_to_the_users_channel() {
        let claims = centrifugo_claims("alice", 100);
        assert_eq!(claims["channels"], json!(["alice"]));
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["exp"], 3700);
    }
}
