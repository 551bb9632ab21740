//! The audit table: one row per task event, keyed by the event id.

use chrono::{DateTime, Utc};
use contracts::TaskEventData;
use deadpool_postgres::Pool;
use service::db::conn::Conn;
use tokio_postgres::error::SqlState;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is down, overloaded or restarting: retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused this row itself: retrying cannot help.
    #[error("row refused: {0}")]
    Refused(String),
}

impl StoreError {
    pub(crate) fn from_db(error: tokio_postgres::Error) -> Self {
        let permanent = error.code().is_some_and(|code| {
            let class = |c: &str| code.code().starts_with(c);
            // 22: data exception, 23: integrity constraint violation.
            class("22") || class("23") || *code == SqlState::PROGRAM_LIMIT_EXCEEDED
        });
        if permanent {
            StoreError::Refused(error.to_string())
        } else {
            StoreError::Unavailable(error.to_string())
        }
    }
}

/// The facts of one audit row.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub source: &'a str,
    pub occurred_at: DateTime<Utc>,
    pub data: &'a TaskEventData,
}

#[derive(Clone)]
pub struct AuditStore {
    pool: Pool,
}

impl AuditStore {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// A pooled connection; a pool that cannot give one is a transient
    /// failure. Its statement is cancelled if the caller stops waiting (a
    /// request timeout), instead of running on in the server.
    pub(crate) async fn client(&self) -> Result<Conn, StoreError> {
        self.pool
            .get()
            .await
            .map(Conn::new)
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// Stores the entry once. Returns `false` when the event id was already
    /// stored (a redelivery), which is success too.
    pub async fn record(&self, entry: &AuditEntry<'_>) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let payload =
            serde_json::to_value(entry.data).map_err(|e| StoreError::Refused(e.to_string()))?;
        let inserted = client
            .execute(
                "INSERT INTO audit_logs (event_id, event_type, user_id, task_id, sequence, occurred_at, source, payload)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (event_id) DO NOTHING",
                &[
                    &entry.event_id,
                    &entry.event_type,
                    &entry.data.user_id,
                    &entry.data.task_id,
                    &entry.data.sequence,
                    &entry.occurred_at,
                    &entry.source,
                    &payload,
                ],
            )
            .await
            .map_err(StoreError::from_db)?;
        Ok(inserted == 1)
    }
}
