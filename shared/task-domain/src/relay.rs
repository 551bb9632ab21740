//! The outbox relay: publishes committed events through Dapr and marks them
//! sent.
//!
//! - Order: a partition key (user) is published in outbox id order per
//!   topic, which is the order Kafka keeps and every consumer sees: one
//!   daprd bulk call at a time, each carrying that key's next events of one
//!   topic (`bulk`); different keys go in parallel. A transaction-
//!   scoped advisory lock per key, held from reading the rows until they
//!   are marked, means two relays (several task-api replicas) never publish
//!   the same key at once. A failed publish stops the key for this pass.
//!   A row is marked sent only when every earlier row of its key and topic
//!   is, so the marks never run ahead of the topic's order.
//! - Partial failures: daprd answers a bulk call some of whose events
//!   failed with 500 and the failed entries; the rest were written, and
//!   an event after a failed one can be among them (`bulk::settle` cites
//!   where). The events before the first failed one are marked sent; the
//!   failed one backs off and holds its key like a refusal (below), and it
//!   and every later event stay pending, to go out again in id order, the
//!   failed one in a call of its own. So the topic has the key's whole
//!   sequence in order after the failed event, preceded by stray copies
//!   of the later events daprd wrote in that one call (counted by
//!   `outbox_published_overtaking`): consumers deduplicate by event id, and
//!   the per-user offset of `task-updates` shows them as a gap the sync
//!   gateway fills from the change feed. A failing event goes out alone
//!   from then on, so nothing overtakes it twice.
//! - Turns: a key is published in turns of one transaction each: one read
//!   of its next rows, a daprd call per topic among them (a create's
//!   `task-events` and `task-updates` events go in one turn), one commit.
//!   A short read is all the key had, so the turn ends it without another
//!   read; a pass that settled every key is not followed by an empty one
//!   (commits meanwhile wake the relay). docs/cpu-per-create.md measures
//!   what that saved.
//! - Marking: each call's rows are marked sent (`sent_at`, when daprd
//!   answered) right after it; the turn commits after its last call (at
//!   most one per topic), so a crash loses at most those calls, whose
//!   events are published again under the same ids and deduplicated by
//!   consumers: at least once out, exactly once in effect.
//! - Refusals: a call daprd refuses as a client error (4xx) publishes
//!   nothing and will not succeed by itself. Its first row backs off
//!   (`attempts`, `next_attempt_at`, doubling up to a cap), is counted and
//!   logged once, and holds back the rest of its key, every topic, until
//!   it goes out. Other failures (daprd or the broker down) are retried on
//!   the next pass.
//! - Fairness: a pass walks up to [`KEYS_WALKED`] waiting keys, in key
//!   order from where the last pass stopped (wrapping around), and
//!   publishes the [`KEYS_PER_PASS`] of them that waited longest, skipping
//!   keys that back off. So a pass costs the same with 3,000 or 300,000
//!   keys waiting, every key is reached within a few passes, and refused
//!   keys never crowd the others out.
//! - Leftovers: [`Relay::run`] passes on every wake-up (after a commit) and
//!   every poll interval; [`Relay::drain`] is the same work on demand, for
//!   a trigger that wakes a scaled-to-zero task-api.

mod backoff;
mod bulk;
mod pending;
pub mod settings;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dapr_http::{DaprClient, DaprError};
use deadpool_postgres::Pool;
use futures::{FutureExt, StreamExt};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;

pub use backoff::Backoff;
pub use settings::RelaySettings;

use crate::repo::RepoError;
use bulk::Plan;

/// Advisory-lock namespace of the relay (first key of the two-int form).
const RELAY_LOCK_NAMESPACE: i32 = 0x7e1a_0001;
/// Keys one pass publishes, the longest waiting first.
pub const KEYS_PER_PASS: usize = 1024;
/// Keys one pass looks at (an index probe each) to choose them.
pub const KEYS_WALKED: i64 = 4096;
/// daprd calls one key gets per pass before the pass moves on, so a key
/// with a deep backlog shares the pass with the others.
const CALLS_PER_KEY: usize = 10;
/// Event bytes per daprd call (its request-body limit is 4 MiB).
const MAX_CALL_BYTES: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub pubsub: String,
    /// Events per daprd call (one key, one topic).
    pub batch_size: i64,
    /// Keys published in parallel.
    pub concurrency: usize,
    /// How often leftovers (a crash, daprd or the broker down) are retried.
    pub poll_interval: Duration,
}

/// Counters the relay keeps, registered by the function that runs it.
#[derive(Debug, Clone, Default)]
pub struct RelayMetrics {
    pub published: Counter,
    /// Events a failed call left unsent (daprd or the broker unavailable,
    /// or a partly failed call: its failed event and all after it).
    pub failed: Counter,
    /// Calls daprd refused (4xx), each backing its first row off.
    pub refused: Counter,
    /// daprd publish calls made.
    pub calls: Counter,
    /// Events daprd wrote after an earlier event of their call failed: a
    /// stray copy on the topic ahead of it (published again after it).
    pub overtaken: Counter,
}

impl RelayMetrics {
    /// Each counter with the name and help a function registers it under
    /// (prefixed with the function's namespace).
    pub fn counters(&self) -> [(&'static str, &'static str, Counter); 5] {
        [
            (
                "outbox_published",
                "Events the relay published",
                self.published.clone(),
            ),
            (
                "outbox_publish_failures",
                "Events a failed publish left unsent; retried on the next pass, or after the failed event's backoff",
                self.failed.clone(),
            ),
            (
                "outbox_publish_refused",
                "Publishes daprd refused as a client error (4xx); the event backs off and holds its key",
                self.refused.clone(),
            ),
            (
                "outbox_publish_calls",
                "Bulk publish calls to daprd (one key, one topic each)",
                self.calls.clone(),
            ),
            (
                "outbox_published_overtaking",
                "Events daprd wrote after an earlier event of their call failed: a copy ahead of it on the topic; published again after it",
                self.overtaken.clone(),
            ),
        ]
    }
}

#[derive(Clone)]
pub struct Relay {
    pool: Pool,
    dapr: DaprClient,
    config: RelayConfig,
    backoff: Backoff,
    wake: Arc<Notify>,
    metrics: RelayMetrics,
    /// The last key the previous pass walked to; `""` starts over.
    cursor: Arc<Mutex<String>>,
}

/// A relay running in the background ([`Relay::spawn`]).
pub struct RelayTask {
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl RelayTask {
    /// Stops the relay, waiting at most `grace` for the pass in flight. A
    /// call cut off rolls its transaction back: those events go out again
    /// on the next start under the same ids, and consumers deduplicate.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(grace, self.handle).await.is_err() {
            tracing::warn!("outbox relay still busy after the grace period; stopping it");
        }
    }
}

/// What one daprd call did.
enum Call {
    /// Published this many.
    Sent(u64),
    /// A failure stopped the key for this pass, after this many were sent.
    Stopped(u64),
}

/// What one turn (one transaction) did for a key.
enum Turn {
    /// Published this many; the key may have more.
    More(u64),
    /// Published this many and has nothing more to do now: drained,
    /// backing off, stopped by a failure, or another relay has it.
    Settled(u64),
}

impl Relay {
    pub fn new(pool: Pool, dapr: DaprClient, config: RelayConfig, metrics: RelayMetrics) -> Self {
        Self {
            pool,
            dapr,
            config,
            backoff: Backoff::default(),
            wake: Arc::new(Notify::new()),
            metrics,
            cursor: Arc::default(),
        }
    }

    /// Replaces the refusal backoff (default: 1 s doubling to 5 min).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Asks for a pass now (called right after a change commits).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs passes until `shutdown` resolves: again at once while a pass
    /// publishes something and may have left more (a backlog drains
    /// without waiting), else on the next wake-up or poll interval.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let progressed = match self.pass_settling().await {
                Ok((sent, settled)) => sent > 0 && !settled,
                Err(error) => {
                    tracing::warn!(%error, "outbox relay pass failed; will retry");
                    false
                }
            };
            if progressed {
                if (&mut shutdown).now_or_never().is_some() {
                    return;
                }
                continue;
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// Runs the relay in the background until [`RelayTask::stop`].
    pub fn spawn(self) -> RelayTask {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let handle = tokio::spawn(self.run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
        RelayTask { stop, handle }
    }

    /// Passes until one publishes nothing or `budget` is spent; returns how
    /// many events were published. A pass cut off by the budget loses only
    /// its calls in flight (published again later, same ids).
    pub async fn drain(&self, budget: Duration) -> Result<u64, RepoError> {
        let deadline = tokio::time::Instant::now() + budget;
        let mut total = 0;
        while let Ok(pass) = tokio::time::timeout_at(deadline, self.pass()).await {
            match pass? {
                0 => break,
                sent => total += sent,
            }
        }
        Ok(total)
    }

    /// Unsent events, backing-off ones included.
    pub async fn pending(&self) -> Result<i64, RepoError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one("SELECT count(*) FROM outbox WHERE sent_at IS NULL", &[])
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Publishes what is pending now. Returns how many events were sent.
    pub async fn pass(&self) -> Result<u64, RepoError> {
        Ok(self.pass_settling().await?.0)
    }

    /// A pass, and whether it left nothing behind: every waiting key was
    /// reached and each is settled (drained, backing off or failed). Only
    /// a pass that may have left work is followed by another at once;
    /// anything committed meanwhile wakes the relay ([`Relay::wake`]).
    async fn pass_settling(&self) -> Result<(u64, bool), RepoError> {
        let (keys, reached_all) = self.waiting_keys().await?;
        let reached_all = reached_all && keys.len() < KEYS_PER_PASS;
        let done: Vec<(u64, bool)> = futures::stream::iter(keys)
            .map(|key| async move {
                self.publish_key(&key).await.unwrap_or_else(|error| {
                    tracing::warn!(partition_key = %key, %error, "outbox relay: key skipped this pass");
                    (0, true)
                })
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        let settled = reached_all && done.iter().all(|(_, settled)| *settled);
        Ok((done.iter().map(|(sent, _)| sent).sum(), settled))
    }

    /// The keys this pass publishes: a walk from the cursor, continued from
    /// the start when it reaches the end, then [`pending::choose`]; and
    /// whether the walk covered every waiting key.
    async fn waiting_keys(&self) -> Result<(Vec<String>, bool), RepoError> {
        let client = self.pool.get().await?;
        let cursor = self.cursor.lock().map(|c| c.clone()).unwrap_or_default();
        let mut walked = pending::keys_after(&client, &cursor, KEYS_WALKED).await?;
        let reached_end = (walked.len() as i64) < KEYS_WALKED;
        if reached_end && !cursor.is_empty() {
            let rest = KEYS_WALKED - walked.len() as i64;
            let from_start = pending::keys_after(&client, "", rest).await?;
            walked.extend(from_start.into_iter().filter(|k| k.key <= cursor));
        }
        let next = match walked.last() {
            Some(last) if !reached_end => last.key.clone(),
            _ => String::new(),
        };
        if let Ok(mut c) = self.cursor.lock() {
            *c = next;
        }
        // Short of the walk's length: it reached the end and, from the
        // start, the cursor (or the end again).
        let covered = (walked.len() as i64) < KEYS_WALKED;
        Ok((pending::choose(walked, KEYS_PER_PASS), covered))
    }

    /// Publishes one key's pending events in order, a turn at a time, until
    /// it has nothing publishable now, a call fails, or it had its share of
    /// calls. Returns what it sent and whether the key is settled for now
    /// (false: it may have more, the pass should come back at once).
    async fn publish_key(&self, key: &str) -> Result<(u64, bool), RepoError> {
        let mut sent = 0;
        let mut calls_left = CALLS_PER_KEY;
        while calls_left > 0 {
            match self.publish_turn(key, &mut calls_left).await? {
                Turn::More(n) => sent += n,
                Turn::Settled(n) => return Ok((sent + n, true)),
            }
        }
        Ok((sent, false))
    }

    /// One turn for `key`, in one transaction: lock the key, read its next
    /// rows, publish them with a daprd call per topic (each call's rows
    /// marked as soon as daprd answers), commit. At most one call per
    /// topic, so a crash re-publishes at most that.
    async fn publish_turn(&self, key: &str, calls_left: &mut usize) -> Result<Turn, RepoError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let lock = tx
            .prepare_cached("SELECT pg_try_advisory_xact_lock($1, hashtext($2))")
            .await?;
        let locked: bool = tx
            .query_one(&lock, &[&RELAY_LOCK_NAMESPACE, &key])
            .await?
            .try_get(0)?;
        if !locked {
            return Ok(Turn::Settled(0));
        }
        let limit = self.config.batch_size.max(1);
        let mut rows = pending::next_rows(&tx, key, limit).await?;
        // A short read holds all the key had: once it is published, the
        // key is drained, with no further read to find that out.
        let full = rows.len() as i64 >= limit;
        let mut topics = Vec::new();
        let mut sent = 0;
        let turn = loop {
            let (topic, chosen, rest) = match bulk::plan(rows, MAX_CALL_BYTES) {
                Plan::Empty if full => break Turn::More(sent),
                Plan::Empty | Plan::Blocked => break Turn::Settled(sent),
                Plan::Publish { topic, rows, rest } => (topic, rows, rest),
            };
            if *calls_left == 0 || topics.contains(&topic) {
                break Turn::More(sent);
            }
            *calls_left -= 1;
            match self.call(&tx, key, &topic, &chosen).await? {
                Call::Sent(n) => sent += n,
                Call::Stopped(n) => break Turn::Settled(sent + n),
            }
            topics.push(topic);
            rows = rest;
        };
        tx.commit().await?;
        Ok(turn)
    }

    /// One daprd call with `rows` (one key, one topic), and its marks.
    async fn call(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        key: &str,
        topic: &str,
        rows: &[pending::PendingRow],
    ) -> Result<Call, RepoError> {
        let entries = bulk::entries(rows)?;
        self.metrics.calls.inc();
        let answer = self
            .dapr
            .bulk_publish_cloud_events(&self.config.pubsub, topic, key, &entries)
            .await;
        Ok(match answer {
            Ok(report) => self.settle(tx, key, topic, rows, &report).await?,
            Err(DaprError::Rejected { status, body }) => {
                let first = &rows[0];
                let error = format!("daprd refused the publish with {status}: {body}");
                let delay = self.back_off(tx, first, &error).await?;
                self.metrics.refused.inc();
                tracing::warn!(outbox_id = first.id, partition_key = %key, %topic, status,
                    attempts = first.attempts.saturating_add(1),
                    retry_in_s = delay.as_secs_f64(), %body,
                    "daprd refused the publish; the key waits behind this event");
                Call::Stopped(0)
            }
            Err(error @ DaprError::Unavailable(_)) => {
                pending::mark_failed(tx, &[(rows[0].id, error.to_string())]).await?;
                self.metrics.failed.inc_by(rows.len() as u64);
                tracing::warn!(outbox_id = rows[0].id, partition_key = %key, %topic, %error,
                    "publish failed; the key waits for the next pass");
                Call::Stopped(0)
            }
        })
    }

    /// Marks what daprd's report says was written in order (the rows
    /// before the first failed one); the failed row backs off and holds
    /// the key, it and the rest stay pending (`bulk::settle`).
    async fn settle(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        key: &str,
        topic: &str,
        rows: &[pending::PendingRow],
        report: &dapr_http::BulkReport,
    ) -> Result<Call, RepoError> {
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let settled = bulk::settle(&ids, report);
        pending::mark_sent(tx, &settled.sent).await?;
        self.metrics.published.inc_by(settled.sent.len() as u64);
        let sent = settled.sent.len() as u64;
        let Some((id, error)) = &settled.failed else {
            return Ok(Call::Sent(sent));
        };
        let row = rows.iter().find(|r| r.id == *id).unwrap_or(&rows[0]);
        let delay = self.back_off(tx, row, error).await?;
        self.metrics.failed.inc_by(1 + settled.held as u64);
        self.metrics.overtaken.inc_by(settled.overtaken as u64);
        tracing::warn!(outbox_id = id, partition_key = %key, %topic, %error, sent,
            held = settled.held, overtaken = settled.overtaken,
            retry_in_s = delay.as_secs_f64(),
            "publish partly failed; the failed event and the rest of its key wait for its retry");
        Ok(Call::Stopped(sent))
    }

    /// Backs `row` off (its attempts, doubling), which holds its key on
    /// every topic until then; returns the delay.
    async fn back_off(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        row: &pending::PendingRow,
        error: &str,
    ) -> Result<Duration, RepoError> {
        let delay = self.backoff.delay(row.attempts.saturating_add(1));
        pending::mark_backoff(tx, row.id, error, delay).await?;
        Ok(delay)
    }
}
