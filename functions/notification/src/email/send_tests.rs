//! Whether a failed send may have reached the server, against real TCP
//! peers that follow an SMTP dialogue up to a chosen point and then stop
//! (mailpit cannot be made to hang after the data; its chaos mode, which
//! answers reply codes, drives the stack tests).

use std::time::Duration;

use chrono::Utc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use uuid::Uuid;

use super::{EmailError, EmailSender};
use crate::config::{SmtpConfig, SmtpTls};
use crate::view::ReminderView;

/// Where the peer stops following the dialogue.
#[derive(Clone, Copy)]
enum Stop {
    /// Accepts the connection and never greets.
    BeforeGreeting,
    /// Answers `RCPT` with 451.
    RefuseRecipient,
    /// Reads the whole message, then never answers it.
    SilentAfterData,
    /// Reads the whole message, then closes the connection.
    CloseAfterData,
}

async fn peer(stop: Stop) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        if matches!(stop, Stop::BeforeGreeting) {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return;
        }
        write.write_all(b"220 peer ESMTP\r\n").await.unwrap();
        let mut lines = BufReader::new(read).lines();
        let mut in_data = false;
        while let Ok(Some(line)) = lines.next_line().await {
            if in_data {
                if line == "." {
                    match stop {
                        Stop::SilentAfterData => tokio::time::sleep(Duration::from_secs(60)).await,
                        _ => return,
                    }
                }
                continue;
            }
            let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
            let reply: &[u8] = match verb.as_str() {
                "EHLO" => b"250 peer\r\n",
                "RCPT" if matches!(stop, Stop::RefuseRecipient) => b"451 try later\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go ahead\r\n"
                }
                "QUIT" => b"221 bye\r\n",
                _ => b"250 ok\r\n",
            };
            write.write_all(reply).await.unwrap();
        }
    });
    port
}

fn sender(port: u16) -> EmailSender {
    let config = SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        from: "reminders@example.test".into(),
        secret: None,
        secret_store: "secretstore".into(),
        username: None,
        password: None,
    };
    EmailSender::new(&config, None, "http://x")
        .unwrap()
        .with_timeout(Duration::from_millis(800))
}

fn view() -> ReminderView {
    ReminderView {
        reminder_id: Uuid::from_u128(1),
        task_id: Uuid::from_u128(2),
        user_id: "u".into(),
        sequence: 1,
        fire_at: Utc::now(),
        occurrence_due_at: None,
        channels: Vec::new(),
        title: "Water the plants".into(),
        email: None,
        time_zone: None,
        cancelled: false,
    }
}

async fn send(stop: Stop) -> Result<(), EmailError> {
    sender(peer(stop).await)
        .send("a@example.test", &view())
        .await
}

#[tokio::test]
async fn no_answer_after_the_message_is_an_unknown_outcome() {
    let result = send(Stop::SilentAfterData).await;
    assert!(matches!(result, Err(EmailError::Unknown(_))), "{result:?}");
}

#[tokio::test]
async fn a_connection_closed_after_the_message_is_an_unknown_outcome() {
    let result = send(Stop::CloseAfterData).await;
    assert!(matches!(result, Err(EmailError::Unknown(_))), "{result:?}");
}

#[tokio::test]
async fn failures_before_the_envelope_and_reply_codes_are_safe_to_retry() {
    let result = send(Stop::BeforeGreeting).await;
    assert!(
        matches!(result, Err(EmailError::Smtp(_))),
        "greeting timeout: {result:?}"
    );
    let result = send(Stop::RefuseRecipient).await;
    assert!(
        matches!(result, Err(EmailError::Smtp(_))),
        "451: {result:?}"
    );
    // A port nobody listens on: the connection is refused.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let result = sender(port).send("a@example.test", &view()).await;
    assert!(
        matches!(result, Err(EmailError::Smtp(_))),
        "refused: {result:?}"
    );
}

/// A non-ASCII address to a server without SMTPUTF8 (the peer offers no
/// extension): lettre refuses it before the envelope, and the same server
/// refuses it on every retry, so it fails at once.
#[tokio::test]
async fn a_non_ascii_address_the_server_cannot_take_fails_at_once() {
    let result = sender(peer(Stop::RefuseRecipient).await)
        .send("jörg@example.test", &view())
        .await;
    assert!(matches!(result, Err(EmailError::Invalid(_))), "{result:?}");
}
