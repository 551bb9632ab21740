//! The ingest-ordered tail: `GET /api/audit-logs?order=ingest`.
//!
//! The event-time listing files a late entry (a lagging partition, an
//! outbox backlog, a dead-letter replay) at its event's time, behind any
//! cursor that already passed it, so a client following that cursor never
//! sees it. The tail orders entries by when they were stored instead, and
//! its cursor is a position in that order: following it, a client gets
//! every entry once, late ones included, whatever their `occurred_at`.
//!
//! Why the order is `(ingest_xid, ingest_seq)` and not the sequence alone:
//! `ingest_seq` is drawn at INSERT, but rows become visible at COMMIT, and
//! concurrent inserts commit in any order. A reader can see seq 11 while
//! seq 10 is still in flight; a cursor past 11 would skip 10 for good.
//! `ingest_xid` is the inserting transaction's id, and PostgreSQL's
//! snapshot says which transactions can still commit: every transaction id
//! below `pg_snapshot_xmin(pg_current_snapshot())` has finished, and every
//! transaction still able to insert has an id at or above it (ids are
//! handed out in increasing order). So the tail hands out only rows below
//! that horizon, in `(ingest_xid, ingest_seq)` order: they are all
//! committed and visible now, and any row stored later sorts after them.
//! A row is held back while any older transaction in the cluster that has
//! written something (only those have an id) still runs: a long writing
//! transaction delays the tail by its length, and loses nothing.
//! (Read in PostgreSQL's source: `pg_current_snapshot` returns the
//! statement's active snapshot, `src/backend/utils/adt/xid8funcs.c`, and
//! that snapshot's xmin is the oldest top-level transaction id still
//! running, other than the reader's, `GetSnapshotData` in
//! `src/backend/storage/ipc/procarray.c`; `pg_current_xact_id` is the
//! top-level id. The tests in `tail/tests.rs` prove both halves against
//! the real server.)

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::query::{
    AuditRecord, BadCursor, COLUMNS, Conditions, Filter, MAX_LIMIT, Page, Param, cursor_text,
};
use crate::store::{AuditStore, StoreError};

/// A position in the ingest order: the last entry handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestCursor {
    /// The inserting transaction's id (`xid8`: 64 bits, never wraps).
    pub xid: u64,
    pub seq: i64,
}

/// Tells tail cursors from event-time ones (`micros:event_id`).
const KIND: &str = "ingest:";

impl IngestCursor {
    /// `base64url("ingest:" xid ":" seq)`.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{KIND}{}:{}", self.xid, self.seq))
    }

    /// Every `u64` is a valid `xid8` and every `i64` a `bigint`, so a
    /// cursor that parses cannot be refused by the database.
    pub fn decode(raw: &str) -> Result<Self, BadCursor> {
        let text = cursor_text(raw)?;
        let rest = text.strip_prefix(KIND).ok_or(BadCursor)?;
        let (xid, seq) = rest.split_once(':').ok_or(BadCursor)?;
        Ok(Self {
            xid: xid.parse().map_err(|_| BadCursor)?,
            seq: seq.parse().map_err(|_| BadCursor)?,
        })
    }
}

/// The SQL of one tail page after `after`, at most `limit` rows.
pub fn tail_sql(filter: &Filter, after: Option<&IngestCursor>, limit: i64) -> (String, Vec<Param>) {
    let mut conditions = Conditions::of(filter);
    // The horizon (see the module docs): only rows no running transaction
    // can still precede. xid8 has no Rust mapping in tokio-postgres, so it
    // crosses as text.
    conditions.push(
        "ingest_xid < pg_snapshot_xmin(pg_current_snapshot())",
        vec![],
    );
    if let Some(cursor) = after {
        let xid: Param = Box::new(cursor.xid.to_string());
        match &filter.user_id {
            // The same bound, led by the user (equal on both sides): only
            // the (user_id, ingest_xid, ingest_seq) index can serve it. With
            // the bare pair, the planner estimates the bound from
            // ingest_xid's statistics alone, and a cursor past them (rows
            // newer than the last ANALYZE) looks empty: it then walks every
            // user's newer rows and filters, 200 ms at a million rows
            // (docs/benchmarks.md).
            Some(user) => conditions.push(
                "(user_id, ingest_xid, ingest_seq) > (?, ?::text::xid8, ?)",
                vec![Box::new(user.clone()), xid, Box::new(cursor.seq)],
            ),
            None => conditions.push(
                "(ingest_xid, ingest_seq) > (?::text::xid8, ?)",
                vec![xid, Box::new(cursor.seq)],
            ),
        }
    }
    let (clause, params) = conditions.finish();
    let sql = format!(
        "SELECT {COLUMNS}, ingest_xid::text AS ingest_xid_text FROM audit_logs {clause} \
         ORDER BY ingest_xid, ingest_seq LIMIT {limit}"
    );
    (sql, params)
}

impl AuditStore {
    /// The entries matching `filter` stored after `after`, in ingest order,
    /// at most `limit` (clamped to 1..=[`MAX_LIMIT`]). `next_cursor` is
    /// where to continue: after the last entry, or `after` itself when
    /// nothing new is ready (`None` only when there was neither).
    pub async fn tail(
        &self,
        filter: &Filter,
        after: Option<&IngestCursor>,
        limit: i64,
    ) -> Result<Page, StoreError> {
        let limit = limit.clamp(1, MAX_LIMIT);
        let (sql, params) = tail_sql(filter, after, limit);
        let rows = self.rows(&sql, &params).await?;
        let mut last = after.copied();
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            let record = AuditRecord::from_row(row)?;
            let xid: String = row
                .try_get("ingest_xid_text")
                .map_err(|e| StoreError::Refused(e.to_string()))?;
            let xid = xid
                .parse()
                .map_err(|_| StoreError::Refused(format!("ingest_xid {xid} is not a u64")))?;
            last = Some(IngestCursor {
                xid,
                seq: record.ingest_seq,
            });
            items.push(record);
        }
        Ok(Page {
            items,
            next_cursor: last.map(|c| c.encode()),
        })
    }
}

#[cfg(test)]
mod tests;
