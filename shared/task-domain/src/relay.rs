//! The outbox relay: publishes committed events through Dapr and marks them
//! sent.
//!
//! Order: one partition key (user) is published one event at a time, in
//! outbox id order, each waiting for daprd's 204; different keys go in
//! parallel. A transaction-scoped advisory lock per key means two relays
//! (several task-api replicas) never publish the same key at once, and a
//! failed publish stops that key's batch so nothing overtakes it. A crash
//! between publish and commit re-publishes the same event ids, which
//! consumers deduplicate: at least once out, exactly once in effect.

use std::sync::Arc;
use std::time::Duration;

use dapr_http::DaprClient;
use deadpool_postgres::Pool;
use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;

use crate::repo::RepoError;

/// Advisory-lock namespace of the relay (first key of the two-int form).
const RELAY_LOCK_NAMESPACE: i32 = 0x7e1a_0001;

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub pubsub: String,
    /// Rows published per key per pass, bounding a pass's redelivery window.
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
    pub failed: Counter,
}

#[derive(Clone)]
pub struct Relay {
    pool: Pool,
    dapr: DaprClient,
    config: RelayConfig,
    wake: Arc<Notify>,
    metrics: RelayMetrics,
}

struct PendingRow {
    id: i64,
    topic: String,
    payload: String,
    traceparent: Option<String>,
}

impl Relay {
    pub fn new(pool: Pool, dapr: DaprClient, config: RelayConfig, metrics: RelayMetrics) -> Self {
        Self {
            pool,
            dapr,
            config,
            wake: Arc::new(Notify::new()),
            metrics,
        }
    }

    /// Asks for a pass now (called right after a change commits).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs passes until `shutdown` resolves: on every wake-up and every
    /// poll interval.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            if let Err(error) = self.pass().await {
                tracing::warn!(%error, "outbox relay pass failed; will retry");
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// Publishes what is pending now. Returns how many events were sent.
    pub async fn pass(&self) -> Result<u64, RepoError> {
        let keys: Vec<String> = {
            let client = self.pool.get().await?;
            client
                .query(
                    "SELECT DISTINCT partition_key FROM outbox WHERE sent_at IS NULL LIMIT 1024",
                    &[],
                )
                .await?
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<_, _>>()?
        };
        let results: Vec<Result<u64, RepoError>> = futures::stream::iter(keys)
            .map(|key| async move { self.publish_key(&key).await })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        let mut sent = 0;
        for result in results {
            sent += result?;
        }
        Ok(sent)
    }

    /// Publishes one key's pending events in order, stopping at the first
    /// failure. Skips the key if another relay holds it.
    async fn publish_key(&self, key: &str) -> Result<u64, RepoError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let locked: bool = tx
            .query_one(
                "SELECT pg_try_advisory_xact_lock($1, hashtext($2))",
                &[&RELAY_LOCK_NAMESPACE, &key],
            )
            .await?
            .try_get(0)?;
        if !locked {
            return Ok(0);
        }
        let rows: Vec<PendingRow> = tx
            .query(
                "SELECT id, topic, payload::text, traceparent FROM outbox
                 WHERE partition_key = $1 AND sent_at IS NULL ORDER BY id LIMIT $2",
                &[&key, &self.config.batch_size],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(PendingRow {
                    id: r.try_get(0)?,
                    topic: r.try_get(1)?,
                    payload: r.try_get(2)?,
                    traceparent: r.try_get(3)?,
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()?;
        let mut sent = 0;
        for row in rows {
            let published = self
                .dapr
                .publish_cloud_event(
                    &self.config.pubsub,
                    &row.topic,
                    key,
                    row.payload.as_bytes(),
                    row.traceparent.as_deref(),
                )
                .await;
            match published {
                Ok(()) => {
                    tx.execute(
                        "UPDATE outbox SET sent_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = $1",
                        &[&row.id],
                    )
                    .await?;
                    self.metrics.published.inc();
                    sent += 1;
                }
                Err(error) => {
                    self.metrics.failed.inc();
                    tracing::warn!(outbox_id = row.id, topic = %row.topic, %error, "publish failed; key paused until the next pass");
                    tx.execute(
                        "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1",
                        &[&row.id, &error.to_string()],
                    )
                    .await?;
                    break;
                }
            }
        }
        tx.commit().await?;
        Ok(sent)
    }
}
