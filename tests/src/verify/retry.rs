//! One operation the way a real client sends it through a crash: an answer
//! that never came (connection refused or reset, timeout) or a 5xx/429 is
//! retried with a bounded backoff until task-api is back. A create is
//! retried with the same `Idempotency-Key`, so task-api replays its first
//! answer if that one committed; a change is retried with `If-Match` of the
//! version the client last knew, so it can never apply twice. A 412 on such
//! a retry means "my first attempt applied" or "someone else changed the
//! task": the client reads the task and decides ([`decide`]) applied once,
//! not applied (then it tries again, conditional on what it read), or —
//! when the read cannot tell — unknown, which the checker settles from the
//! outbox (applied once or not at all, never twice).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use super::drive::{Target, Verdict};
use super::plan::Op;

/// The first pause between attempts; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// One operation to send.
pub struct Call<'a> {
    pub user: usize,
    pub op: Op,
    pub task_id: Option<Uuid>,
    /// The title a create or update writes (unique in the run).
    pub title: &'a str,
    /// A create's `Idempotency-Key`.
    pub key: &'a str,
    /// The task's sequence the client last knew before this operation.
    pub known: Option<i64>,
}

/// What one attempt got.
#[derive(Debug)]
pub enum Answer {
    Response {
        status: StatusCode,
        body: Value,
    },
    /// No answer: connection refused or reset, timeout.
    Lost(String),
}

impl Answer {
    /// Whether the outcome of this attempt is unknown and worth a retry:
    /// no answer, a 5xx (task-api's own timeout answers 503 after dropping
    /// a handler that may have committed) or a 429.
    pub fn retryable(&self) -> bool {
        match self {
            Answer::Lost(_) => true,
            Answer::Response { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Answer::Lost(e) => format!("no response: {e}"),
            Answer::Response { status, .. } => format!("{status}"),
        }
    }
}

/// What a read of the task says about a change whose answer was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The task shows the change: it applied (once: every retry was
    /// conditional on a version from before it).
    Applied,
    /// The task shows it did not apply; it is at this sequence.
    NotApplied(i64),
    /// The read cannot tell (a concurrent update wrote the title since).
    Undecided,
}

/// Decides from the task as read (`None`: 404) whether `op` applied. Only
/// this operation's chain changes the task, and a chain's complete, reopen
/// and delete run alone in their stage, so their effect is visible; an
/// update's title is unique, but a sibling update of the same stage may
/// have overwritten it.
pub fn decide(op: Op, title: &str, task: Option<&Value>) -> Decision {
    let Some(task) = task else {
        return if op == Op::Delete {
            Decision::Applied
        } else {
            Decision::Undecided
        };
    };
    let sequence = task["sequence"].as_i64().unwrap_or(0);
    let status = task["status"].as_str();
    let shows = match op {
        Op::Complete => status == Some("completed"),
        Op::Reopen => status == Some("pending"),
        Op::Delete | Op::Create => false,
        Op::Update | Op::UpdateIfMatch => {
            if task["title"].as_str() == Some(title) {
                return Decision::Applied;
            }
            return Decision::Undecided;
        }
    };
    if shows {
        Decision::Applied
    } else {
        Decision::NotApplied(sequence)
    }
}

/// The request for `call`, conditional on `if_match` when set.
fn request(target: &Target, call: &Call<'_>, if_match: Option<i64>) -> reqwest::RequestBuilder {
    let (http, url) = (&target.http, &target.url);
    let id = call.task_id.map(|t| t.to_string()).unwrap_or_default();
    let builder = match call.op {
        Op::Create => http
            .post(format!("{url}/api/tasks"))
            .header("idempotency-key", call.key)
            .json(&json!({"title": call.title, "tags": ["ops"], "priority": "low"})),
        Op::Update | Op::UpdateIfMatch => http
            .patch(format!("{url}/api/tasks/{id}"))
            .json(&json!({"title": call.title})),
        Op::Complete => http.post(format!("{url}/api/tasks/{id}/complete")),
        Op::Reopen => http.post(format!("{url}/api/tasks/{id}/reopen")),
        Op::Delete => http.delete(format!("{url}/api/tasks/{id}")),
    };
    let builder = match if_match {
        Some(v) => builder.header("if-match", format!("\"{v}\"")),
        None => builder,
    };
    builder.bearer_auth(&target.tokens[call.user])
}

async fn send(target: &Target, request: reqwest::RequestBuilder) -> Answer {
    let Ok(_permit) = target.permits.acquire().await else {
        return Answer::Lost("the run is closing".into());
    };
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            let body = response.json().await.unwrap_or(Value::Null);
            Answer::Response { status, body }
        }
        Err(e) => Answer::Lost(e.to_string()),
    }
}

/// Where the sending of one operation ended.
#[derive(Debug)]
pub struct Sent {
    /// The last answer that came (a 2xx, 412, 404, ...), if any.
    pub status: Option<StatusCode>,
    pub body: Value,
    /// Set when the outcome was decided by a retry or a read, not by the
    /// first answer.
    pub verdict: Option<Verdict>,
    pub attempts: u32,
}

/// Sends `call` until an answer settles it or `target.retry_for` passes.
pub async fn send_settled(target: &Target, call: &Call<'_>) -> Sent {
    let deadline = Instant::now() + target.retry_for;
    let mut if_match = (call.op == Op::UpdateIfMatch).then_some(1);
    let mut backoff = BACKOFF_FIRST;
    let mut uncertain = false;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let answer = send(target, request(target, call, if_match)).await;
        if answer.retryable() {
            if Instant::now() + backoff >= deadline {
                let why = format!("{} after {attempts} attempts", answer.describe());
                return unsettled(answer, Verdict::Unknown(why), attempts);
            }
            uncertain = true;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
            // A change's retry may apply only where the lost attempt did not.
            if call.op != Op::Create && if_match.is_none() {
                if_match = Some(call.known.unwrap_or(1));
            }
            continue;
        }
        let Answer::Response { status, body } = answer else {
            continue;
        };
        if !uncertain || status.is_success() {
            return settled(status, body, None, attempts);
        }
        if status == StatusCode::NOT_FOUND && call.op == Op::Delete {
            return settled(status, body, Some(Verdict::Changed), attempts);
        }
        if status != StatusCode::PRECONDITION_FAILED {
            let verdict = Verdict::Error(format!("unexpected {status} on a retry"));
            return settled(status, body, Some(verdict), attempts);
        }
        match read(target, call, deadline).await {
            Ok(task) => match decide(call.op, call.title, task.as_ref()) {
                Decision::Applied => {
                    return settled(status, body, Some(Verdict::Changed), attempts);
                }
                Decision::NotApplied(sequence) if Instant::now() < deadline => {
                    if_match = Some(sequence);
                }
                Decision::NotApplied(_) => {
                    let why = "not applied, and no time left to try again".to_owned();
                    return settled(status, body, Some(Verdict::Unknown(why)), attempts);
                }
                Decision::Undecided => {
                    let why = "412 on a retry; the read cannot tell".to_owned();
                    return settled(status, body, Some(Verdict::Unknown(why)), attempts);
                }
            },
            Err(why) => return settled(status, body, Some(Verdict::Unknown(why)), attempts),
        }
    }
}

fn settled(status: StatusCode, body: Value, verdict: Option<Verdict>, attempts: u32) -> Sent {
    Sent {
        status: Some(status),
        body,
        verdict,
        attempts,
    }
}

fn unsettled(answer: Answer, verdict: Verdict, attempts: u32) -> Sent {
    let status = match answer {
        Answer::Response { status, .. } => Some(status),
        Answer::Lost(_) => None,
    };
    Sent {
        status,
        body: Value::Null,
        verdict: Some(verdict),
        attempts,
    }
}

/// `GET` of the task (`None`: 404), retried like the change itself.
async fn read(
    target: &Target,
    call: &Call<'_>,
    deadline: Instant,
) -> Result<Option<Value>, String> {
    let id = call.task_id.map(|t| t.to_string()).unwrap_or_default();
    let mut backoff = BACKOFF_FIRST;
    loop {
        let request = target
            .http
            .get(format!("{}/api/tasks/{id}", target.url))
            .bearer_auth(&target.tokens[call.user]);
        match send(target, request).await {
            Answer::Response { status, body } if status == StatusCode::OK => return Ok(Some(body)),
            Answer::Response { status, .. } if status == StatusCode::NOT_FOUND => return Ok(None),
            answer if answer.retryable() && Instant::now() + backoff < deadline => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            answer => return Err(format!("reading the task: {}", answer.describe())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(title: &str, status: &str, sequence: i64) -> Value {
        json!({"title": title, "status": status, "sequence": sequence})
    }

    #[test]
    fn a_status_change_is_decided_by_the_status() {
        let done = task("t", "completed", 4);
        let open = task("t", "pending", 3);
        assert_eq!(decide(Op::Complete, "", Some(&done)), Decision::Applied);
        assert_eq!(
            decide(Op::Complete, "", Some(&open)),
            Decision::NotApplied(3)
        );
        assert_eq!(decide(Op::Reopen, "", Some(&open)), Decision::Applied);
        assert_eq!(decide(Op::Reopen, "", Some(&done)), Decision::NotApplied(4));
    }

    #[test]
    fn a_delete_applied_when_the_task_is_gone() {
        assert_eq!(decide(Op::Delete, "", None), Decision::Applied);
        let there = task("t", "pending", 2);
        assert_eq!(
            decide(Op::Delete, "", Some(&there)),
            Decision::NotApplied(2)
        );
        assert_eq!(decide(Op::Complete, "", None), Decision::Undecided);
    }

    #[test]
    fn an_update_is_applied_only_when_its_title_shows() {
        let mine = task("ops 1 1.0", "pending", 3);
        let other = task("ops 1 1.1", "pending", 3);
        for op in [Op::Update, Op::UpdateIfMatch] {
            assert_eq!(decide(op, "ops 1 1.0", Some(&mine)), Decision::Applied);
            assert_eq!(decide(op, "ops 1 1.0", Some(&other)), Decision::Undecided);
        }
    }

    #[test]
    fn lost_answers_5xx_and_429_are_retried_others_not() {
        let response = |s: u16| Answer::Response {
            status: StatusCode::from_u16(s).unwrap(),
            body: Value::Null,
        };
        assert!(Answer::Lost("reset".into()).retryable());
        for s in [500, 502, 503, 429] {
            assert!(response(s).retryable(), "{s}");
        }
        for s in [200, 201, 204, 400, 404, 412, 422] {
            assert!(!response(s).retryable(), "{s}");
        }
    }
}
