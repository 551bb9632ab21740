//! Junk on the gateway's socket (`/ws/tasks`): a binary frame, text that
//! is not JSON, a message over `WS_MAX_MESSAGE_BYTES`, a message of a type
//! the protocol does not have, and refused tokens in the first `auth`.
//! Each must end the socket with the close code functions/sync-gateway/
//! src/protocol.rs documents (`Close::code`), and only that socket.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::requests::Answer;

/// The gateway's default largest client message (sync-gateway
/// `DEFAULT_WS_MAX_MESSAGE`, 16 KiB); past it tungstenite refuses the frame.
const MAX_MESSAGE: usize = 16 * 1024;
const WAIT: Duration = Duration::from_secs(10);

/// One kind of junk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Junk {
    Binary,
    NotJson,
    Oversized,
    WrongType,
    /// An `auth` whose token is not valid.
    BadToken,
    /// An `auth` whose token expired.
    ExpiredToken,
}

impl Junk {
    pub const ALL: [Junk; 6] = [
        Junk::Binary,
        Junk::NotJson,
        Junk::Oversized,
        Junk::WrongType,
        Junk::BadToken,
        Junk::ExpiredToken,
    ];

    /// The close codes the protocol documents for it: 4400 a message
    /// outside the protocol (binary frames included), 1009 one over the
    /// size limit, 4401 a refused token, 4402 an expired one (4401 once
    /// past the leeway).
    pub fn closes(self) -> &'static [u16] {
        match self {
            Junk::Binary | Junk::NotJson | Junk::WrongType => &[4400],
            Junk::Oversized => &[1009],
            Junk::BadToken => &[4401],
            Junk::ExpiredToken => &[4401, 4402],
        }
    }

    /// Whether it is sent after a valid `auth` (the session is open).
    fn after_hello(self) -> bool {
        !matches!(self, Junk::BadToken | Junk::ExpiredToken)
    }

    fn frame(self, token: &str) -> Message {
        match self {
            Junk::Binary => Message::Binary(vec![0xde, 0xad, 0xbe, 0xef].into()),
            Junk::NotJson => Message::Text("{not json".into()),
            Junk::Oversized => {
                let big = json!({"type": "ping", "pad": "x".repeat(MAX_MESSAGE + 1024)});
                Message::Text(big.to_string().into())
            }
            Junk::WrongType => Message::Text(r#"{"type":"subscribe","topic":"*"}"#.into()),
            Junk::BadToken | Junk::ExpiredToken => {
                Message::Text(json!({"type": "auth", "token": token}).to_string().into())
            }
        }
    }
}

/// Judges how the socket ended.
pub fn judge(junk: Junk, close: Option<u16>) -> Answer {
    match close {
        Some(code) if junk.closes().contains(&code) => Answer::Refused,
        Some(code) => Answer::Unexpected(format!("closed with {code}, not {:?}", junk.closes())),
        None => Answer::Unexpected("the socket stayed open".into()),
    }
}

/// What the socket said next: a text frame, a close code, or the end.
enum Next {
    Text(Value),
    Closed(Option<u16>),
    Silent,
}

async fn next<S>(socket: &mut S) -> Next
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let Ok(frame) = tokio::time::timeout(WAIT, socket.next()).await else {
            return Next::Silent;
        };
        return match frame {
            Some(Ok(Message::Text(t))) => Next::Text(serde_json::from_str(&t).unwrap_or_default()),
            Some(Ok(Message::Close(f))) => Next::Closed(f.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => Next::Closed(None),
        };
    }
}

/// Opens a socket as `token`'s user (token in the first `auth`), sends
/// `junk` (after the hello, or as the `auth` itself) and reports the close.
pub async fn send(url: &str, junk: Junk, token: &str, bad_token: &str) -> Answer {
    let request = match url.into_client_request() {
        Ok(r) => r,
        Err(e) => return Answer::Unexpected(format!("bad URL: {e}")),
    };
    let mut socket = match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => socket,
        Err(e) => return Answer::Unanswered(format!("no socket: {e}")),
    };
    if junk.after_hello() {
        let auth = json!({"type": "auth", "token": token}).to_string();
        if socket.send(Message::Text(auth.into())).await.is_err() {
            return Answer::Unanswered("the socket closed before auth".into());
        }
        match next(&mut socket).await {
            Next::Text(hello) if hello["type"] == "hello" => {}
            Next::Text(other) => return Answer::Unexpected(format!("not a hello: {other}")),
            Next::Closed(code) => {
                return Answer::Unanswered(format!("closed before hello: {code:?}"));
            }
            Next::Silent => return Answer::Unanswered("no hello".into()),
        }
    }
    if socket.send(junk.frame(bad_token)).await.is_err() {
        return Answer::Unanswered("the socket closed before the junk".into());
    }
    // Live events of the user may come first; the close follows them.
    let answer = loop {
        match next(&mut socket).await {
            Next::Text(_) => {}
            Next::Closed(code) => break judge(junk, code),
            Next::Silent => break judge(junk, None),
        }
    };
    let _ = socket.close(None).await;
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_junk_has_its_documented_close() {
        assert_eq!(judge(Junk::Binary, Some(4400)), Answer::Refused);
        assert_eq!(judge(Junk::Oversized, Some(1009)), Answer::Refused);
        assert_eq!(judge(Junk::ExpiredToken, Some(4402)), Answer::Refused);
        assert!(matches!(
            judge(Junk::NotJson, Some(1011)),
            Answer::Unexpected(_)
        ));
        assert!(matches!(
            judge(Junk::WrongType, None),
            Answer::Unexpected(_)
        ));
    }

    #[test]
    fn the_oversized_frame_is_over_the_limit() {
        let Message::Text(t) = Junk::Oversized.frame("") else {
            panic!("text");
        };
        assert!(t.len() > MAX_MESSAGE);
        assert!(matches!(Junk::Binary.frame(""), Message::Binary(_)));
    }
}
