//! Runs the planned chains against task-api with a bound on requests in
//! flight, and records every operation's outcome. Each operation is sent
//! like a real client sends it through a crash ([`super::retry`]), so a
//! chain goes on after a lost answer and the run completes every operation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::plan::{Chain, Op};
use super::retry::{Call, Sent, send_settled};

/// What task-api answered to one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted: the task changed (201, 200 or 204, or a retry's read
    /// showed the change).
    Changed,
    /// Refused as the plan allows (412 on a stale `If-Match`): no change.
    Refused,
    /// The answer was lost (no response, 5xx) and neither the retries nor a
    /// read of the task could tell whether it applied: the checker accepts
    /// it applied exactly once or not at all.
    Unknown(String),
    /// Anything else: a wrong answer.
    Error(String),
}

/// One operation and its outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub chain: usize,
    pub user: usize,
    pub op: Op,
    pub task_id: Option<Uuid>,
    /// The title a create or update wrote (unique in the run): how the
    /// checker finds this operation's event.
    pub title: String,
    /// The last HTTP status, or `None` when no response came.
    pub status: Option<u16>,
    /// The task's sequence in the response body (not sent for a delete,
    /// nor known when a read decided the outcome).
    pub sequence: Option<i64>,
    pub verdict: Verdict,
    /// Requests sent for it (1 unless an answer was lost).
    pub attempts: u32,
    pub latency: Duration,
}

impl Outcome {
    pub fn is_5xx(&self) -> bool {
        self.status.is_some_and(|s| s >= 500)
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self.verdict, Verdict::Unknown(_))
    }
}

/// Where and as whom the operations run.
pub struct Target {
    pub http: reqwest::Client,
    pub url: String,
    /// A bearer token per user index.
    pub tokens: Vec<String>,
    pub permits: Arc<Semaphore>,
    /// Titles and idempotency keys start with it: unique to the run.
    pub tag: String,
    /// How long a lost answer is retried (a task-api restart must fit).
    pub retry_for: Duration,
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
    // The task's sequence as this client last saw it.
    let mut known = None;
    for (s, stage) in chain.stages.iter().enumerate() {
        let calls = stage.iter().enumerate().map(|(k, op)| {
            let title = format!("{} {} {s}.{k}", target.tag, chain.index);
            call(&target, &chain, *op, task_id, known, title)
        });
        let done = futures::future::join_all(calls).await;
        if s == 0 {
            task_id = done.first().and_then(|o| o.task_id);
        }
        known = done.iter().filter_map(|o| o.sequence).chain(known).max();
        outcomes.extend(done);
        // Without its task the rest of the chain cannot run; the create
        // is already recorded as unknown or an error.
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
    known: Option<i64>,
    title: String,
) -> Outcome {
    // Visible ASCII only (no spaces): task-api refuses other keys.
    let key = format!("{}-{}", target.tag, chain.index);
    let call = Call {
        user: chain.user,
        op,
        task_id,
        title: &title,
        key: &key,
        known,
    };
    let started = Instant::now();
    let sent = send_settled(target, &call).await;
    let mut outcome = Outcome {
        chain: chain.index,
        user: chain.user,
        op,
        task_id,
        title: title.clone(),
        status: sent.status.map(|s| s.as_u16()),
        sequence: None,
        verdict: Verdict::Error("not sent".into()),
        attempts: sent.attempts,
        latency: started.elapsed(),
    };
    let Sent {
        status,
        body,
        verdict,
        ..
    } = sent;
    if let Some(verdict) = verdict {
        outcome.verdict = verdict;
        return outcome;
    }
    let Some(status) = status else {
        return outcome;
    };
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
