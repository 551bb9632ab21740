//! The email channel: one SMTP message per delivery, plain text and HTML
//! with the title, the due time in the task's zone and a link.
//!
//! TLS is chosen, not guessed: `starttls` requires the upgrade (lettre's
//! `starttls_relay`), `tls` is implicit TLS (`relay`, port 465), `none` is
//! for a local server only. Certificates are checked against Mozilla's
//! roots (`webpki-roots`), with rustls on `ring`.
//!
//! The connection is driven step by step (lettre's `AsyncSmtpConnection`,
//! the steps its `AsyncSmtpTransport` takes in lettre 0.11.23
//! `transport/smtp/async_transport.rs` and `executor.rs`), so a failure
//! can say whether the message may have gone out: before the envelope
//! (connect, TLS, login) nothing did and a retry is safe; an SMTP reply
//! code (4xx/5xx) means the server did not take it; but a connection that
//! breaks or times out once the envelope is under way may have delivered
//! it (the server may have queued the message and lost only its 250).

use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;

use crate::config::{SmtpConfig, SmtpTls};
use crate::view::ReminderView;

/// Each of the two phases of a send (connect to login; envelope and
/// message) has this long. lettre 0.11.23 times only the TCP connect
/// (`transport/smtp/client/async_net.rs`, `connect_tokio1`): a server
/// that stops answering would otherwise hold the send for ever.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// The address or message cannot be built: retrying cannot help.
    #[error("message refused before sending: {0}")]
    Invalid(String),
    /// Not taken, and safe to try again: the server answered 4xx/5xx, or
    /// the connection, TLS or login failed before the envelope.
    #[error("smtp: {0}")]
    Smtp(String),
    /// The connection broke or timed out once the envelope was under way:
    /// the server may have taken the message.
    #[error("smtp, outcome unknown: {0}")]
    Unknown(String),
}

#[derive(Clone)]
pub struct EmailSender {
    host: String,
    port: u16,
    tls: SmtpTls,
    /// Checked at start; `None` for `SMTP_TLS=none`.
    tls_parameters: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
    from: Mailbox,
    link_base: String,
}

impl std::fmt::Debug for EmailSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSender")
            .field("from", &self.from)
            .finish()
    }
}

impl EmailSender {
    /// `credentials`: (username, password) from the secret store or the
    /// environment, if the server needs them.
    pub fn new(
        config: &SmtpConfig,
        credentials: Option<(String, String)>,
        link_base: &str,
    ) -> Result<Self, EmailError> {
        let tls_parameters = match config.tls {
            SmtpTls::None => None,
            SmtpTls::StartTls | SmtpTls::Tls => Some(
                TlsParameters::new(config.host.clone())
                    .map_err(|e| EmailError::Invalid(e.to_string()))?,
            ),
        };
        Ok(Self {
            host: config.host.clone(),
            port: config.port,
            tls: config.tls,
            tls_parameters,
            credentials: credentials.map(|(user, password)| Credentials::new(user, password)),
            hello: ClientId::default(),
            timeout: SMTP_TIMEOUT,
            from: config
                .from
                .parse()
                .map_err(|e: lettre::address::AddressError| EmailError::Invalid(e.to_string()))?,
            link_base: link_base.to_owned(),
        })
    }

    /// The timeout of each phase of a send (tests shorten it).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub async fn send(&self, to: &str, view: &ReminderView) -> Result<(), EmailError> {
        let message = self.message(to, view)?;
        let mut conn = match tokio::time::timeout(self.timeout, self.connect()).await {
            Ok(connected) => connected.map_err(EmailError::Smtp)?,
            Err(_) => return Err(EmailError::Smtp(self.timed_out("before the envelope"))),
        };
        let sent = tokio::time::timeout(
            self.timeout,
            conn.send(message.envelope(), &message.formatted()),
        )
        .await;
        match sent {
            Ok(Ok(_)) => {
                // Taken (250 after the data): a failed QUIT changes nothing.
                let _ = tokio::time::timeout(self.timeout, conn.quit()).await;
                Ok(())
            }
            Ok(Err(e)) => Err(after_envelope(&e)),
            Err(_) => Err(EmailError::Unknown(self.timed_out("after the envelope"))),
        }
    }

    fn timed_out(&self, when: &str) -> String {
        format!("no answer within {} ms {when}", self.timeout.as_millis())
    }

    /// Connect, TLS (implicit, or STARTTLS required) and login: nothing
    /// of the message is sent yet.
    async fn connect(&self) -> Result<AsyncSmtpConnection, String> {
        let mut conn = match self.tls {
            SmtpTls::Tls => AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.timeout),
                &self.hello,
                // Never `None` (see `new`), and then refused, not plain.
                Some(self.tls_parameters.clone().ok_or("no TLS parameters")?),
                None,
            )
            .await
            .map_err(|e| e.to_string())?,
            SmtpTls::None | SmtpTls::StartTls => {
                let stream = self.tcp_nodelay().await?;
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                    .await
                    .map_err(|e| e.to_string())?
            }
        };
        if let (SmtpTls::StartTls, Some(parameters)) = (self.tls, &self.tls_parameters) {
            // Fails when the server does not offer STARTTLS: required.
            conn.starttls(parameters.clone(), &self.hello)
                .await
                .map_err(|e| e.to_string())?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(conn)
    }

    /// The TCP connection for `none` and `starttls`, with Nagle's
    /// algorithm off. lettre 0.11.23 writes a message's body and its
    /// closing `.` in two writes and then waits for the reply
    /// (`transport/smtp/client/async_connection.rs`, `message_iter`) and
    /// does not set `TCP_NODELAY` on the sockets it opens (`async_net.rs`,
    /// `connect_tokio1`): the `.` then waits for the server's delayed ACK
    /// of the body, about 40 ms per message on Linux (measured against
    /// mailpit, docs/benchmarks.md). Implicit TLS keeps lettre's own
    /// connect, which is the only way to a TLS stream before the EHLO.
    async fn tcp_nodelay(&self) -> Result<tokio::net::TcpStream, String> {
        let addr = (self.host.as_str(), self.port);
        let stream = tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connection to {}:{} timed out", self.host, self.port))?
            .map_err(|e| format!("connection to {}:{}: {e}", self.host, self.port))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        Ok(stream)
    }

    fn message(&self, to: &str, view: &ReminderView) -> Result<Message, EmailError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e: lettre::address::AddressError| EmailError::Invalid(e.to_string()))?;
        let content = Content::of(view, &self.link_base);
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(format!("Reminder: {}", one_line(&view.title)))
            .multipart(MultiPart::alternative_plain_html(
                content.plain(),
                content.html(),
            ))
            .map_err(|e| EmailError::Invalid(e.to_string()))
    }
}

/// A failure once the envelope is under way: a reply code (4xx/5xx) or a
/// refusal by lettre itself (before writing) means the message was not
/// taken; anything else (a broken connection, a timeout, an unreadable
/// reply) may have come after the server took it. lettre's own refusals
/// are what the server offers (lettre 0.11.23
/// `transport/smtp/client/async_connection.rs`, `send`: a non-ASCII address
/// without SMTPUTF8, a non-ASCII message without 8BITMIME): the same on
/// every retry, so permanent.
fn after_envelope(error: &lettre::transport::smtp::Error) -> EmailError {
    if error.is_client() {
        EmailError::Invalid(error.to_string())
    } else if error.is_transient() || error.is_permanent() {
        EmailError::Smtp(error.to_string())
    } else {
        EmailError::Unknown(error.to_string())
    }
}

/// SMTP credentials: from the Dapr secret store when `SMTP_SECRET` names a
/// secret (keys `username` and `password`; daprd may start after the app,
/// so this waits up to a minute for it), else from the environment.
pub async fn credentials(
    config: &SmtpConfig,
    dapr: &crate::state::StateClient,
) -> Result<Option<(String, String)>, anyhow::Error> {
    let Some(secret) = &config.secret else {
        return Ok(config.username.clone().zip(config.password.clone()));
    };
    let mut last = String::new();
    for _ in 0..60 {
        match dapr.secret(&config.secret_store, secret).await {
            Ok(values) => {
                let get = |k: &str| values.get(k).cloned().filter(|v| !v.is_empty());
                return match get("username").zip(get("password")) {
                    Some(pair) => Ok(Some(pair)),
                    None => Err(anyhow::anyhow!(
                        "SMTP_SECRET {secret}: the secret needs the keys username and password"
                    )),
                };
            }
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(anyhow::anyhow!(
        "SMTP_SECRET {secret}: not readable from the secret store: {last}"
    ))
}

/// What a reminder says, for both bodies (and the push payload).
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub title: String,
    /// "Due" for the occurrence's due time; "Reminder at" for the firing
    /// time of a task without a due date.
    pub label: &'static str,
    /// "Tue 1 Dec 2026 09:30 +01:00 (Europe/Paris)", or in UTC.
    pub when: String,
    pub link: String,
}

impl Content {
    pub fn of(view: &ReminderView, link_base: &str) -> Self {
        let (label, at) = match view.occurrence_due_at {
            Some(due) => ("Due", due),
            None => ("Reminder at", view.fire_at),
        };
        Self {
            title: view.title.clone(),
            label,
            when: local_time(at, view.time_zone.as_deref()),
            link: format!("{link_base}/tasks/{}", view.task_id),
        }
    }

    fn plain(&self) -> String {
        format!(
            "{}\n{}: {}\n\n{}\n",
            self.title, self.label, self.when, self.link
        )
    }

    fn html(&self) -> String {
        format!(
            "<!doctype html><html><body><h1>{}</h1><p>{}: {}</p><p><a href=\"{}\">Open the task</a></p></body></html>",
            escape(&self.title),
            self.label,
            escape(&self.when),
            escape(&self.link)
        )
    }
}

/// The time in the task's zone, with its UTC offset (the hour repeated
/// when clocks go back reads twice otherwise); an unknown zone falls back
/// to UTC.
pub fn local_time(at: DateTime<Utc>, zone: Option<&str>) -> String {
    match zone.and_then(|z| z.parse::<chrono_tz::Tz>().ok()) {
        Some(tz) => format!(
            "{} ({tz})",
            at.with_timezone(&tz).format("%a %-d %b %Y %H:%M %:z")
        ),
        None => format!("{} (UTC)", at.format("%a %-d %b %Y %H:%M")),
    }
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_time_is_shown_in_the_tasks_zone() {
        let at = DateTime::parse_from_rfc3339("2026-12-01T08:30:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            local_time(at, Some("Europe/Paris")),
            "Tue 1 Dec 2026 09:30 +01:00 (Europe/Paris)"
        );
        assert_eq!(
            local_time(at, Some("Not/AZone")),
            "Tue 1 Dec 2026 08:30 (UTC)"
        );
    }

    #[test]
    fn the_hour_repeated_when_clocks_go_back_reads_apart() {
        // 2026-10-25 in Paris: 02:30 happens at 00:30Z and again at 01:30Z.
        let first = DateTime::parse_from_rfc3339("2026-10-25T00:30:00Z")
            .unwrap()
            .to_utc();
        let second = first + chrono::Duration::hours(1);
        assert_eq!(
            local_time(first, Some("Europe/Paris")),
            "Sun 25 Oct 2026 02:30 +02:00 (Europe/Paris)"
        );
        assert_eq!(
            local_time(second, Some("Europe/Paris")),
            "Sun 25 Oct 2026 02:30 +01:00 (Europe/Paris)"
        );
    }

    #[test]
    fn a_task_without_a_due_date_says_when_the_reminder_is() {
        let fire_at = DateTime::parse_from_rfc3339("2026-12-01T08:30:00Z")
            .unwrap()
            .to_utc();
        let mut view = ReminderView {
            reminder_id: uuid::Uuid::from_u128(1),
            task_id: uuid::Uuid::from_u128(2),
            user_id: "u".into(),
            sequence: 1,
            fire_at,
            occurrence_due_at: None,
            channels: Vec::new(),
            title: "Call".into(),
            email: None,
            time_zone: None,
            cancelled: false,
        };
        let content = Content::of(&view, "http://x");
        assert!(
            content
                .plain()
                .contains("\nReminder at: Tue 1 Dec 2026 08:30 (UTC)\n")
        );
        assert!(!content.html().contains("Due"));
        view.occurrence_due_at = Some(fire_at + chrono::Duration::hours(1));
        let content = Content::of(&view, "http://x");
        assert!(
            content
                .plain()
                .contains("\nDue: Tue 1 Dec 2026 09:30 (UTC)\n")
        );
    }

    #[test]
    fn html_is_escaped_and_subjects_are_one_line() {
        assert_eq!(escape("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
        assert_eq!(one_line("a\r\nBcc: x"), "a  Bcc: x");
    }
}

#[cfg(test)]
mod send_tests;
