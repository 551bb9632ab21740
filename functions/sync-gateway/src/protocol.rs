//! The `/ws/tasks` protocol: what a client may send, what the gateway
//! sends, and the close codes that tell a client what to do next.
//! JSON Schemas of both directions: `shared/contracts/schemas/
//! sync-client-message.v1.json` and `sync-server-message.v1.json` (tests
//! validate every message built here against them).
//!
//! A client keeps `(epoch, offset)`: the last event it applied. It applies
//! an event only when its offset is its own plus one; a smaller one is a
//! duplicate, a larger one a gap, after which it sends `resume`. The
//! gateway never sends a gap itself: it follows each socket's position and
//! fills holes from task-api's change feed.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use contracts::TaskSyncData;
use serde::{Deserialize, Serialize};

/// What a client sends (text frames).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientMessage {
    /// The first message when no `Authorization` header came with the
    /// upgrade; later, a fresh token for the same user before the current
    /// one expires.
    Auth { token: String },
    /// Replay every event after `offset` of `epoch`, then go on live.
    Resume { epoch: String, offset: i64 },
    /// An application-level heartbeat (for clients that cannot see
    /// WebSocket pings); answered with `pong`.
    Ping,
}

/// What the gateway sends (text frames).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage<'a> {
    /// After authentication: the user's current position. Live events
    /// continue from here; a client that has an older position of this
    /// epoch sends `resume`.
    Hello {
        epoch: &'a str,
        offset: i64,
    },
    /// One entry of the user's stream.
    Event {
        epoch: &'a str,
        offset: i64,
        data: &'a TaskSyncData,
    },
    /// The client's position is not in the history any more (another
    /// epoch, or pruned): reload the task list, then follow from here.
    Reset {
        epoch: &'a str,
        offset: i64,
    },
    Pong,
}

impl ServerMessage<'_> {
    /// The text frame; serialised once, shared by every socket it goes to.
    pub fn to_text(&self) -> Utf8Bytes {
        // A derive over strings and numbers cannot fail to serialise.
        Utf8Bytes::from(serde_json::to_string(self).unwrap_or_default())
    }

    /// The `event` frame of one stream entry.
    pub fn event(data: &TaskSyncData) -> Utf8Bytes {
        ServerMessage::Event {
            epoch: &data.epoch,
            offset: data.offset,
            data,
        }
        .to_text()
    }
}

/// Why the gateway closes a socket, each with what the client does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// 1001: the gateway is shutting down; reconnect (to another replica)
    /// and resume.
    GoingAway,
    /// 1013: the change feed could not be read; reconnect after a backoff
    /// and resume.
    TryAgainLater,
    /// 4400: a message the protocol does not know; fix the client.
    BadMessage,
    /// 4401: no valid token in time, or a refused one; get a new token.
    Unauthenticated,
    /// 4402: the token expired; connect with a fresh one and resume.
    TokenExpired,
    /// 4408: nothing heard from the client within the idle timeout
    /// (WebSocket pongs count); reconnect and resume.
    Idle,
    /// 4429: the client read too slowly and its queue filled; reconnect
    /// and resume (no event was skipped: the resume replays them).
    TooSlow,
}

impl Close {
    pub fn code(self) -> u16 {
        match self {
            Close::GoingAway => 1001,
            Close::TryAgainLater => 1013,
            Close::BadMessage => 4400,
            Close::Unauthenticated => 4401,
            Close::TokenExpired => 4402,
            Close::Idle => 4408,
            Close::TooSlow => 4429,
        }
    }

    /// Whether a client resumes after it (all but a bad message and a
    /// refused token).
    pub fn resumable(self) -> bool {
        !matches!(self, Close::BadMessage | Close::Unauthenticated)
    }

    fn reason(self) -> &'static str {
        match self {
            Close::GoingAway => "going away: reconnect and resume",
            Close::TryAgainLater => "change feed unavailable: resume after a backoff",
            Close::BadMessage => "unknown or malformed message",
            Close::Unauthenticated => "authentication required",
            Close::TokenExpired => "token expired: authenticate again and resume",
            Close::Idle => "idle timeout: reconnect and resume",
            Close::TooSlow => "too slow: reconnect and resume",
        }
    }

    /// The close frame.
    pub fn frame(self) -> Message {
        Message::Close(Some(CloseFrame {
            code: self.code(),
            reason: Utf8Bytes::from_static(self.reason()),
        }))
    }
}

/// Parses a client's text frame.
pub fn parse(text: &str) -> Result<ClientMessage, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn sync(offset: i64) -> TaskSyncData {
        TaskSyncData {
            task_id: uuid::Uuid::from_u128(1),
            user_id: "alice".into(),
            sequence: 1,
            epoch: "e1".into(),
            offset,
            op: "deleted".into(),
            task: None,
            changed: vec![],
        }
    }

    #[test]
    fn client_messages_parse_and_strangers_are_refused() {
        assert_eq!(
            parse(r#"{"type":"auth","token":"t"}"#).unwrap(),
            ClientMessage::Auth { token: "t".into() }
        );
        assert_eq!(
            parse(r#"{"type":"resume","epoch":"e","offset":4}"#).unwrap(),
            ClientMessage::Resume {
                epoch: "e".into(),
                offset: 4
            }
        );
        assert_eq!(parse(r#"{"type":"ping"}"#).unwrap(), ClientMessage::Ping);
        for bad in [
            r#"{"type":"subscribe"}"#,
            r#"{"type":"resume","epoch":"e"}"#,
            r#"{"type":"auth","token":"t","user":"bob"}"#,
            "not json",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_messages_have_their_documented_shape() {
        let hello: Value = serde_json::from_str(
            &ServerMessage::Hello {
                epoch: "e1",
                offset: 3,
            }
            .to_text(),
        )
        .unwrap();
        assert_eq!(hello, json!({"type": "hello", "epoch": "e1", "offset": 3}));
        let event: Value = serde_json::from_str(&ServerMessage::event(&sync(4))).unwrap();
        assert_eq!(event["type"], "event");
        assert_eq!(event["offset"], 4);
        assert_eq!(event["data"]["op"], "deleted");
        let pong: Value = serde_json::from_str(&ServerMessage::Pong.to_text()).unwrap();
        assert_eq!(pong, json!({"type": "pong"}));
    }

    #[test]
    fn close_codes_say_whether_to_resume() {
        assert_eq!(Close::GoingAway.code(), 1001);
        assert!(Close::TooSlow.resumable() && Close::TokenExpired.resumable());
        assert!(!Close::Unauthenticated.resumable() && !Close::BadMessage.resumable());
        let Message::Close(Some(frame)) = Close::TooSlow.frame() else {
            panic!("not a close frame")
        };
        assert_eq!(frame.code, 4429);
        // Close reasons must fit a control frame (125 bytes, 2 for the code).
        for close in [
            Close::GoingAway,
            Close::TryAgainLater,
            Close::BadMessage,
            Close::Unauthenticated,
            Close::TokenExpired,
            Close::Idle,
            Close::TooSlow,
        ] {
            assert!(close.reason().len() <= 123);
        }
    }
}
