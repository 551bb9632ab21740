//! Listing a user's tasks: filters, sorting and keyset (cursor) pagination.
//!
//! A cursor holds the sort key and id of the last task of a page, and the
//! next page starts strictly after that pair. Ids are UUIDv7 and break ties,
//! so inserting tasks never shifts, repeats or skips the tasks a client has
//! yet to see.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::model::{Priority, Status, Task, ValidationError, invalid};
use crate::repo::{RepoError, TaskRepository, load_reminders, task_from_row};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;
pub const MAX_SEARCH_CHARS: usize = 200;

/// The query string of `GET /api/tasks`, as sent. Unknown parameters are
/// refused so a misspelt filter is not silently ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub status: Option<String>,
    pub priority: Option<String>,
    /// Comma-separated tags.
    pub tags: Option<String>,
    /// `any` (default) or `all` of `tags`.
    pub tag_mode: Option<String>,
    pub due_after: Option<String>,
    pub due_before: Option<String>,
    /// Case-insensitive substring of the title or description.
    pub q: Option<String>,
    /// `created` (default), `updated`, `due` or `priority`.
    pub sort: Option<String>,
    /// `asc` or `desc`; newest first for created/updated, soonest or
    /// highest first for due/priority.
    pub order: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    Created,
    Updated,
    Due,
    Priority,
}

impl Sort {
    /// The SQL sort key, never NULL, and its type for the cursor's cast.
    fn key(self) -> (&'static str, &'static str) {
        match self {
            Sort::Created => ("created_at", "timestamptz"),
            Sort::Updated => ("updated_at", "timestamptz"),
            Sort::Due => ("COALESCE(due_at, 'infinity'::timestamptz)", "timestamptz"),
            Sort::Priority => (
                "(CASE priority WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END)",
                "integer",
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    sort: Sort,
    desc: bool,
    /// The last task's sort key, as PostgreSQL prints it.
    key: String,
    id: Uuid,
}

/// A validated list request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub tags: Vec<String>,
    pub all_tags: bool,
    pub due_after: Option<DateTime<Utc>>,
    pub due_before: Option<DateTime<Utc>>,
    pub q: Option<String>,
    pub sort: Sort,
    pub desc: bool,
    pub limit: i64,
    cursor: Option<Cursor>,
}

/// One page and where the next one starts.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub items: Vec<Task>,
    pub next_cursor: Option<String>,
}

fn parse_time(field: &'static str, raw: &str) -> Result<DateTime<Utc>, ValidationError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| invalid(field, "must be an RFC 3339 date-time"))
}

impl ListParams {
    /// Checks every parameter; reports all bad ones at once.
    pub fn validate(self) -> Result<ListQuery, Vec<ValidationError>> {
        let mut errors = Vec::new();
        let mut check = |r: Result<(), ValidationError>| {
            if let Err(e) = r {
                errors.push(e);
            }
        };
        let mut q = ListQuery {
            status: None,
            priority: None,
            tags: Vec::new(),
            all_tags: false,
            due_after: None,
            due_before: None,
            q: None,
            sort: Sort::Created,
            desc: true,
            limit: DEFAULT_LIMIT,
            cursor: None,
        };
        if let Some(s) = &self.status {
            q.status = Status::parse(s);
            check(
                q.status
                    .map(|_| ())
                    .ok_or_else(|| invalid("status", "pending or completed")),
            );
        }
        if let Some(p) = &self.priority {
            q.priority = Priority::parse(p);
            check(
                q.priority
                    .map(|_| ())
                    .ok_or_else(|| invalid("priority", "high, medium or low")),
            );
        }
        if let Some(tags) = &self.tags {
            let raw: Vec<String> = tags.split(',').map(str::to_owned).collect();
            match crate::model::normalise_tags(&raw) {
                Ok(tags) => q.tags = tags,
                Err(e) => check(Err(e)),
            }
        }
        match self.tag_mode.as_deref() {
            None | Some("any") => {}
            Some("all") => q.all_tags = true,
            Some(_) => check(Err(invalid("tag_mode", "any or all"))),
        }
        for (field, raw, slot) in [
            ("due_after", &self.due_after, &mut q.due_after),
            ("due_before", &self.due_before, &mut q.due_before),
        ] {
            if let Some(raw) = raw {
                match parse_time(field, raw) {
                    Ok(t) => *slot = Some(t),
                    Err(e) => check(Err(e)),
                }
            }
        }
        if let Some(text) = self.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            if text.chars().count() > MAX_SEARCH_CHARS {
                check(Err(invalid("q", "at most 200 characters")));
            }
            if crate::model::has_nul(text) {
                check(Err(invalid("q", "must not contain NUL characters")));
            }
            q.q = Some(text.to_owned());
        }
        match self.sort.as_deref() {
            None | Some("created") => {}
            Some("updated") => q.sort = Sort::Updated,
            Some("due") => q.sort = Sort::Due,
            Some("priority") => q.sort = Sort::Priority,
            Some(_) => check(Err(invalid("sort", "created, updated, due or priority"))),
        }
        q.desc = matches!(q.sort, Sort::Created | Sort::Updated);
        match self.order.as_deref() {
            None => {}
            Some("asc") => q.desc = false,
            Some("desc") => q.desc = true,
            Some(_) => check(Err(invalid("order", "asc or desc"))),
        }
        if let Some(limit) = &self.limit {
            match limit.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => q.limit = n,
                _ => check(Err(invalid("limit", "an integer from 1 to 200"))),
            }
        }
        if let Some(raw) = &self.cursor {
            match decode_cursor(raw) {
                Some(c) if c.sort == q.sort && c.desc == q.desc => q.cursor = Some(c),
                Some(_) => check(Err(invalid("cursor", "belongs to another sort or order"))),
                None => check(Err(invalid("cursor", "is not a cursor this API issued"))),
            }
        }
        if errors.is_empty() {
            Ok(q)
        } else {
            Err(errors)
        }
    }
}

fn decode_cursor(raw: &str) -> Option<Cursor> {
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn encode_cursor(cursor: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(cursor).unwrap_or_default())
}

/// A statement under construction and its parameters.
#[derive(Default)]
struct Sql {
    sql: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Sql {
    /// Adds a parameter and returns its placeholder.
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }
}

/// `text` as a LIKE pattern matching it anywhere, wildcards escaped.
fn contains_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// A cursor comes back from the client, so its sort key may be forged; the
/// database then refuses the key's cast with a data exception (class 22),
/// which is the client's error, not a server failure.
fn forged_cursor(error: tokio_postgres::Error, q: &ListQuery) -> RepoError {
    let data_exception = error.code().is_some_and(|c| c.code().starts_with("22"));
    if q.cursor.is_some() && data_exception {
        RepoError::BadCursor
    } else {
        RepoError::from(error)
    }
}

impl TaskRepository {
    /// One page of the user's tasks.
    pub async fn list(&self, user_id: &str, q: &ListQuery) -> Result<Page, RepoError> {
        let (key, key_type) = q.sort.key();
        let mut b = Sql::default();
        let user = b.bind(user_id.to_owned());
        b.sql = format!("SELECT *, ({key})::text AS sort_key FROM tasks WHERE user_id = {user}");
        if let Some(s) = q.status {
            let p = b.bind(s.as_str());
            b.sql.push_str(&format!(" AND status = {p}"));
        }
        if let Some(pr) = q.priority {
            let p = b.bind(pr.as_str());
            b.sql.push_str(&format!(" AND priority = {p}"));
        }
        if !q.tags.is_empty() {
            let op = if q.all_tags { "@>" } else { "&&" };
            let p = b.bind(q.tags.clone());
            b.sql.push_str(&format!(" AND tags {op} {p}"));
        }
        if let Some(t) = q.due_after {
            let p = b.bind(t);
            b.sql.push_str(&format!(" AND due_at >= {p}"));
        }
        if let Some(t) = q.due_before {
            let p = b.bind(t);
            b.sql.push_str(&format!(" AND due_at < {p}"));
        }
        if let Some(text) = &q.q {
            let p = b.bind(contains_pattern(text));
            b.sql.push_str(&format!(
                " AND (title ILIKE {p} ESCAPE '\\' OR description ILIKE {p} ESCAPE '\\')"
            ));
        }
        let dir = if q.desc { "DESC" } else { "ASC" };
        if let Some(c) = &q.cursor {
            let cmp = if q.desc { "<" } else { ">" };
            let k = b.bind(c.key.clone());
            let i = b.bind(c.id);
            b.sql.push_str(&format!(
                " AND (({key}), id) {cmp} (CAST({k}::text AS {key_type}), {i})"
            ));
        }
        let limit = b.bind(q.limit + 1);
        b.sql
            .push_str(&format!(" ORDER BY {key} {dir}, id {dir} LIMIT {limit}"));
        let (sql, params) = (b.sql, b.params);
        let client = self.pool().get().await?;
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = client
            .query(&sql, &refs)
            .await
            .map_err(|e| forged_cursor(e, q))?;
        let more = rows.len() as i64 > q.limit;
        let rows = &rows[..rows.len().min(q.limit as usize)];
        let mut items = rows
            .iter()
            .map(task_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<Uuid> = items.iter().map(|t| t.id).collect();
        let mut reminders = load_reminders(&client, &ids).await?;
        for task in &mut items {
            task.reminders = reminders.remove(&task.id).unwrap_or_default();
        }
        let next_cursor = match (more, rows.last()) {
            (true, Some(last)) => Some(encode_cursor(&Cursor {
                sort: q.sort,
                desc: q.desc,
                key: last.try_get("sort_key")?,
                id: last.try_get("id")?,
            })),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &str) -> Result<ListQuery, Vec<ValidationError>> {
        serde_urlencoded_like(pairs).validate()
    }

    /// Builds params the way the API's query extractor would.
    fn serde_urlencoded_like(pairs: &str) -> ListParams {
        let map: serde_json::Map<String, serde_json::Value> = pairs
            .split('&')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
            .collect();
        serde_json::from_value(serde_json::Value::Object(map)).unwrap()
    }

    #[test]
    fn defaults_and_sort_orders() {
        let q = params("").unwrap();
        assert_eq!(
            (q.sort, q.desc, q.limit),
            (Sort::Created, true, DEFAULT_LIMIT)
        );
        let q = params("sort=due").unwrap();
        assert!(!q.desc);
        let q = params("sort=priority&order=desc&tags=Home,work&tag_mode=all").unwrap();
        assert!(q.desc && q.all_tags);
        assert_eq!(q.tags, ["home", "work"]);
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let errors =
            params("status=done&limit=0&sort=size&due_after=tomorrow&cursor=xyz").unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["status", "due_after", "sort", "limit", "cursor"]);
    }

    #[test]
    fn cursors_round_trip_and_are_bound_to_their_sort() {
        let c = Cursor {
            sort: Sort::Due,
            desc: false,
            key: "infinity".into(),
            id: Uuid::now_v7(),
        };
        let raw = encode_cursor(&c);
        assert_eq!(decode_cursor(&raw), Some(c));
        assert!(params(&format!("sort=due&cursor={raw}")).is_ok());
        assert!(params(&format!("sort=created&cursor={raw}")).is_err());
    }

    #[test]
    fn nul_in_search_text_is_refused() {
        let params = ListParams {
            q: Some("a\0b".into()),
            ..ListParams::default()
        };
        let errors = params.validate().unwrap_err();
        assert_eq!(errors[0].field, "q");
    }

    #[test]
    fn search_wildcards_are_literal() {
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
