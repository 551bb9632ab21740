//! Writing events into the outbox, inside the transaction of the change
//! that causes them.

use contracts::OutgoingEvent;
use tokio_postgres::Transaction;

/// Stores `event` for the relay. `stream_offset` is set for `task-updates`
/// events so the sync gateway can replay a user's stream from the outbox.
pub async fn enqueue(
    tx: &Transaction<'_>,
    event: &OutgoingEvent,
    partition_key: &str,
    stream_offset: Option<i64>,
    traceparent: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO outbox (event_id, topic, partition_key, event_type, payload, stream_offset, traceparent)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &event.id,
            &event.kind.topic().name(),
            &partition_key,
            &event.kind.as_str(),
            &event.to_json(),
            &stream_offset,
            &traceparent,
        ],
    )
    .await?;
    Ok(())
}
