//! The calendar feed: `POST /api/calendar/token` issues (and rotates) the
//! user's feed token; `GET /api/calendar.ics?token=…` serves the user's
//! open tasks with due dates as iCalendar to calendar apps, which cannot
//! send a Bearer header. Only the token's hash is stored; a rotation
//! revokes the previous URL at once.

use auth::Authenticated;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;

pub const FEED_PATH: &str = "/api/calendar.ics";

#[tracing::instrument(skip_all, fields(user_id = %principal.user_id))]
pub async fn rotate_token(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Response, ApiError> {
    let token = state.repo.rotate_calendar_token(&principal.user_id).await?;
    tracing::info!("calendar feed token issued; the previous one is revoked");
    let body = json!({"token": token, "url": format!("{FEED_PATH}?token={token}")});
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(body),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct FeedQuery {
    token: Option<String>,
}

/// A token this API could have issued: `cal_` and 64 hex digits. Anything
/// else is refused before the database is asked.
fn well_formed(token: &str) -> bool {
    token.len() == 68
        && token.starts_with("cal_")
        && token[4..].bytes().all(|b| b.is_ascii_hexdigit())
}

pub async fn feed(
    State(state): State<AppState>,
    query: Result<Query<FeedQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let token = query
        .ok()
        .and_then(|Query(q)| q.token)
        .filter(|t| well_formed(t))
        .ok_or(ApiError::FeedToken)?;
    let user = state
        .repo
        .calendar_user(&token)
        .await?
        .ok_or(ApiError::FeedToken)?;
    let tasks = state.repo.open_tasks_with_due(&user).await?;
    let body = task_domain::ics::render(&tasks, chrono::Utc::now());
    Ok((
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        body,
    )
        .into_response())
}
