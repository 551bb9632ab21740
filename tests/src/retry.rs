//! A client that keeps trying through an outage, the way a real one does:
//! a request that got no answer (connection refused or cut, a timeout) or
//! a 5xx / 429 is sent again after a short backoff until a deadline. The
//! caller makes the retry safe: the same `Idempotency-Key` on a create,
//! the same `If-Match` on a change, so a first attempt that committed
//! while its answer was lost is not applied twice.
//!
//! [`Answer::uncertain`] says whether an earlier attempt may have been
//! applied (it got no answer, or a 5xx that may follow a commit), which is
//! what a checker needs to judge an outcome such as a 412 on the retry.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::time::Instant;

/// What came of a request and its retries.
#[derive(Debug, Clone)]
pub enum Answer {
    /// The last attempt's answer: not a 5xx or 429, or one that stayed so
    /// until the deadline.
    Got {
        status: StatusCode,
        body: Value,
        /// Attempts sent (1 when the first was answered).
        tries: u32,
        /// An earlier attempt may have been applied: it got no answer,
        /// or a 5xx.
        uncertain: bool,
    },
    /// No attempt was answered before the deadline: the outcome is unknown.
    NoAnswer { error: String, tries: u32 },
}

impl Answer {
    /// The status, when an answer came.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Answer::Got { status, .. } => Some(*status),
            Answer::NoAnswer { .. } => None,
        }
    }

    /// The body, `Null` without an answer.
    pub fn body(&self) -> &Value {
        match self {
            Answer::Got { body, .. } => body,
            Answer::NoAnswer { .. } => &Value::Null,
        }
    }

    /// Whether an earlier attempt may have been applied.
    pub fn uncertain(&self) -> bool {
        match self {
            Answer::Got { uncertain, .. } => *uncertain,
            Answer::NoAnswer { .. } => true,
        }
    }

    /// Attempts sent.
    pub fn tries(&self) -> u32 {
        match self {
            Answer::Got { tries, .. } | Answer::NoAnswer { tries, .. } => *tries,
        }
    }
}

/// Whether an answer is worth another attempt: the server (or a proxy)
/// was down or overloaded.
pub fn transient(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// The wait before attempt `tries + 1`: 200 ms doubling to 3 s.
pub fn backoff(tries: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << tries.min(4))).min(Duration::from_secs(3))
}

/// Sends `build()` until it gets an answer that is not transient, or
/// `deadline` passes. `build` is called once per attempt (a request is
/// consumed by sending), and must build the same request each time.
pub async fn send<F>(build: F, deadline: Instant) -> Answer
where
    F: Fn() -> reqwest::RequestBuilder,
{
    let mut tries = 0;
    let mut uncertain = false;
    loop {
        tries += 1;
        let last = match build().send().await {
            Ok(response) => {
                let status = response.status();
                let body = response.json().await.unwrap_or(Value::Null);
                if !transient(status) || Instant::now() >= deadline {
                    return Answer::Got {
                        status,
                        body,
                        tries,
                        uncertain,
                    };
                }
                status.to_string()
            }
            Err(error) => error.to_string(),
        };
        uncertain = true;
        if Instant::now() + backoff(tries) >= deadline {
            return Answer::NoAnswer { error: last, tries };
        }
        tokio::time::sleep(backoff(tries)).await;
    }
}

/// One user's calls to a JSON API, each retried by [`send`].
#[derive(Debug, Clone)]
pub struct UserApi {
    pub http: reqwest::Client,
    /// The API's base URL (`http://127.0.0.1:8080`).
    pub base: String,
    /// The user's bearer token.
    pub token: String,
}

impl UserApi {
    /// `method path` with an optional JSON body and extra headers
    /// (`Idempotency-Key`, `If-Match`), retried until `deadline`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
        deadline: Instant,
    ) -> Answer {
        let url = format!("{}{path}", self.base);
        let build = || {
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&self.token);
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            match body {
                Some(body) => request.json(body),
                None => request,
            }
        };
        send(build, deadline).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_outages_are_retried() {
        for s in [500, 502, 503, 504, 429] {
            assert!(transient(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [200, 201, 204, 400, 401, 404, 409, 412, 422] {
            assert!(!transient(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(200));
        assert_eq!(backoff(1), Duration::from_millis(400));
        assert_eq!(backoff(3), Duration::from_millis(1600));
        assert_eq!(backoff(4), Duration::from_secs(3));
        assert_eq!(backoff(40), Duration::from_secs(3));
    }

    #[tokio::test]
    async fn an_unreachable_server_is_an_unknown_outcome_at_the_deadline() {
        // Port 9 (discard) on loopback: nothing listens, the connection is
        // refused at once.
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_millis(900);
        let answer = send(|| http.get("http://127.0.0.1:9/"), deadline).await;
        assert!(matches!(answer, Answer::NoAnswer { .. }), "{answer:?}");
        assert!(answer.tries() >= 2, "retried: {answer:?}");
        assert!(answer.uncertain());
    }
}
