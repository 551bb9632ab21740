//! Delivery history and failures, kept in the state store beside the
//! records: a per-user index (`history|<user>`, the newest
//! [`HISTORY_LEN`] delivery keys) and one index of failed deliveries
//! (`failed|index`), each updated by ETag so concurrent writers do not
//! lose each other's entries. A failed delivery is also published to
//! `reminders-dlq` for operators' tooling.

use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::delivery::DeliveryRecord;
use crate::state::StateError;

pub const HISTORY_LEN: usize = 200;
const FAILED_INDEX: &str = "failed|index";
const FAILED_LEN: usize = 1_000;
/// Tries of an index update that keeps losing its ETag race.
const PUSH_TRIES: u32 = 8;
/// The report's type, from the list the AsyncAPI test walks.
pub(crate) const FAILED_EVENT: &str = contracts::NOTIFICATION_FAILED.event_type;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    keys: Vec<String>,
}

fn history_key(user_id: &str) -> String {
    format!("history|{user_id}")
}

/// Adds `key` to the front of an index, keeping at most `len` keys.
async fn push_front(
    state: &AppState,
    index: &str,
    key: &str,
    len: usize,
) -> Result<(), StateError> {
    for attempt in 0..PUSH_TRIES {
        let current = state.state.get::<Index>(index).await?;
        let (mut keys, etag) = match current {
            Some(v) => (v.value.keys, Some(v.etag)),
            None => (Vec::new(), None),
        };
        keys.retain(|k| k != key);
        keys.insert(0, key.to_owned());
        keys.truncate(len);
        let value = Index { keys };
        let result = match &etag {
            Some(etag) => {
                state
                    .state
                    .replace(index, &value, etag, state.record_ttl)
                    .await
            }
            None => state.state.create(index, &value, state.record_ttl).await,
        };
        match result {
            // One firing's targets are claimed concurrently, each adding
            // its key to the same user's index: back off a little, by a
            // different amount per writer, before reading again.
            Err(StateError::Conflict) => tokio::time::sleep(backoff(attempt, key)).await,
            other => return other,
        }
    }
    Err(StateError::Conflict)
}

/// 5 to 20 ms per attempt so far, spread by the key so that writers who
/// collided do not collide again in step.
fn backoff(attempt: u32, key: &str) -> std::time::Duration {
    let spread = key
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    std::time::Duration::from_millis(u64::from(attempt + 1) * (5 + spread % 16))
}

/// Best effort: the delivery itself matters more than its listing.
pub async fn remember(state: &AppState, user_id: &str, key: &str) {
    if let Err(error) = push_front(state, &history_key(user_id), key, HISTORY_LEN).await {
        tracing::warn!(%error, key, "delivery not added to the user's history");
    }
}

/// Lists the failure (or the delivery of unknown outcome: the event's
/// `data.status` tells which) for admins and publishes it to
/// `reminders-dlq`.
pub async fn publish_failed(state: &AppState, record: &DeliveryRecord) {
    let key = record.key();
    if let Err(error) = push_front(state, FAILED_INDEX, &key, FAILED_LEN).await {
        tracing::error!(%error, %key, "failed delivery not listed for admins");
    }
    let event = failed_event(record);
    let topic = contracts::NOTIFICATION_FAILED.topic.dead_letter();
    if let Err(error) = state
        .dapr
        .publish_cloud_event(
            &state.pubsub,
            topic,
            &record.user_id,
            event.to_string().as_bytes(),
            None,
        )
        .await
    {
        tracing::error!(%error, %key, "failed delivery not published to {topic}");
    }
}

/// The report of a failed delivery: a CloudEvent whose id is the delivery
/// key and its attempt count (one report per attempt that failed), whose
/// subject is the task id like every event's, and whose data is the record
/// (`shared/contracts/schemas/notification-failed.v1.json`).
fn failed_event(record: &DeliveryRecord) -> serde_json::Value {
    let report = contracts::NOTIFICATION_FAILED;
    serde_json::json!({
        "specversion": "1.0",
        "id": format!("{}|{}", record.key(), record.attempts),
        "source": report.source,
        "type": report.event_type,
        "subject": record.task_id.to_string(),
        "time": record.updated_at,
        "datacontenttype": "application/json",
        "dataschema": report.data_schema,
        "data": record,
    })
}

/// Keys per bulk read: the failed index holds up to [`FAILED_LEN`], and
/// one answer of that many records would be a large body to buffer.
const BULK_KEYS: usize = HISTORY_LEN;

/// The records behind an index, newest first, skipping expired ones: one
/// bulk read per [`BULK_KEYS`] keys instead of a round trip per record.
async fn records(state: &AppState, index: &str) -> Result<Vec<DeliveryRecord>, StateError> {
    let Some(index) = state.state.get::<Index>(index).await? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(index.value.keys.len());
    for keys in index.value.keys.chunks(BULK_KEYS) {
        let found = state.state.get_bulk::<DeliveryRecord>(keys).await?;
        out.extend(found.into_iter().map(|r| r.value));
    }
    Ok(out)
}

pub async fn of_user(state: &AppState, user_id: &str) -> Result<Vec<DeliveryRecord>, StateError> {
    records(state, &history_key(user_id)).await
}

/// Deliveries still failed or of unknown outcome (a retried one leaves the
/// list once it moves).
pub async fn failed(state: &AppState) -> Result<Vec<DeliveryRecord>, StateError> {
    use crate::delivery::Status;
    let all = records(state, FAILED_INDEX).await?;
    Ok(all
        .into_iter()
        .filter(|r| matches!(r.status, Status::Failed | Status::Unknown))
        .collect())
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::delivery::{Status, Target};

    fn record(status: Status, target: Target) -> DeliveryRecord {
        DeliveryRecord {
            reminder_id: Uuid::now_v7(),
            task_id: Uuid::now_v7(),
            user_id: "user-7".into(),
            fire_at: DateTime::from_timestamp_millis(1_767_261_600_000).unwrap_or_default(),
            target,
            title: "Pay rent".into(),
            status,
            attempts: 3,
            last_error: Some("push service answered 500".into()),
            updated_at: Utc::now(),
        }
    }

    /// The report is what the AsyncAPI document and its schemas describe:
    /// the envelope (a key-shaped id, the task as subject, the dataschema)
    /// and the record as data, for both statuses and both targets.
    #[test]
    fn the_failed_report_matches_its_schemas() {
        for (status, target) in [
            (Status::Failed, Target::Email),
            (Status::Unknown, Target::Push(Uuid::now_v7())),
        ] {
            let record = record(status, target);
            let event = failed_event(&record);
            contracts::schema::validate_cloudevent(&event)
                .unwrap_or_else(|e| panic!("{event}: {e}"));
            assert_eq!(event["subject"], record.task_id.to_string());
            assert_eq!(event["id"], format!("{}|3", record.key()));
        }
    }

    /// A record that is not a failure does not pass as a report.
    #[test]
    fn a_sent_record_is_no_report() {
        let event = failed_event(&record(Status::Sent, Target::Email));
        assert!(contracts::schema::validate_cloudevent(&event).is_err());
    }
}
