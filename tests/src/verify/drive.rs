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
    /// No change, as the plan allows: 412 on a stale `If-Match`, or a
    /// status change to the status the task already had.
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
/// of requests at a time; returns every outcome. Chain `i` starts no
/// earlier than `starts[i]` after the call (at once without one: see
/// [`super::plan::starts`]); one that waited for a slot past its time
/// starts at once.
pub async fn run(
    target: Arc<Target>,
    chains: Vec<Chain>,
    starts: Vec<Duration>,
    in_flight: usize,
) -> Vec<Outcome> {
    let began = tokio::time::Instant::now();
    let mut starts = starts.into_iter();
    futures::stream::iter(chains)
        .map(|chain| {
            let at = began + starts.next().unwrap_or_default();
            let target = target.clone();
            async move {
                tokio::time::sleep_until(at).await;
                run_chain(target, chain).await
            }
        })
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
    outcome.verdict = judge(op, status, &outcome, known);
    outcome
}

/// The verdict for `op` answered with `status`, the task having been at
/// sequence `known` (as far as the client knows) before it.
fn judge(op: Op, status: StatusCode, outcome: &Outcome, known: Option<i64>) -> Verdict {
    let changed = match op {
        Op::Create => status == StatusCode::CREATED,
        Op::Delete => status == StatusCode::NO_CONTENT,
        _ => status == StatusCode::OK,
    };
    // Setting the status a task already has changes nothing and emits
    // nothing (task_domain's `set_status`) yet answers 200: a complete or
    // reopen after one whose outcome stayed unknown and did not apply. An
    // answer at the sequence the client knew is no change.
    let same = matches!(op, Op::Complete | Op::Reopen)
        && outcome
            .sequence
            .zip(known)
            .is_some_and(|(now, before)| now <= before);
    if changed && same {
        return Verdict::Refused;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(op: Op, sequence: Option<i64>) -> Outcome {
        Outcome {
            chain: 0,
            user: 0,
            op,
            task_id: Some(Uuid::from_u128(1)),
            title: String::new(),
            status: Some(200),
            sequence,
            verdict: Verdict::Changed,
            attempts: 1,
            latency: Duration::ZERO,
        }
    }

    #[test]
    fn a_status_change_answered_at_the_known_sequence_changed_nothing() {
        // The complete before stayed unknown and did not apply: the reopen
        // finds the task pending and answers 200 at the same sequence.
        let reopen = answered(Op::Reopen, Some(3));
        assert_eq!(
            judge(Op::Reopen, StatusCode::OK, &reopen, Some(3)),
            Verdict::Refused
        );
        assert_eq!(
            judge(
                Op::Reopen,
                StatusCode::OK,
                &answered(Op::Reopen, Some(4)),
                Some(3)
            ),
            Verdict::Changed
        );
        let complete = answered(Op::Complete, Some(2));
        assert_eq!(
            judge(Op::Complete, StatusCode::OK, &complete, Some(2)),
            Verdict::Refused
        );
        // An update always writes (a new title).
        let update = answered(Op::Update, Some(2));
        assert_eq!(
            judge(Op::Update, StatusCode::OK, &update, Some(2)),
            Verdict::Changed
        );
    }
}
