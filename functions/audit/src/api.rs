//! The read API: `GET /api/audit-logs`, `GET /api/audit-logs/{event_id}`
//! and the admin gap check `GET /api/audit-logs/gaps`, described by
//! `openapi.json` ([`OPENAPI`], served at `GET /openapi.json`).
//!
//! Access: an admin sees everything; anyone else sees only their own
//! entries, whatever `user_id` says, and another user's entry is a 404 as
//! if it did not exist. [`ApiError`] is the one mapping to problem+json.
//!
//! The list has two orders: by event time (`order=time`, the default) and
//! the ingest-ordered tail (`order=ingest`, see [`crate::tail`]); each
//! takes only its own kind of cursor. The gap check is a heavy query: one
//! runs at a time per replica, and a second concurrent call is answered
//! 503 with `Retry-After` at once rather than queued behind it.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use contracts::{EventKind, Topic};
use service::Problem;
use service::problem::FieldError;
use uuid::Uuid;

use auth::{Authenticated, Principal};

use crate::AppState;
use crate::gaps::{GapQuery, GapReport};
use crate::query::{AuditRecord, BadCursor, Cursor, DEFAULT_LIMIT, Filter, MAX_LIMIT, Page};
use crate::store::StoreError;
use crate::tail::IngestCursor;

/// The OpenAPI 3.1 document of this API, kept beside the crate.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    service::openapi::serve(OPENAPI)
}

/// What a refused concurrent gap check tells the caller to wait, in
/// seconds.
pub const GAPS_RETRY_AFTER_S: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The query string cannot be read: unknown or repeated parameter, a
    /// value of the wrong form.
    #[error("bad query: {0}")]
    BadQuery(String),
    /// Well-formed values that do not make sense together or are out of range.
    #[error("invalid query")]
    Invalid(Vec<FieldError>),
    #[error("admin only")]
    Forbidden,
    /// Also another user's entry: its existence is not revealed.
    #[error("no such audit entry")]
    NotFound,
    #[error("no such job: {0}")]
    UnknownJob(String),
    /// Another gap check is running on this replica.
    #[error("a gap check is already running")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match self {
            ApiError::BadQuery(detail) => Problem::bad_request(detail),
            ApiError::Invalid(errors) => {
                Problem::unprocessable("the query is not valid").with_errors(errors)
            }
            ApiError::Forbidden => Problem::forbidden("this endpoint is for admins"),
            ApiError::NotFound => Problem::not_found("no such audit entry"),
            ApiError::UnknownJob(name) => Problem::not_found(format!("no job named {name}")),
            ApiError::Busy => {
                let mut response = Problem::unavailable(
                    "a gap check is already running; gap checks run one at a time",
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(GAPS_RETRY_AFTER_S));
                return response;
            }
            ApiError::Store(StoreError::Unavailable(reason)) => {
                tracing::error!(%reason, "audit store unavailable");
                Problem::unavailable("the database is unavailable; try again")
            }
            ApiError::Store(StoreError::Refused(reason)) => {
                tracing::error!(%reason, "audit query failed");
                Problem::internal()
            }
        };
        problem.into_response()
    }
}

/// The query string as pairs, so unknown and repeated parameters are
/// caught rather than silently ignored.
type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Reads each allowed parameter once; anything else is a 400.
fn params<'a>(pairs: &'a Pairs, allowed: &[&str]) -> Result<Vec<(&'a str, &'a str)>, ApiError> {
    let Query(pairs) = pairs
        .as_ref()
        .map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (key, value) in pairs {
        if !allowed.contains(&key.as_str()) {
            return Err(ApiError::BadQuery(format!(
                "unknown parameter {key:?}; allowed: {}",
                allowed.join(", ")
            )));
        }
        if seen.iter().any(|(k, _)| k == key) {
            return Err(ApiError::BadQuery(format!("parameter {key} given twice")));
        }
        // PostgreSQL text cannot hold U+0000; the query would fail as a 500.
        if value.contains('\0') {
            return Err(ApiError::BadQuery(format!("parameter {key} contains NUL")));
        }
        seen.push((key, value));
    }
    Ok(seen)
}

fn parse_uuid(name: &str, value: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(value).map_err(|_| ApiError::BadQuery(format!("{name} must be a UUID")))
}

fn parse_time(name: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::BadQuery(format!("{name} must be an RFC 3339 time")))
}

fn parse_limit(value: &str) -> Result<i64, ApiError> {
    let limit: i64 = value
        .parse()
        .map_err(|_| ApiError::BadQuery("limit must be an integer".to_owned()))?;
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    Ok(limit)
}

/// Accepts a full task event type or its last word (`completed`).
fn parse_type(value: &str) -> Result<String, ApiError> {
    let full = if value.contains('.') {
        value.to_owned()
    } else {
        format!("com.todo.task.{value}")
    };
    match EventKind::parse(&full) {
        Some(kind) if kind.topic() == Topic::TaskEvents => Ok(full),
        _ => Err(invalid(
            "type",
            "must be a task event type: created, updated, completed or deleted".to_owned(),
        )),
    }
}

/// `time` or `ingest`: whether the list is the ingest-ordered tail.
fn parse_order(value: &str) -> Result<bool, ApiError> {
    match value {
        "time" => Ok(false),
        "ingest" => Ok(true),
        _ => Err(invalid("order", "must be time or ingest".to_owned())),
    }
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::Invalid(vec![FieldError {
        field: field.to_owned(),
        message,
    }])
}

/// Which order a list is in, and where it continues.
#[derive(Debug, Clone, PartialEq)]
pub enum Position {
    /// By `(occurred_at, event_id)`: `order=time`, the default.
    Time(Option<Cursor>),
    /// By when entries were stored: `order=ingest`, the tail.
    Ingest(Option<IngestCursor>),
}

/// A list request, parsed and scoped to what the caller may see.
#[derive(Debug, Clone, PartialEq)]
pub struct ListRequest {
    pub filter: Filter,
    pub position: Position,
    pub limit: i64,
}

fn bad_cursor(_: BadCursor) -> ApiError {
    ApiError::BadQuery(
        "cursor is not one this service issued for this order; start again without it".to_owned(),
    )
}

impl ListRequest {
    pub fn parse(pairs: &Pairs, caller: &Principal) -> Result<Self, ApiError> {
        let mut request = ListRequest {
            filter: Filter::default(),
            position: Position::Time(None),
            limit: DEFAULT_LIMIT,
        };
        let allowed = [
            "user_id", "task_id", "type", "from", "to", "order", "cursor", "limit",
        ];
        let (mut ingest, mut cursor) = (false, None);
        for (key, value) in params(pairs, &allowed)? {
            match key {
                "user_id" => request.filter.user_id = Some(value.to_owned()),
                "task_id" => request.filter.task_id = Some(parse_uuid(key, value)?),
                "type" => request.filter.event_type = Some(parse_type(value)?),
                "from" => request.filter.from = Some(parse_time(key, value)?),
                "to" => request.filter.to = Some(parse_time(key, value)?),
                "order" => ingest = parse_order(value)?,
                "cursor" => cursor = Some(value),
                _ => request.limit = parse_limit(value)?,
            }
        }
        request.position = match (ingest, cursor) {
            (false, cursor) => {
                Position::Time(cursor.map(Cursor::decode).transpose().map_err(bad_cursor)?)
            }
            (true, cursor) => Position::Ingest(
                cursor
                    .map(IngestCursor::decode)
                    .transpose()
                    .map_err(bad_cursor)?,
            ),
        };
        if let (Some(from), Some(to)) = (request.filter.from, request.filter.to)
            && from > to
        {
            return Err(invalid("from", "must not be after to".to_owned()));
        }
        // The one place a non-admin's scope is set: their own rows, always.
        if !caller.admin {
            request.filter.user_id = Some(caller.user_id.clone());
        }
        Ok(request)
    }
}

/// `GET /api/audit-logs`.
#[tracing::instrument(skip_all, fields(user = %caller.user_id, admin = caller.admin))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    pairs: Pairs,
) -> Result<Json<Page>, ApiError> {
    let ListRequest {
        filter,
        position,
        limit,
    } = ListRequest::parse(&pairs, &caller)?;
    let page = match position {
        Position::Time(after) => state.store.list(&filter, after.as_ref(), limit).await?,
        Position::Ingest(after) => state.store.tail(&filter, after.as_ref(), limit).await?,
    };
    Ok(Json(page))
}

/// `GET /api/audit-logs/{event_id}`.
#[tracing::instrument(skip_all, fields(user = %caller.user_id, %event_id))]
pub async fn get_one(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(event_id): Path<String>,
) -> Result<Json<AuditRecord>, ApiError> {
    // No stored id contains U+0000 (PostgreSQL text cannot hold it), and
    // asking the database would fail with a data exception.
    if event_id.contains('\0') {
        return Err(ApiError::NotFound);
    }
    match state.store.get(&event_id).await? {
        Some(record) if caller.admin || record.user_id == caller.user_id => Ok(Json(record)),
        _ => Err(ApiError::NotFound),
    }
}

/// `GET /api/audit-logs/gaps`: admin only.
#[tracing::instrument(skip_all, fields(user = %caller.user_id))]
pub async fn gaps(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    pairs: Pairs,
) -> Result<Json<GapReport>, ApiError> {
    if !caller.admin {
        return Err(ApiError::Forbidden);
    }
    let mut query = GapQuery::default();
    for (key, value) in params(&pairs, &["task_id", "cursor", "limit"])? {
        match key {
            "task_id" => query.task_id = Some(parse_uuid(key, value)?),
            "cursor" => query.after = Some(parse_uuid(key, value)?),
            _ => query.limit = Some(parse_limit(value)?),
        }
    }
    // Held until the answer is built; a timed-out request drops it, and its
    // statement is cancelled (service::db::conn).
    let Ok(_running) = state.gaps_running.clone().try_acquire_owned() else {
        return Err(ApiError::Busy);
    };
    Ok(Json(state.store.gaps(&query).await?))
}
