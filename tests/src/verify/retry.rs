//! One operation the way a real client sends it through a crash: an answer
//! that never came (connection refused or reset, timeout) or a 5xx/429 is
//! retried with a bounded backoff until task-api is back. A create is
//! retried with the same `Idempotency-Key`, so task-api replays its first
//! answer if that one committed; a change is retried with `If-Match` of the
//! version the client last knew, so it can never apply twice. A 412 on such
//! a retry means "my first attempt applied" or "someone else changed the
//! task": the client reads the task and decides ([`decide`]) applied once,
//! not applied (then it tries again, conditional on what it read), or, for
//! an update whose title a sibling update has overwritten since, asks the
//! user's change feed (`GET /api/changes`, written in the change's own
//! transaction) whether an event of the task carries its title
//! ([`feed_shows`]): there, it applied; absent, it did not and is tried
//! again. Only when the feed cannot be read does the outcome stay unknown,
//! which the checker settles from the outbox (applied once or not at all,
//! never twice).

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
    /// An update's title is not on the task, which is at this sequence: a
    /// sibling update may have overwritten it, so the change feed decides.
    Overwritten(i64),
    /// The read cannot tell (the task is gone).
    Undecided,
}

/// Decides from the task as read (`None`: 404) whether `op` applied, the
/// task having been at sequence `known` (as far as the client knows) before
/// it. Only this operation's chain changes the task, and a chain's
/// complete, reopen and delete run alone in their stage, so their effect is
/// visible: the status they set at a sequence past `known` (the status
/// alone is not enough: a complete before it whose outcome stayed unknown
/// may not have applied, leaving the task pending without any reopen). An
/// update's title is unique, but a sibling update of the same stage may
/// have overwritten it.
pub fn decide(op: Op, title: &str, task: Option<&Value>, known: Option<i64>) -> Decision {
    let Some(task) = task else {
        return if op == Op::Delete {
            Decision::Applied
        } else {
            Decision::Undecided
        };
    };
    let sequence = task["sequence"].as_i64().unwrap_or(0);
    let status = task["status"].as_str();
    let moved = sequence > known.unwrap_or(0);
    let shows = match op {
        Op::Complete => moved && status == Some("completed"),
        Op::Reopen => moved && status == Some("pending"),
        Op::Delete | Op::Create => false,
        Op::Update | Op::UpdateIfMatch => {
            if task["title"].as_str() == Some(title) {
                return Decision::Applied;
            }
            return Decision::Overwritten(sequence);
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
            Ok(task) => match decide(call.op, call.title, task.as_ref(), call.known) {
                Decision::Applied => {
                    return settled(status, body, Some(Verdict::Changed), attempts);
                }
                Decision::Overwritten(sequence) => {
                    let shown = feed_shows(target, call, deadline).await;
                    match shown.map(|shown| after_feed(call.op, shown)) {
                        Ok(Some(verdict)) => {
                            return settled(status, body, Some(verdict), attempts);
                        }
                        Ok(None) if Instant::now() < deadline => if_match = Some(sequence),
                        Ok(None) => {
                            let why = "not applied, and no time left to try again".to_owned();
                            return settled(status, body, Some(Verdict::Unknown(why)), attempts);
                        }
                        Err(why) => {
                            return settled(status, body, Some(Verdict::Unknown(why)), attempts);
                        }
                    }
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

/// The verdict on an overwritten update once the feed was read (`shown`:
/// its title is on an event of the task), or `None`: not applied, send it
/// again against the current sequence. An `If-Match: "1"` update not
/// applied can never apply now that the task is past 1: the task-api's
/// 412 was the answer, so it is refused.
pub fn after_feed(op: Op, shown: bool) -> Option<Verdict> {
    if shown {
        Some(Verdict::Changed)
    } else if op == Op::UpdateIfMatch {
        Some(Verdict::Refused)
    } else {
        None
    }
}

/// Whether the user's change feed holds an event of `call`'s task that
/// carries its (unique) title: the update applied even though a sibling
/// has overwritten the title since. The feed's rows are written in the
/// change's own transaction, so a change that committed is on it; it is
/// read from its start, page by page, since the client kept no position.
async fn feed_shows(target: &Target, call: &Call<'_>, deadline: Instant) -> Result<bool, String> {
    let Some(task_id) = call.task_id else {
        return Ok(false);
    };
    let head = feed_page(target, call, "", deadline).await?;
    let epoch = head["epoch"].as_str().unwrap_or_default().to_owned();
    let mut after = 0;
    loop {
        let query = format!("?epoch={epoch}&after={after}&limit=1000");
        let page = feed_page(target, call, &query, deadline).await?;
        if page["reset"] == Value::Bool(true) {
            return Err("the change feed was reset: the update's outcome stays unknown".into());
        }
        let events = page["events"].as_array().cloned().unwrap_or_default();
        if shows_title(&events, task_id, call.title) {
            return Ok(true);
        }
        match page["next_offset"].as_i64() {
            Some(next) if !events.is_empty() && next > after => after = next,
            _ => return Ok(false),
        }
    }
}

/// Whether one of the feed's `events` is of `task` with `title`.
pub fn shows_title(events: &[Value], task: Uuid, title: &str) -> bool {
    let task = task.to_string();
    events.iter().any(|e| {
        e["data"]["task_id"].as_str() == Some(task.as_str())
            && e["data"]["task"]["title"].as_str() == Some(title)
    })
}

/// One `GET /api/changes{query}` as `call`'s user, retried like the change.
async fn feed_page(
    target: &Target,
    call: &Call<'_>,
    query: &str,
    deadline: Instant,
) -> Result<Value, String> {
    let mut backoff = BACKOFF_FIRST;
    loop {
        let request = target
            .http
            .get(format!("{}/api/changes{query}", target.url))
            .bearer_auth(&target.tokens[call.user]);
        match send(target, request).await {
            Answer::Response { status, body } if status == StatusCode::OK => return Ok(body),
            answer if answer.retryable() && Instant::now() + backoff < deadline => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            answer => return Err(format!("reading the change feed: {}", answer.describe())),
        }
    }
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;
