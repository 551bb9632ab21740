//! The email channel: one SMTP message per delivery, plain text and HTML
//! with the title, the due time in the task's zone and a link.
//!
//! TLS is chosen, not guessed: `starttls` requires the upgrade (lettre's
//! `starttls_relay`), `tls` is implicit TLS (`relay`, port 465), `none` is
//! for a local server only. Certificates are checked against Mozilla's
//! roots (`webpki-roots`), with rustls on `ring`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{SmtpConfig, SmtpTls};
use crate::view::ReminderView;

const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// The address or message cannot be built: retrying cannot help.
    #[error("message refused before sending: {0}")]
    Invalid(String),
    /// The server or the network failed (4xx/5xx, TLS, timeout).
    #[error("smtp: {0}")]
    Smtp(String),
}

#[derive(Clone)]
pub struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
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
        let host = config.host.as_str();
        let builder = match config.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| EmailError::Invalid(e.to_string()))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| EmailError::Invalid(e.to_string()))?,
        };
        let mut builder = builder.port(config.port).timeout(Some(SMTP_TIMEOUT));
        if let Some((user, password)) = credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(Self {
            transport: builder.build(),
            from: config
                .from
                .parse()
                .map_err(|e: lettre::address::AddressError| EmailError::Invalid(e.to_string()))?,
            link_base: link_base.to_owned(),
        })
    }

    pub async fn send(&self, to: &str, view: &ReminderView) -> Result<(), EmailError> {
        let message = self.message(to, view)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| EmailError::Smtp(e.to_string()))
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
    /// "Tue 1 Dec 2026 09:30 (Europe/Paris)", or the firing time in UTC.
    pub when: String,
    pub link: String,
}

impl Content {
    pub fn of(view: &ReminderView, link_base: &str) -> Self {
        Self {
            title: view.title.clone(),
            when: local_time(
                view.occurrence_due_at.unwrap_or(view.fire_at),
                view.time_zone.as_deref(),
            ),
            link: format!("{link_base}/tasks/{}", view.task_id),
        }
    }

    fn plain(&self) -> String {
        format!("{}\nDue: {}\n\n{}\n", self.title, self.when, self.link)
    }

    fn html(&self) -> String {
        format!(
            "<!doctype html><html><body><h1>{}</h1><p>Due: {}</p><p><a href=\"{}\">Open the task</a></p></body></html>",
            escape(&self.title),
            escape(&self.when),
            escape(&self.link)
        )
    }
}

/// The time in the task's zone; an unknown zone falls back to UTC.
pub fn local_time(at: DateTime<Utc>, zone: Option<&str>) -> String {
    match zone.and_then(|z| z.parse::<chrono_tz::Tz>().ok()) {
        Some(tz) => format!(
            "{} ({tz})",
            at.with_timezone(&tz).format("%a %-d %b %Y %H:%M")
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
            "Tue 1 Dec 2026 09:30 (Europe/Paris)"
        );
        assert_eq!(
            local_time(at, Some("Not/AZone")),
            "Tue 1 Dec 2026 08:30 (UTC)"
        );
    }

    #[test]
    fn html_is_escaped_and_subjects_are_one_line() {
        assert_eq!(escape("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
        assert_eq!(one_line("a\r\nBcc: x"), "a  Bcc: x");
    }
}
