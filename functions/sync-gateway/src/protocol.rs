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
    /// one expires. A first `auth` may carry the client's position: the
    /// gateway then replays from it right after the hello, before any live
    /// event, so the wire never carries an event the client will drop.
    Auth {
        token: String,
        #[serde(default)]
        resume: Option<At>,
    },
    /// Replay every event after `offset` of `epoch`, then go on live.
    Resume { epoch: String, offset: i64 },
    /// An application-level heartbeat (for clients that cannot see
    /// WebSocket pings); answered with `pong`. A struct variant, not a
    /// unit one: serde applies `deny_unknown_fields` only to the fields of
    /// a struct variant, so a unit `Ping` took `{"type":"ping","x":1}`.
    Ping {},
}

/// A client's position: the last event it applied.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct At {
    pub epoch: String,
    pub offset: i64,
}

/// Why a client's message is refused (closed with 4400, but for an empty
/// token in the first `auth`: see `session::authenticate`).
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, or not one of the messages (serde's own words, which
    /// list the known types).
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A known message outside the schema's bounds (an `auth` with an
    /// empty token: as the first message that is no token, 4401).
    #[error("{0}")]
    Invalid(&'static str),
    /// A position (in `resume`, or in `auth`) outside the schema's bounds.
    #[error("{0}")]
    Position(&'static str),
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
    /// 1009: a client message over `WS_MAX_MESSAGE_BYTES`; fix the client.
    TooBig,
    /// 1013: the change feed could not be read, or the gateway (or this
    /// user) has as many sockets or replays as it takes; reconnect after
    /// a backoff and resume.
    TryAgainLater,
    /// 4400: a message the protocol does not know (the first one too);
    /// fix the client.
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
            Close::TooBig => 1009,
            Close::TryAgainLater => 1013,
            Close::BadMessage => 4400,
            Close::Unauthenticated => 4401,
            Close::TokenExpired => 4402,
            Close::Idle => 4408,
            Close::TooSlow => 4429,
        }
    }

    /// Whether a client resumes after it (all but a bad or oversized
    /// message and a refused token).
    pub fn resumable(self) -> bool {
        !matches!(
            self,
            Close::BadMessage | Close::TooBig | Close::Unauthenticated
        )
    }

    fn reason(self) -> &'static str {
        match self {
            Close::GoingAway => "going away: reconnect and resume",
            Close::TooBig => "message too big",
            Close::TryAgainLater => "busy or change feed unavailable: resume after a backoff",
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

/// Parses a client's text frame and holds it to the client schema's
/// bounds (a non-empty token and epoch, an offset of at least 0), so a
/// position outside the contract is a 4400 here, never a change-feed call.
pub fn parse(text: &str) -> Result<ClientMessage, ParseError> {
    let message: ClientMessage = serde_json::from_str(text)?;
    match &message {
        ClientMessage::Auth { token, .. } if token.is_empty() => {
            return Err(ParseError::Invalid("an empty token"));
        }
        ClientMessage::Auth {
            resume: Some(at), ..
        } => check(at.epoch.as_str(), at.offset)?,
        ClientMessage::Resume { epoch, offset } => check(epoch, *offset)?,
        _ => {}
    }
    Ok(message)
}

fn check(epoch: &str, offset: i64) -> Result<(), ParseError> {
    if epoch.is_empty() {
        return Err(ParseError::Position("an empty epoch"));
    }
    if offset < 0 {
        return Err(ParseError::Position("a negative offset"));
    }
    Ok(())
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
            ClientMessage::Auth {
                token: "t".into(),
                resume: None
            }
        );
        assert_eq!(
            parse(r#"{"type":"auth","token":"t","resume":{"epoch":"e","offset":2}}"#).unwrap(),
            ClientMessage::Auth {
                token: "t".into(),
                resume: Some(At {
                    epoch: "e".into(),
                    offset: 2
                })
            }
        );
        assert_eq!(
            parse(r#"{"type":"resume","epoch":"e","offset":4}"#).unwrap(),
            ClientMessage::Resume {
                epoch: "e".into(),
                offset: 4
            }
        );
        assert_eq!(parse(r#"{"type":"ping"}"#).unwrap(), ClientMessage::Ping {});
        for bad in [
            r#"{"type":"subscribe"}"#,
            r#"{"type":"resume","epoch":"e"}"#,
            r#"{"type":"auth","token":"t","user":"bob"}"#,
            r#"{"type":"auth","token":""}"#,
            r#"{"type":"auth","token":"t","resume":{"epoch":"e","offset":-1}}"#,
            r#"{"type":"resume","epoch":"e","offset":-1}"#,
            r#"{"type":"resume","epoch":"","offset":0}"#,
            r#"{"type":"resume","epoch":"e","offset":99999999999999999999}"#,
            r#"{"type":"ping","extra":1}"#,
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
            Close::TooBig,
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
