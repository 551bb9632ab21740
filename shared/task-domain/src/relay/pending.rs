//! The relay's queries on the outbox: which keys wait, one key's next
//! rows, and what a publish changed. Each is served by the
//! partial index `outbox_pending (partition_key, id) WHERE sent_at IS NULL`
//! (V1); docs/benchmarks.md has their plans at a few 100,000 rows.
//!
//! Each runs as a statement prepared once per pooled connection
//! (`prepare_cached`): a statement sent as text is parsed, described and
//! planned by PostgreSQL on every call, an extra round trip and, for
//! `KEYS_AFTER`'s recursive walk, more CPU than running it
//! (docs/cpu-per-create.md).

use deadpool_postgres::GenericClient;

use crate::repo::RepoError;

/// The pending keys after `$1` in key order, at most `$2`, each with its
/// first unsent row's id and whether that row backs off (a 4xx, V3's
/// `next_attempt_at`).
///
/// The recursive part walks distinct pending keys through the index, one
/// probe per key however many rows a key has waiting; the lateral part
/// reads each key's first unsent row. So a walk costs its length, never the
/// depth of the backlog, and [`choose`] picks among the walked keys.
const KEYS_AFTER: &str = "
WITH RECURSIVE keys(k, n) AS (
    (SELECT partition_key, 1::bigint FROM outbox WHERE sent_at IS NULL AND partition_key > $1
     ORDER BY partition_key LIMIT 1)
  UNION ALL
    SELECT (SELECT o.partition_key FROM outbox o
            WHERE o.sent_at IS NULL AND o.partition_key > keys.k
            ORDER BY o.partition_key LIMIT 1), keys.n + 1
    FROM keys WHERE keys.k IS NOT NULL AND keys.n < $2
)
SELECT keys.k, head.id, coalesce(head.next_attempt_at > now(), false)
FROM keys CROSS JOIN LATERAL (
    SELECT o.id, o.next_attempt_at FROM outbox o
    WHERE o.partition_key = keys.k AND o.sent_at IS NULL
    ORDER BY o.id LIMIT 1
) head";

/// A key with unsent rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct WaitingKey {
    pub key: String,
    /// The id of its first unsent row: smaller waited longer.
    pub head: i64,
    /// That row backs off, so the whole key waits.
    pub blocked: bool,
}

/// Up to `limit` pending keys after `after`, in key order.
pub(super) async fn keys_after(
    client: &impl GenericClient,
    after: &str,
    limit: i64,
) -> Result<Vec<WaitingKey>, RepoError> {
    let statement = client.prepare_cached(KEYS_AFTER).await?;
    client
        .query(&statement, &[&after, &limit])
        .await?
        .iter()
        .map(|row| {
            Ok(WaitingKey {
                key: row.try_get(0)?,
                head: row.try_get(1)?,
                blocked: row.try_get(2)?,
            })
        })
        .collect()
}

/// The keys a pass publishes: of the walked ones, those not backing off,
/// the longest waiting first, at most `take`. A key that backs off never
/// takes a place, so a pile of refused keys cannot crowd the others out.
pub(super) fn choose(mut walked: Vec<WaitingKey>, take: usize) -> Vec<String> {
    walked.retain(|k| !k.blocked);
    walked.sort_by_key(|k| k.head);
    walked.into_iter().take(take).map(|k| k.key).collect()
}

/// One unsent row of a key.
#[derive(Debug, Clone)]
pub(super) struct PendingRow {
    pub id: i64,
    pub topic: String,
    pub payload: String,
    pub traceparent: Option<String>,
    pub attempts: i32,
    /// Backs off (a 4xx) until a later time: it and everything after it
    /// wait.
    pub blocked: bool,
}

/// The next `limit` unsent rows of `key`, in id (commit) order.
pub(super) async fn next_rows(
    tx: &impl GenericClient,
    key: &str,
    limit: i64,
) -> Result<Vec<PendingRow>, RepoError> {
    let statement = tx
        .prepare_cached(
            "SELECT id, topic, payload::text, traceparent, attempts,
                    coalesce(next_attempt_at > now(), false)
             FROM outbox WHERE partition_key = $1 AND sent_at IS NULL ORDER BY id LIMIT $2",
        )
        .await?;
    tx.query(&statement, &[&key, &limit])
        .await?
        .iter()
        .map(|r| {
            Ok(PendingRow {
                id: r.try_get(0)?,
                topic: r.try_get(1)?,
                payload: r.try_get(2)?,
                traceparent: r.try_get(3)?,
                attempts: r.try_get(4)?,
                blocked: r.try_get(5)?,
            })
        })
        .collect()
}

/// Marks `ids` sent, at the time of marking (daprd just answered), not
/// the transaction's start; one time for the whole call.
pub(super) async fn mark_sent(tx: &impl GenericClient, ids: &[i64]) -> Result<(), RepoError> {
    if ids.is_empty() {
        return Ok(());
    }
    let statement = tx
        .prepare_cached(
            "UPDATE outbox SET sent_at = statement_timestamp(), attempts = attempts + 1,
                    last_error = NULL, next_attempt_at = NULL
             WHERE id = ANY($1)",
        )
        .await?;
    tx.execute(&statement, &[&ids]).await?;
    Ok(())
}

/// Records a failed attempt of each row; they stay pending and are tried
/// again on the next pass.
pub(super) async fn mark_failed(
    tx: &impl GenericClient,
    failures: &[(i64, String)],
) -> Result<(), RepoError> {
    if failures.is_empty() {
        return Ok(());
    }
    let (ids, errors): (Vec<i64>, Vec<String>) = failures.iter().cloned().unzip();
    tx.execute(
        "UPDATE outbox o SET attempts = o.attempts + 1, last_error = f.error
         FROM unnest($1::bigint[], $2::text[]) AS f(id, error) WHERE o.id = f.id",
        &[&ids, &errors],
    )
    .await?;
    Ok(())
}

/// Records a refusal of row `id` and holds it (and so its key) until
/// `delay` from now.
pub(super) async fn mark_backoff(
    tx: &impl GenericClient,
    id: i64,
    error: &str,
    delay: std::time::Duration,
) -> Result<(), RepoError> {
    tx.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = $2,
                next_attempt_at = clock_timestamp() + $3::float8 * interval '1 second'
         WHERE id = $1",
        &[&id, &error, &delay.as_secs_f64()],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn waiting(key: &str, head: i64, blocked: bool) -> WaitingKey {
        WaitingKey {
            key: key.into(),
            head,
            blocked,
        }
    }

    #[test]
    fn the_longest_waiting_unblocked_keys_go_first() {
        let walked = vec![
            waiting("a", 30, false),
            waiting("b", 10, true),
            waiting("c", 20, false),
            waiting("d", 5, false),
        ];
        assert_eq!(choose(walked.clone(), 2), ["d", "c"]);
        assert_eq!(choose(walked, 10), ["d", "c", "a"]);
    }

    proptest! {
        #[test]
        fn blocked_keys_never_take_a_place(
            keys in proptest::collection::vec((0i64..1_000, any::<bool>()), 0..200),
            take in 0usize..50,
        ) {
            let walked: Vec<WaitingKey> = keys.iter().enumerate()
                .map(|(i, (head, blocked))| waiting(&format!("k{i}"), *head, *blocked))
                .collect();
            let free = walked.iter().filter(|k| !k.blocked).count();
            let chosen = choose(walked.clone(), take);
            prop_assert_eq!(chosen.len(), free.min(take));
            let oldest_left_out = walked.iter()
                .filter(|k| !k.blocked && !chosen.contains(&k.key))
                .map(|k| k.head).min();
            for key in &chosen {
                let k = walked.iter().find(|w| &w.key == key).unwrap();
                prop_assert!(!k.blocked);
                prop_assert!(oldest_left_out.is_none_or(|o| k.head <= o));
            }
        }
    }
}
