//! Per-user streams: the gap-free offset every change takes, and the epoch
//! that tells clients whether their position still means anything.

use tokio_postgres::Transaction;
use uuid::Uuid;

/// A position in a user's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPosition {
    pub epoch: Uuid,
    pub offset: i64,
}

/// Takes the user's next offset inside `tx`. The row lock it takes is held
/// until `tx` ends, which serialises one user's changes: offsets never skip
/// (a rolled-back change rolls its offset back too) and never interleave.
pub async fn next_offset(
    tx: &Transaction<'_>,
    user_id: &str,
) -> Result<StreamPosition, tokio_postgres::Error> {
    let row = tx
        .query_one(
            "INSERT INTO user_streams (user_id, epoch, last_offset) VALUES ($1, $2, 1)
             ON CONFLICT (user_id) DO UPDATE SET last_offset = user_streams.last_offset + 1
             RETURNING epoch, last_offset",
            &[&user_id, &Uuid::new_v4()],
        )
        .await?;
    Ok(StreamPosition {
        epoch: row.try_get(0)?,
        offset: row.try_get(1)?,
    })
}
