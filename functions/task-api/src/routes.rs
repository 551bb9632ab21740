//! `/api/tasks` handlers.

use auth::Authenticated;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use service::ApiJson;
use task_domain::{Task, TaskInput};
use telemetry::trace_context::TraceParent;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tasks", post(create_task))
        .route("/api/tasks/{id}", get(get_task))
}

#[tracing::instrument(skip_all, fields(user_id = %principal.user_id))]
async fn create_task(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    ApiJson(input): ApiJson<TaskInput>,
) -> Result<Response, ApiError> {
    let new = input.validate().map_err(ApiError::Invalid)?;
    let traceparent = TraceParent::from_headers_or_new(&headers);
    let task = state
        .repo
        .create(&principal.user_id, new, Some(traceparent.as_str()))
        .await?;
    state.relay.wake();
    tracing::info!(task_id = %task.id, "task created");
    Ok(created(&task))
}

async fn get_task(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Task>, ApiError> {
    // A malformed id cannot name any task, the caller's or another's.
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    state
        .repo
        .get(&principal.user_id, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

fn created(task: &Task) -> Response {
    let location = format!("/api/tasks/{}", task.id);
    let mut response = (StatusCode::CREATED, Json(task)).into_response();
    if let Ok(value) = location.parse() {
        response.headers_mut().insert(header::LOCATION, value);
    }
    if let Ok(value) = format!("\"{}\"", task.sequence).parse() {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}
