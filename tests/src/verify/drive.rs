//! Runs the planned chains against task-api with a bound on requests in
//! flight, and records every operation's outcome.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::plan::{Chain, Op};

/// What task-api answered to one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted: the task changed (201, 200 or 204).
    Changed,
    /// Refused as the plan allows (412 on a stale `If-Match`): no change.
    Refused,
    /// Anything else; the outcome is unknown or wrong.
    Error(String),
}

/// One operation and its outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub chain: usize,
    pub user: usize,
    pub op: Op,
    pub task_id: Option<Uuid>,
    /// The HTTP status, or `None` when no response came.
    pub status: Option<u16>,
    /// The task's sequence in the response body (not sent for a delete).
    pub sequence: Option<i64>,
    pub verdict: Verdict,
    pub latency: Duration,
}

impl Outcome {
    pub fn is_5xx(&self) -> bool {
        self.status.is_some_and(|s| s >= 500)
    }
}

/// Where and as whom the operations run.
pub struct Target {
    pub http: reqwest::Client,
    pub url: String,
    /// A bearer token per user index.
    pub tokens: Vec<String>,
    pub permits: Arc<Semaphore>,
}

/// Runs every chain, at most `in_flight` chains and the semaphore's permits
/// of requests at a time; returns every outcome.
pub async fn run(target: Arc<Target>, chains: Vec<Chain>, in_flight: usize) -> Vec<Outcome> {
    futures::stream::iter(chains)
        .map(|chain| run_chain(target.clone(), chain))
        .buffer_unordered(in_flight.max(1))
        .flat_map(futures::stream::iter)
        .collect()
        .await
}

async fn run_chain(target: Arc<Target>, chain: Chain) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(chain.ops());
    let mut task_id = None;
    for (s, stage) in chain.stages.iter().enumerate() {
        let calls = stage.iter().enumerate().map(|(k, op)| {
            let title = format!("ops {} {s}.{k}", chain.index);
            call(&target, &chain, *op, task_id, title)
        });
        let done = futures::future::join_all(calls).await;
        if s == 0 {
            task_id = done.first().and_then(|o| o.task_id);
        }
        outcomes.extend(done);
        // Without its task the rest of the chain cannot run; the failed
        // create is already recorded as an error.
        if task_id.is_none() {
            break;
        }
    }
    outcomes
}

async fn call(
    target: &Target,
    chain: &Chain,
    op: Op,
    task_id: Option<Uuid>,
    title: String,
) -> Outcome {
    let mut outcome = Outcome {
        chain: chain.index,
        user: chain.user,
        op,
        task_id,
        status: None,
        sequence: None,
        verdict: Verdict::Error("not sent".into()),
        latency: Duration::ZERO,
    };
    let Ok(_permit) = target.permits.acquire().await else {
        return outcome;
    };
    let url = &target.url;
    let id = task_id.map(|t| t.to_string()).unwrap_or_default();
    let request = match op {
        Op::Create => target
            .http
            .post(format!("{url}/api/tasks"))
            .json(&json!({"title": title, "tags": ["ops"], "priority": "low"})),
        Op::Update => target
            .http
            .patch(format!("{url}/api/tasks/{id}"))
            .json(&json!({"title": title})),
        Op::UpdateIfMatch => target
            .http
            .patch(format!("{url}/api/tasks/{id}"))
            .header("if-match", "\"1\"")
            .json(&json!({"title": title})),
        Op::Complete => target.http.post(format!("{url}/api/tasks/{id}/complete")),
        Op::Reopen => target.http.post(format!("{url}/api/tasks/{id}/reopen")),
        Op::Delete => target.http.delete(format!("{url}/api/tasks/{id}")),
    };
    let started = Instant::now();
    let response = request.bearer_auth(&target.tokens[chain.user]).send().await;
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            outcome.latency = started.elapsed();
            outcome.verdict = Verdict::Error(format!("no response: {e}"));
            return outcome;
        }
    };
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    outcome.latency = started.elapsed();
    outcome.status = Some(status.as_u16());
    outcome.sequence = body["sequence"].as_i64();
    if op == Op::Create {
        outcome.task_id = body["id"].as_str().and_then(|s| Uuid::parse_str(s).ok());
    }
    outcome.verdict = judge(op, status, &outcome);
    outcome
}

/// The verdict for `op` answered with `status`.
fn judge(op: Op, status: StatusCode, outcome: &Outcome) -> Verdict {
    let changed = match op {
        Op::Create => status == StatusCode::CREATED,
        Op::Delete => status == StatusCode::NO_CONTENT,
        _ => status == StatusCode::OK,
    };
    if changed {
        let complete =
            outcome.task_id.is_some() && (op == Op::Delete || outcome.sequence.is_some());
        return if complete {
            Verdict::Changed
        } else {
            Verdict::Error(format!("{status} without the task's id or sequence"))
        };
    }
    if op == Op::UpdateIfMatch && status == StatusCode::PRECONDITION_FAILED {
        return Verdict::Refused;
    }
    Verdict::Error(format!("unexpected {status}"))
}
