//! `GET /api/changes`: the caller's change feed (`task-updates` stream
//! entries after a position), for the sync gateway's resume and for
//! clients that poll instead of holding a WebSocket.
//!
//! - no `epoch` and no `after`: the stream's head, `{epoch, events: [],
//!   next_offset}`: where a new client starts following;
//! - `epoch` and `after`: the events after `after`, in order, at most
//!   `limit`; or `{reset: true, epoch}` when the position is not in the
//!   current history (task_domain::changes::decide).
//!
//! Only the caller's own stream is ever read: the user comes from the
//! token, never from the query.

use auth::Authenticated;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use task_domain::ValidationError;
use task_domain::changes::{self, DEFAULT_LIMIT, Feed, MAX_LIMIT};
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;

/// The raw query: every field as text, so each bad one gets its own error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    epoch: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

/// What the query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedRequest {
    Head,
    After { epoch: Uuid, after: i64, limit: i64 },
}

fn invalid(field: &'static str, message: &str) -> ValidationError {
    ValidationError {
        field,
        message: message.to_owned(),
    }
}

impl ChangesQuery {
    pub fn validate(self) -> Result<FeedRequest, Vec<ValidationError>> {
        let mut errors = Vec::new();
        let epoch = self.epoch.as_deref().map(Uuid::parse_str);
        if matches!(epoch, Some(Err(_))) {
            errors.push(invalid("epoch", "must be the epoch (a UUID) the feed gave"));
        }
        let after = self.after.as_deref().map(str::parse::<i64>);
        if !matches!(after, None | Some(Ok(0..))) {
            errors.push(invalid("after", "must be an offset, 0 or more"));
        }
        let limit = self.limit.as_deref().map(str::parse::<i64>);
        if !matches!(limit, None | Some(Ok(1..=MAX_LIMIT))) {
            errors.push(invalid("limit", "must be 1 to 1000"));
        }
        if epoch.is_some() != after.is_some() {
            errors.push(invalid(
                if epoch.is_some() { "after" } else { "epoch" },
                "epoch and after go together (or neither, for the head)",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(match (epoch, after) {
            (Some(Ok(epoch)), Some(Ok(after))) => FeedRequest::After {
                epoch,
                after,
                limit: match limit {
                    Some(Ok(limit)) => limit,
                    _ => DEFAULT_LIMIT,
                },
            },
            _ => FeedRequest::Head,
        })
    }
}

#[tracing::instrument(skip_all, fields(user_id = %principal.user_id))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    query: Result<Query<ChangesQuery>, QueryRejection>,
) -> Result<Json<Feed>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest {
        detail: e.body_text(),
        errors: Vec::new(),
    })?;
    let request = query.validate().map_err(|errors| ApiError::BadRequest {
        detail: "invalid query parameters".to_owned(),
        errors,
    })?;
    let pool = state.repo.pool();
    let feed = match request {
        FeedRequest::Head => {
            let head = changes::read_head(pool, &principal.user_id).await?;
            Feed::Events {
                epoch: head.epoch,
                events: Vec::new(),
                next_offset: head.offset,
            }
        }
        FeedRequest::After {
            epoch,
            after,
            limit,
        } => changes::read(pool, &principal.user_id, epoch, after, limit).await?,
    };
    Ok(Json(feed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(epoch: Option<&str>, after: Option<&str>, limit: Option<&str>) -> ChangesQuery {
        ChangesQuery {
            epoch: epoch.map(str::to_owned),
            after: after.map(str::to_owned),
            limit: limit.map(str::to_owned),
        }
    }

    const EPOCH: &str = "0192f0c1-0000-7000-8000-000000000000";

    #[test]
    fn neither_position_field_asks_for_the_head() {
        assert_eq!(
            query(None, None, None).validate().unwrap(),
            FeedRequest::Head
        );
    }

    #[test]
    fn a_position_reads_after_it_with_the_default_limit() {
        assert_eq!(
            query(Some(EPOCH), Some("0"), None).validate().unwrap(),
            FeedRequest::After {
                epoch: Uuid::parse_str(EPOCH).unwrap(),
                after: 0,
                limit: DEFAULT_LIMIT
            }
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let fields = |q: ChangesQuery| -> Vec<&'static str> {
            q.validate().unwrap_err().iter().map(|e| e.field).collect()
        };
        assert_eq!(fields(query(Some("x"), Some("1"), None)), ["epoch"]);
        assert_eq!(fields(query(Some(EPOCH), Some("-1"), None)), ["after"]);
        assert_eq!(fields(query(Some(EPOCH), Some("1"), Some("0"))), ["limit"]);
        assert_eq!(
            fields(query(Some(EPOCH), Some("1"), Some("1001"))),
            ["limit"]
        );
        assert_eq!(fields(query(Some(EPOCH), None, None)), ["after"]);
        assert_eq!(fields(query(None, Some("3"), None)), ["epoch"]);
    }
}
