//! The hostile HTTP requests: bad tokens at task-api, another user's task,
//! poison pushed straight to each consumer's callback (as daprd would,
//! with the app token), and poison published through daprd onto the
//! topics. Each is answered or not; [`expect`] says which answers are the
//! refusal the design promises.

use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// How a token is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadToken {
    Missing,
    Garbage,
    /// Signed with another secret.
    WrongKey,
    /// `alg: none`, no signature.
    AlgNone,
    Expired,
    /// No `aud` (refused only when the stack sets `JWT_AUDIENCE`).
    NoAudience,
    /// An `aud` that is not the stack's (the same).
    WrongAudience,
    /// An `iss` that is not the stack's (refused when `JWT_ISSUER` is set).
    WrongIssuer,
}

impl BadToken {
    pub const ALL: [BadToken; 8] = [
        BadToken::Missing,
        BadToken::Garbage,
        BadToken::WrongKey,
        BadToken::AlgNone,
        BadToken::Expired,
        BadToken::NoAudience,
        BadToken::WrongAudience,
        BadToken::WrongIssuer,
    ];

    /// Whether the stack refuses it with these settings: without a
    /// configured audience or issuer, auth does not check the claim
    /// (shared/auth/src/verify.rs), so such a token is valid there.
    pub fn applies(self, audience: Option<&str>, issuer: Option<&str>) -> bool {
        match self {
            BadToken::NoAudience | BadToken::WrongAudience => audience.is_some(),
            BadToken::WrongIssuer => issuer.is_some(),
            _ => true,
        }
    }
}

/// The stack's token settings.
#[derive(Debug, Clone, Default)]
pub struct TokenSettings {
    pub secret: String,
    pub audience: Option<String>,
    pub issuer: Option<String>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The `Authorization` value (`None`: no header) of a `bad` token for `user`.
pub fn bad_token(bad: BadToken, user: &str, s: &TokenSettings) -> Option<String> {
    let now = now();
    let mut claims = json!({"sub": user, "iat": now, "exp": now + 3600, "roles": []});
    if let Some(iss) = &s.issuer {
        claims["iss"] = json!(iss);
    }
    if let Some(aud) = &s.audience {
        claims["aud"] = json!(aud);
    }
    let signed = |claims: &Value, secret: &str| auth::testing::sign(claims, secret);
    let token = match bad {
        BadToken::Missing => return None,
        BadToken::Garbage => "not.a.token".to_owned(),
        BadToken::WrongKey => signed(&claims, "not-the-stack-secret-0123456789abcdef"),
        BadToken::AlgNone => {
            let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
            let body = URL_SAFE_NO_PAD.encode(claims.to_string());
            format!("{head}.{body}.")
        }
        BadToken::Expired => {
            claims["iat"] = json!(now - 7200);
            claims["exp"] = json!(now - 3600);
            signed(&claims, &s.secret)
        }
        BadToken::NoAudience => {
            claims.as_object_mut().map(|c| c.remove("aud"));
            signed(&claims, &s.secret)
        }
        BadToken::WrongAudience => {
            claims["aud"] = json!("someone-else");
            signed(&claims, &s.secret)
        }
        BadToken::WrongIssuer => {
            claims["iss"] = json!("https://intruder.example");
            signed(&claims, &s.secret)
        }
    };
    Some(format!("Bearer {token}"))
}

/// A consumer callback and the poison it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Consumer {
    Audit,
    Recurring,
    Notification,
    Gateway,
}

impl Consumer {
    pub const ALL: [Consumer; 4] = [
        Consumer::Audit,
        Consumer::Recurring,
        Consumer::Notification,
        Consumer::Gateway,
    ];

    /// The callback route (dapr/kubernetes/subscriptions, each function's
    /// `/dapr/subscribe`).
    pub fn route(self) -> &'static str {
        match self {
            Consumer::Audit | Consumer::Recurring => "/events/task-events",
            Consumer::Notification => "/events/reminders",
            Consumer::Gateway => "/events/task-updates",
        }
    }

    /// The topic this consumer reads, where published poison goes.
    pub fn topic(self) -> &'static str {
        match self {
            Consumer::Audit | Consumer::Recurring => "task-events",
            Consumer::Notification => "reminders",
            Consumer::Gateway => "task-updates",
        }
    }

    /// The type its handler decodes: poison of it is dropped by the
    /// handler itself (recurring acknowledges every other type, by design:
    /// functions/recurring/src/ingest.rs).
    pub fn event_type(self) -> &'static str {
        match self {
            Consumer::Audit | Consumer::Recurring => "com.todo.task.completed",
            Consumer::Notification => "com.todo.reminder.scheduled",
            Consumer::Gateway => "com.todo.task.sync",
        }
    }
}

/// A structured CloudEvent of `event_type` whose data fails its schema;
/// `pad` bytes of filler make it oversized.
pub fn poison(id: &str, event_type: &str, subject: &str, pad: usize) -> Value {
    json!({
        "specversion": "1.0", "id": id, "source": super::dlq::SOURCE,
        "type": event_type, "subject": subject, "datacontenttype": "application/json",
        "time": chrono::Utc::now().to_rfc3339(),
        "data": {"not": "this event's data", "filler": "x".repeat(pad)}
    })
}

/// What one hostile request got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The promised answer: a refusal (or, for a publish, the poison on
    /// its way to the dead-letter topic).
    Refused,
    /// Taken: a finding.
    Accepted(String),
    /// Another answer: a finding.
    Unexpected(String),
    /// No answer (the target was down in a fault): counted, not judged.
    Unanswered(String),
}

/// What each kind of request must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// 401 from task-api.
    Unauthorized,
    /// 404: another user's task is never revealed (not 403).
    NotFound,
    /// A callback's poison: 200 `{"status":"DROP"}` (daprd), 400 or 413.
    Dropped,
}

/// Judges `status` and `body` against `expect`. A 5xx is a fault's doing
/// (the database or a daprd away) except where the refusal is the 5xx.
pub fn expect(expect: Expect, status: StatusCode, body: &Value) -> Answer {
    let s = status.as_u16();
    let got = || {
        format!(
            "{s} {}",
            body.to_string().chars().take(120).collect::<String>()
        )
    };
    let ok = match expect {
        Expect::Unauthorized => s == 401,
        Expect::NotFound => s == 404,
        Expect::Dropped => (s == 200 && body["status"] == "DROP") || s == 400 || s == 413,
    };
    if ok {
        return Answer::Refused;
    }
    if status.is_server_error() || s == 429 {
        return Answer::Unanswered(got());
    }
    let taken = status.is_success()
        && !(expect == Expect::Dropped && matches!(body["status"].as_str(), Some("RETRY")));
    if taken {
        Answer::Accepted(got())
    } else {
        Answer::Unexpected(got())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(token: &str) -> Value {
        let body = token
            .trim_start_matches("Bearer ")
            .split('.')
            .nth(1)
            .unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap()
    }

    #[test]
    fn each_bad_token_is_bad_in_its_own_way() {
        let s = TokenSettings {
            secret: "s".repeat(32),
            audience: Some("todo".into()),
            issuer: Some("https://issuer".into()),
        };
        assert_eq!(bad_token(BadToken::Missing, "u", &s), None);
        let no_aud = bad_token(BadToken::NoAudience, "u", &s).unwrap();
        assert!(claims(&no_aud).get("aud").is_none());
        assert_eq!(claims(&no_aud)["iss"], "https://issuer");
        let expired = claims(&bad_token(BadToken::Expired, "u", &s).unwrap());
        assert!(expired["exp"].as_u64().unwrap() < now());
        let none = bad_token(BadToken::AlgNone, "u", &s).unwrap();
        assert!(none.ends_with('.'), "no signature: {none}");
        assert_eq!(
            claims(&bad_token(BadToken::WrongIssuer, "u", &s).unwrap())["aud"],
            "todo"
        );
    }

    #[test]
    fn unchecked_claims_do_not_apply() {
        assert!(!BadToken::NoAudience.applies(None, Some("i")));
        assert!(!BadToken::WrongIssuer.applies(Some("a"), None));
        assert!(BadToken::Expired.applies(None, None));
    }

    #[test]
    fn answers_are_judged_by_what_each_kind_must_get() {
        let st = |s| StatusCode::from_u16(s).unwrap();
        let drop = json!({"status": "DROP"});
        assert_eq!(expect(Expect::Dropped, st(200), &drop), Answer::Refused);
        assert_eq!(
            expect(Expect::Dropped, st(413), &Value::Null),
            Answer::Refused
        );
        let success = json!({"status": "SUCCESS"});
        assert!(matches!(
            expect(Expect::Dropped, st(200), &success),
            Answer::Accepted(_)
        ));
        assert!(matches!(
            expect(Expect::Dropped, st(200), &json!({"status": "RETRY"})),
            Answer::Unexpected(_)
        ));
        assert_eq!(
            expect(Expect::NotFound, st(404), &Value::Null),
            Answer::Refused
        );
        assert!(matches!(
            expect(Expect::NotFound, st(403), &Value::Null),
            Answer::Unexpected(_)
        ));
        assert!(matches!(
            expect(Expect::NotFound, st(200), &Value::Null),
            Answer::Accepted(_)
        ));
        assert!(matches!(
            expect(Expect::Unauthorized, st(503), &Value::Null),
            Answer::Unanswered(_)
        ));
        assert!(matches!(
            expect(Expect::Unauthorized, st(201), &Value::Null),
            Answer::Accepted(_)
        ));
    }

    #[test]
    fn poison_fails_its_schema_and_can_be_padded() {
        let p = poison("id", "com.todo.task.sync", "s", 10);
        assert_eq!(p["data"]["filler"].as_str().unwrap().len(), 10);
        assert!(p["data"].get("task_id").is_none());
    }
}
