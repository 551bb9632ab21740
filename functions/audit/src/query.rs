//! Reading the trail: filters, keyset pages and single entries.
//!
//! Pages are ordered by `(occurred_at, event_id)` and continue from an
//! opaque cursor holding the last row's pair, so a page never skips or
//! repeats a row among those present, and each page is one index range
//! scan (see the V2 migration) instead of an ever-growing OFFSET. A row
//! that arrives late (its event happened before the cursor) lands behind
//! the cursor: a client that follows new entries uses the ingest-ordered
//! tail of [`crate::tail`] instead.
//!
//! A cursor comes back from clients, so it is checked as input: a forged
//! one is a [`BadCursor`] (400), never a value the database refuses.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::store::{AuditStore, StoreError};

/// The largest page a caller may ask for.
pub const MAX_LIMIT: i64 = 500;
pub const DEFAULT_LIMIT: i64 = 100;

/// What to select. `None` means "any"; `from` is inclusive, `to` exclusive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub user_id: Option<String>,
    pub task_id: Option<Uuid>,
    pub event_type: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// Where the previous page ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub occurred_at: DateTime<Utc>,
    pub event_id: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the cursor is not one this service issued")]
pub struct BadCursor;

/// No cursor this service issues is longer.
pub const MAX_CURSOR_LEN: usize = 1_024;

/// The text inside a cursor: base64url of UTF-8 without NUL (PostgreSQL
/// text cannot hold U+0000), of bounded length.
pub(crate) fn cursor_text(raw: &str) -> Result<String, BadCursor> {
    if raw.len() > MAX_CURSOR_LEN {
        return Err(BadCursor);
    }
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| BadCursor)?;
    let text = String::from_utf8(bytes).map_err(|_| BadCursor)?;
    if text.contains('\0') {
        return Err(BadCursor);
    }
    Ok(text)
}

/// The times an entry can have: a CloudEvent `time` is RFC 3339, whose
/// years have four digits. Both ends are well inside PostgreSQL's
/// timestamptz range, so a cursor in this range is never refused there.
fn in_rfc3339_range(time: DateTime<Utc>) -> bool {
    use chrono::Datelike;
    (0..=9999).contains(&time.year())
}

impl Cursor {
    /// `base64url(micros ":" event_id)`: opaque to clients, exact to the
    /// microsecond PostgreSQL stores.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}:{}",
            self.occurred_at.timestamp_micros(),
            self.event_id
        ))
    }

    pub fn decode(raw: &str) -> Result<Self, BadCursor> {
        let text = cursor_text(raw)?;
        let (micros, event_id) = text.split_once(':').ok_or(BadCursor)?;
        let micros: i64 = micros.parse().map_err(|_| BadCursor)?;
        let occurred_at = DateTime::from_timestamp_micros(micros)
            .filter(|t| in_rfc3339_range(*t))
            .ok_or(BadCursor)?;
        if event_id.is_empty() {
            return Err(BadCursor);
        }
        Ok(Self {
            occurred_at,
            event_id: event_id.to_owned(),
        })
    }
}

/// One audit entry as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub task_id: Uuid,
    pub user_id: String,
    pub sequence: i64,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// The entry's place in the ingest order (see [`crate::tail`]).
    pub ingest_seq: i64,
    pub source: String,
    pub payload: serde_json::Value,
}

impl AuditRecord {
    pub(crate) fn from_row(row: &Row) -> Result<Self, StoreError> {
        let get = || -> Result<Self, tokio_postgres::Error> {
            Ok(Self {
                event_id: row.try_get("event_id")?,
                event_type: row.try_get("event_type")?,
                task_id: row.try_get("task_id")?,
                user_id: row.try_get("user_id")?,
                sequence: row.try_get("sequence")?,
                occurred_at: row.try_get("occurred_at")?,
                received_at: row.try_get("received_at")?,
                ingest_seq: row.try_get("ingest_seq")?,
                source: row.try_get("source")?,
                payload: row.try_get("payload")?,
            })
        };
        get().map_err(|e| StoreError::Refused(e.to_string()))
    }
}

/// One page and where the next one starts (`None` on the last page).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    pub items: Vec<AuditRecord>,
    pub next_cursor: Option<String>,
}

pub(crate) const COLUMNS: &str = "event_id, event_type, task_id, user_id, sequence, occurred_at, received_at, ingest_seq, source, payload";

/// A query parameter of any type.
pub type Param = Box<dyn ToSql + Sync + Send>;

/// SQL conditions with `?` placeholders, numbered `$n` as they are added.
#[derive(Default)]
pub(crate) struct Conditions {
    sql: Vec<String>,
    params: Vec<Param>,
}

impl Conditions {
    pub(crate) fn push(&mut self, sql: &str, values: Vec<Param>) {
        let mut sql = sql.to_owned();
        for value in values {
            self.params.push(value);
            sql = sql.replacen('?', &format!("${}", self.params.len()), 1);
        }
        self.sql.push(sql);
    }

    /// The filter's conditions.
    pub(crate) fn of(filter: &Filter) -> Self {
        let mut c = Self::default();
        if let Some(user) = &filter.user_id {
            c.push("user_id = ?", vec![Box::new(user.clone())]);
        }
        if let Some(task) = filter.task_id {
            c.push("task_id = ?", vec![Box::new(task)]);
        }
        if let Some(kind) = &filter.event_type {
            c.push("event_type = ?", vec![Box::new(kind.clone())]);
        }
        if let Some(from) = filter.from {
            c.push("occurred_at >= ?", vec![Box::new(from)]);
        }
        if let Some(to) = filter.to {
            c.push("occurred_at < ?", vec![Box::new(to)]);
        }
        c
    }

    pub(crate) fn finish(self) -> (String, Vec<Param>) {
        let clause = if self.sql.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.sql.join(" AND "))
        };
        (clause, self.params)
    }
}

/// The WHERE clause for `filter` and `after`, with its parameters. Only the
/// conditions in use are written, so the planner sees plain equalities and
/// ranges and picks the index that leads with the filtered column.
fn where_clause(filter: &Filter, after: Option<&Cursor>) -> (String, Vec<Param>) {
    let mut conditions = Conditions::of(filter);
    if let Some(cursor) = after {
        conditions.push(
            "(occurred_at, event_id) > (?, ?)",
            vec![
                Box::new(cursor.occurred_at),
                Box::new(cursor.event_id.clone()),
            ],
        );
    }
    conditions.finish()
}

/// The SQL of one page and its parameters; `limit` is already clamped.
/// Public so the benchmark can EXPLAIN exactly what the API runs.
pub fn list_sql(filter: &Filter, after: Option<&Cursor>, limit: i64) -> (String, Vec<Param>) {
    let (clause, params) = where_clause(filter, after);
    // One row more than asked tells whether another page exists.
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_logs {clause} ORDER BY occurred_at, event_id LIMIT {}",
        limit + 1
    );
    (sql, params)
}

impl AuditStore {
    /// The rows of one read, on a pooled connection.
    pub(crate) async fn rows(&self, sql: &str, params: &[Param]) -> Result<Vec<Row>, StoreError> {
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let mut client = self.client().await?;
        client.query(sql, &refs).await.map_err(StoreError::from_db)
    }
}

/// Pages are fetched with one row more than `limit`: that row only says a
/// next page exists, and the cursor is the last row kept.
pub(crate) fn split_page<T>(
    mut rows: Vec<T>,
    limit: i64,
    cursor_of: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more {
        rows.last().map(cursor_of)
    } else {
        None
    };
    (rows, next)
}

impl AuditStore {
    /// One page of entries matching `filter`, after `after`, at most
    /// `limit` (clamped to 1..=[`MAX_LIMIT`]).
    pub async fn list(
        &self,
        filter: &Filter,
        after: Option<&Cursor>,
        limit: i64,
    ) -> Result<Page, StoreError> {
        let limit = limit.clamp(1, MAX_LIMIT);
        let (sql, params) = list_sql(filter, after, limit);
        let rows = self.rows(&sql, &params).await?;
        let items = rows
            .iter()
            .map(AuditRecord::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let (items, next_cursor) = split_page(items, limit, |last| {
            Cursor {
                occurred_at: last.occurred_at,
                event_id: last.event_id.clone(),
            }
            .encode()
        });
        Ok(Page { items, next_cursor })
    }

    /// The entry for `event_id`, if stored.
    pub async fn get(&self, event_id: &str) -> Result<Option<AuditRecord>, StoreError> {
        let mut client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM audit_logs WHERE event_id = $1"),
                &[&event_id],
            )
            .await
            .map_err(StoreError::from_db)?;
        row.as_ref().map(AuditRecord::from_row).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestEntry, test_store};
    use chrono::Duration;

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        let cursor = Cursor {
            occurred_at: DateTime::from_timestamp_micros(1_767_225_600_123_456).unwrap(),
            event_id: "0190-abc:def".to_owned(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        for bad in ["", "!!!", "bm9jb2xvbg", "eDox", "MTIz"] {
            assert_eq!(Cursor::decode(bad), Err(BadCursor), "{bad}");
        }
    }

    /// Forged cursors that decode, but hold what PostgreSQL (or the
    /// driver) would refuse: they must fail here, as a 400.
    #[test]
    fn cursors_with_extreme_values_are_refused() {
        let forge = |text: &str| URL_SAFE_NO_PAD.encode(text);
        let year_10000 = 253_402_300_800_000_000_i64; // 10000-01-01
        let before_year_0 = -62_167_219_200_000_001_i64; // just before 0000-01-01
        for text in [
            format!("{}:e", i64::MAX),
            format!("{}:e", i64::MIN),
            format!("{year_10000}:e"),
            format!("{before_year_0}:e"),
            "99999999999999999999999:e".to_owned(),
            "0:a\0b".to_owned(),
            "0:".to_owned(),
            format!("0:{}", "e".repeat(MAX_CURSOR_LEN)),
        ] {
            assert_eq!(Cursor::decode(&forge(&text)), Err(BadCursor), "{text}");
        }
        // The edges of the RFC 3339 range are real times, and accepted.
        for micros in [year_10000 - 1, before_year_0 + 1] {
            assert!(Cursor::decode(&forge(&format!("{micros}:e"))).is_ok());
        }
    }

    #[test]
    fn the_extra_row_only_signals_a_next_page() {
        let cursor = |n: &i32| n.to_string();
        assert_eq!(
            split_page(vec![1, 2, 3], 2, cursor),
            (vec![1, 2], Some("2".into()))
        );
        assert_eq!(split_page(vec![1, 2], 2, cursor), (vec![1, 2], None));
        assert_eq!(split_page(Vec::<i32>::new(), 2, cursor), (vec![], None));
    }

    #[test]
    fn where_clause_numbers_only_the_conditions_in_use() {
        let filter = Filter {
            task_id: Some(Uuid::nil()),
            to: Some(Utc::now()),
            ..Filter::default()
        };
        let (sql, params) = where_clause(&filter, None);
        assert_eq!(sql, "WHERE task_id = $1 AND occurred_at < $2");
        assert_eq!(params.len(), 2);
        let cursor = Cursor {
            occurred_at: Utc::now(),
            event_id: "e".into(),
        };
        let (sql, params) = where_clause(&Filter::default(), Some(&cursor));
        assert_eq!(sql, "WHERE (occurred_at, event_id) > ($1, $2)");
        assert_eq!(params.len(), 2);
        assert_eq!(where_clause(&Filter::default(), None).0, "");
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL (DATABASE_URL): ./scripts/test runs it"]
    async fn filters_and_pages_against_postgres() {
        let store = test_store().await;
        let user = format!("query-{}", Uuid::now_v7());
        let task = Uuid::now_v7();
        let other_task = Uuid::now_v7();
        let base = Utc::now() - Duration::hours(1);
        // Five entries of one task a second apart, and one of another task.
        for seq in 1..=5 {
            let kind = if seq == 5 { "completed" } else { "updated" };
            TestEntry::new(&user, task, seq, base + Duration::seconds(seq))
                .kind(kind)
                .insert(&store)
                .await;
        }
        TestEntry::new(&user, other_task, 1, base)
            .insert(&store)
            .await;

        let mine = Filter {
            user_id: Some(user.clone()),
            ..Filter::default()
        };
        // Paging by two visits all six exactly once, in time order.
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.list(&mine, cursor.as_ref(), 2).await.unwrap();
            seen.extend(page.items.iter().map(|r| (r.task_id, r.sequence)));
            match page.next_cursor {
                Some(next) => cursor = Some(Cursor::decode(&next).unwrap()),
                None => break,
            }
        }
        assert_eq!(seen.len(), 6);
        assert_eq!(seen[0], (other_task, 1));
        assert_eq!(&seen[1..], &(1..=5).map(|s| (task, s)).collect::<Vec<_>>());

        let by_task = Filter {
            task_id: Some(task),
            ..mine.clone()
        };
        assert_eq!(
            store.list(&by_task, None, 500).await.unwrap().items.len(),
            5
        );
        let by_type = Filter {
            event_type: Some("com.todo.task.completed".into()),
            ..mine.clone()
        };
        let page = store.list(&by_type, None, 500).await.unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].sequence, 5);
        let window = Filter {
            from: Some(base + Duration::seconds(2)),
            to: Some(base + Duration::seconds(4)),
            ..mine.clone()
        };
        let seqs: Vec<i64> = store
            .list(&window, None, 500)
            .await
            .unwrap()
            .items
            .iter()
            .map(|r| r.sequence)
            .collect();
        assert_eq!(seqs, vec![2, 3], "from is inclusive, to exclusive");

        let first = store.list(&by_task, None, 1).await.unwrap();
        let one = store.get(&first.items[0].event_id).await.unwrap().unwrap();
        assert_eq!(one, first.items[0]);
        assert_eq!(one.payload["task_id"], task.to_string());
        assert!(store.get("no-such-event").await.unwrap().is_none());
    }
}
