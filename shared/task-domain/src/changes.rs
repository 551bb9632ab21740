//! The change feed: a user's `task-updates` stream read back from the
//! outbox rows that published it (`GET /api/changes`).
//!
//! The outbox keeps every `task-updates` row with its `stream_offset` (V1's
//! partial index `outbox_user_stream (partition_key, stream_offset)` serves
//! the read) until the retention job ([`crate::prune`]) removes it. So the
//! feed is the durable log that the sync gateway replays on a resume and
//! that a client without a WebSocket polls.
//!
//! One statement reads the stream's head and the rows after the client's
//! position, so both come from one snapshot: a change commits its offset
//! and its outbox row together, and one user's changes commit in offset
//! order (the stream row lock, [`crate::stream::next_offset`]), so the rows
//! a snapshot shows are exactly the offsets up to its head.

use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use uuid::Uuid;

use crate::repo::RepoError;
use crate::stream::StreamPosition;

/// Events per page when the client names no limit.
pub const DEFAULT_LIMIT: i64 = 100;
/// The largest page: bounds one response and one statement.
pub const MAX_LIMIT: i64 = 1000;

/// What the feed answers for a position.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Feed {
    /// The events after the client's offset, in order, and the offset to
    /// ask from next (the last event's, or the client's own when none).
    Events {
        epoch: Uuid,
        events: Vec<serde_json::Value>,
        next_offset: i64,
    },
    /// The position means nothing any more (another epoch, an offset the
    /// stream never reached, or history already pruned): reload, then
    /// follow from [`read_head`]'s position.
    Reset { reset: bool, epoch: Uuid },
}

impl Feed {
    fn reset(epoch: Uuid) -> Self {
        Feed::Reset { reset: true, epoch }
    }
}

/// Creates the user's stream row if it has none, so the epoch a client is
/// told before its first change is the one its changes will carry.
const ENSURE_STREAM: &str =
    "INSERT INTO user_streams (user_id, epoch, last_offset) VALUES ($1, $2, 0)
     ON CONFLICT (user_id) DO NOTHING";

/// The head and up to `$4` rows after `$2`, of the head's epoch, in one
/// snapshot. `stream_offset IS NOT NULL` lets the planner use the partial
/// index; the epoch filter keeps rows of a lost history out.
const READ_FEED: &str = "
SELECT s.epoch, s.last_offset, o.stream_offset, o.payload
FROM user_streams s
LEFT JOIN LATERAL (
    SELECT stream_offset, payload FROM outbox
    WHERE partition_key = s.user_id AND topic = $3 AND stream_offset IS NOT NULL
      AND stream_offset > $2 AND payload->'data'->>'epoch' = s.epoch::text
    ORDER BY stream_offset LIMIT $4
) o ON true
WHERE s.user_id = $1
ORDER BY o.stream_offset";

/// The user's current position: where a new client starts following.
pub async fn read_head(pool: &Pool, user_id: &str) -> Result<StreamPosition, RepoError> {
    let client = pool.get().await?;
    ensure_stream(&client, user_id).await?;
    let row = client
        .query_one(
            "SELECT epoch, last_offset FROM user_streams WHERE user_id = $1",
            &[&user_id],
        )
        .await?;
    Ok(StreamPosition {
        epoch: row.try_get(0)?,
        offset: row.try_get(1)?,
    })
}

/// The user's events after `after` in `epoch`, at most `limit` (clamped to
/// 1..=[`MAX_LIMIT`]), or a reset.
pub async fn read(
    pool: &Pool,
    user_id: &str,
    epoch: Uuid,
    after: i64,
    limit: i64,
) -> Result<Feed, RepoError> {
    let client = pool.get().await?;
    ensure_stream(&client, user_id).await?;
    let limit = limit.clamp(1, MAX_LIMIT);
    let topic = contracts::Topic::TaskUpdates.name();
    let rows = client
        .query(READ_FEED, &[&user_id, &after, &topic, &limit])
        .await?;
    let Some(first) = rows.first() else {
        // ENSURE_STREAM just made sure the row exists.
        return Err(RepoError::Corrupt(format!("no stream row for {user_id}")));
    };
    let head = StreamPosition {
        epoch: first.try_get(0)?,
        offset: first.try_get(1)?,
    };
    let mut found = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(offset) = row.try_get::<_, Option<i64>>(2)? {
            found.push((offset, row.try_get(3)?));
        }
    }
    Ok(decide(head, epoch, after, found))
}

async fn ensure_stream(client: &impl GenericClient, user_id: &str) -> Result<(), RepoError> {
    client
        .execute(ENSURE_STREAM, &[&user_id, &Uuid::new_v4()])
        .await?;
    Ok(())
}

/// The answer for a client at (`epoch`, `after`) given the stream's `head`
/// and the rows found after `after` in offset order.
///
/// The rows must continue the client's position without a hole: the first
/// is `after + 1`, each next one follows. Retention deletes by age, and two
/// overlapping changes of one user can have their ages in the other order
/// than their offsets, so a pruned row can leave a hole; the page stops
/// before it and the next read (starting at the hole) is a reset.
pub fn decide(
    head: StreamPosition,
    epoch: Uuid,
    after: i64,
    rows: Vec<(i64, serde_json::Value)>,
) -> Feed {
    if epoch != head.epoch || after > head.offset || after < 0 {
        return Feed::reset(head.epoch);
    }
    if after == head.offset {
        return Feed::Events {
            epoch: head.epoch,
            events: Vec::new(),
            next_offset: after,
        };
    }
    let mut next = after;
    let mut events = Vec::with_capacity(rows.len());
    for (offset, event) in rows {
        if offset != next + 1 {
            break;
        }
        next = offset;
        events.push(event);
    }
    if events.is_empty() {
        // Behind the head, yet the next offset is gone: pruned.
        return Feed::reset(head.epoch);
    }
    Feed::Events {
        epoch: head.epoch,
        events,
        next_offset: next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn head(offset: i64) -> StreamPosition {
        StreamPosition {
            epoch: Uuid::from_u128(7),
            offset,
        }
    }

    fn rows(offsets: impl IntoIterator<Item = i64>) -> Vec<(i64, serde_json::Value)> {
        offsets
            .into_iter()
            .map(|o| (o, json!({"data": {"offset": o}})))
            .collect()
    }

    fn offsets(feed: &Feed) -> Vec<i64> {
        match feed {
            Feed::Events { events, .. } => events
                .iter()
                .map(|e| e["data"]["offset"].as_i64().unwrap())
                .collect(),
            Feed::Reset { .. } => panic!("reset: {feed:?}"),
        }
    }

    #[test]
    fn another_epoch_or_a_future_offset_is_a_reset() {
        let other = Uuid::from_u128(8);
        assert_eq!(
            decide(head(5), other, 2, rows(3..=5)),
            Feed::reset(head(5).epoch)
        );
        assert_eq!(
            decide(head(5), head(5).epoch, 6, rows([])),
            Feed::reset(head(5).epoch)
        );
        assert_eq!(
            decide(head(5), head(5).epoch, -1, rows(0..=5)),
            Feed::reset(head(5).epoch)
        );
    }

    #[test]
    fn at_the_head_the_page_is_empty_not_a_reset() {
        assert_eq!(
            decide(head(5), head(5).epoch, 5, rows([])),
            Feed::Events {
                epoch: head(5).epoch,
                events: vec![],
                next_offset: 5
            }
        );
        // A stream nobody wrote to yet.
        assert!(matches!(
            decide(head(0), head(0).epoch, 0, rows([])),
            Feed::Events { next_offset: 0, .. }
        ));
    }

    #[test]
    fn pruned_history_is_a_reset_and_a_hole_ends_the_page() {
        let e = head(9).epoch;
        // Offsets 1..=3 were pruned.
        assert_eq!(decide(head(9), e, 1, rows(4..=9)), Feed::reset(e));
        // 6 was pruned before 5 (ages out of offset order): stop before it.
        let feed = decide(head(9), e, 3, rows([4, 5, 7, 8, 9]));
        assert_eq!(offsets(&feed), vec![4, 5]);
        assert!(matches!(feed, Feed::Events { next_offset: 5, .. }));
        assert_eq!(decide(head(9), e, 5, rows([7, 8, 9])), Feed::reset(e));
    }

    #[test]
    fn the_wire_forms_are_the_documented_ones() {
        let e = Uuid::from_u128(1);
        assert_eq!(
            serde_json::to_value(Feed::reset(e)).unwrap(),
            json!({"reset": true, "epoch": e})
        );
        assert_eq!(
            serde_json::to_value(decide(head(1), head(1).epoch, 0, rows([1]))).unwrap(),
            json!({"epoch": head(1).epoch, "events": [{"data": {"offset": 1}}], "next_offset": 1})
        );
    }

    proptest! {
        /// Any page is the contiguous run right after the client's offset,
        /// and paging from `next_offset` covers the stream once, in order.
        #[test]
        fn paging_reads_every_offset_once_in_order(
            head_offset in 0i64..200,
            start in 0i64..200,
            page in 1usize..50,
        ) {
            let start = start.min(head_offset);
            let e = head(head_offset).epoch;
            let mut seen = Vec::new();
            let mut at = start;
            loop {
                let page_rows = rows((at + 1..=head_offset).take(page));
                match decide(head(head_offset), e, at, page_rows) {
                    Feed::Events { events, next_offset, .. } => {
                        if events.is_empty() {
                            prop_assert_eq!(next_offset, head_offset);
                            break;
                        }
                        for ev in &events {
                            seen.push(ev["data"]["offset"].as_i64().unwrap());
                        }
                        prop_assert_eq!(next_offset, *seen.last().unwrap());
                        at = next_offset;
                    }
                    Feed::Reset { .. } => prop_assert!(false, "reset while history is whole"),
                }
            }
            prop_assert_eq!(seen, (start + 1..=head_offset).collect::<Vec<_>>());
        }
    }
}
