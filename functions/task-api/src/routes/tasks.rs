//! `/api/tasks` handlers: parse, call the repository, shape the response.

use auth::Authenticated;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use service::ApiJson;
use task_domain::idempotency::{request_hash, valid_key};
use task_domain::query::{ListParams, Page};
use task_domain::repo::{CreateOutcome, Idempotency};
use task_domain::{RepoError, Status, Task, TaskInput, TaskPatch};
use telemetry::trace_context::TraceParent;

use super::if_match::IfMatch;
use super::{TaskTarget, etag, parse_id};
use crate::AppState;
use crate::error::ApiError;

const IDEMPOTENCY_KEY: &str = "idempotency-key";

fn idempotency(headers: &HeaderMap, input: &TaskInput) -> Result<Option<Idempotency>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if valid_key(key) => Ok(Some(Idempotency {
            key: key.to_owned(),
            request_hash: request_hash(input),
        })),
        _ => Err(ApiError::bad_header(
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}

#[tracing::instrument(skip_all, fields(user_id = %principal.user_id))]
pub async fn create(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    ApiJson(input): ApiJson<TaskInput>,
) -> Result<Response, ApiError> {
    let idem = idempotency(&headers, &input)?;
    let new = input.validate().map_err(ApiError::Invalid)?;
    let traceparent = TraceParent::from_headers_or_new(&headers);
    // The token's address travels in reminder.scheduled (notification's
    // default recipient).
    let outcome = state
        .repo
        .with_email(principal.email.clone())
        .create(
            &principal.user_id,
            new,
            Some(traceparent.as_str()),
            idem.as_ref(),
        )
        .await?;
    let (status, body, replayed) = match outcome {
        CreateOutcome::Created(task) => {
            state.relay.wake();
            tracing::info!(task_id = %task.id, "task created");
            let body = serde_json::to_value(&*task).unwrap_or_default();
            (StatusCode::CREATED, body, false)
        }
        CreateOutcome::Replayed { status, body } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED),
            body,
            true,
        ),
    };
    let mut response = (status, Json(&body)).into_response();
    let h = response.headers_mut();
    if let Some(id) = body["id"].as_str()
        && let Ok(location) = HeaderValue::from_str(&format!("/api/tasks/{id}"))
    {
        h.insert(header::LOCATION, location);
    }
    if let Some(tag) = body["sequence"].as_i64().and_then(etag) {
        h.insert(header::ETAG, tag);
    }
    if replayed {
        h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

pub async fn list(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest {
        detail: e.body_text(),
        errors: Vec::new(),
    })?;
    let query = params.validate().map_err(|errors| ApiError::BadRequest {
        detail: "invalid query parameters".to_owned(),
        errors,
    })?;
    Ok(Json(state.repo.list(&principal.user_id, &query).await?))
}

fn task_response(task: &Task) -> Response {
    let mut response = Json(task).into_response();
    if let Some(tag) = etag(task.sequence) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    response
}

/// `If-Match` is evaluated on a read too (RFC 9110 §13.2.1): a task that
/// exists but matches no listed tag is a 412.
pub async fn get_one(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "task")?;
    let condition = IfMatch::from_headers(&headers)?;
    let task = state
        .repo
        .get(&principal.user_id, id)
        .await?
        .ok_or(ApiError::NotFound("task"))?;
    if !condition.admits(task.sequence) {
        return Err(RepoError::SequenceMismatch {
            current: task.sequence,
        }
        .into());
    }
    Ok(task_response(&task))
}

#[tracing::instrument(skip_all, fields(user_id = %principal.user_id, task_id = %t.id))]
pub async fn update(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    t: TaskTarget,
    ApiJson(patch): ApiJson<TaskPatch>,
) -> Result<Response, ApiError> {
    let repo = state.repo.with_email(principal.email.clone());
    let (repo, user, tp) = (&repo, &principal.user_id, Some(t.traceparent.as_str()));
    let task = t
        .if_match
        .guard(|expected| repo.update(user, t.id, patch.clone(), expected, tp))
        .await?;
    state.relay.wake();
    Ok(task_response(&task))
}

#[tracing::instrument(skip_all, fields(user_id = %principal.user_id, task_id = %t.id))]
pub async fn remove(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    t: TaskTarget,
) -> Result<StatusCode, ApiError> {
    let (repo, user, tp) = (
        &state.repo,
        &principal.user_id,
        Some(t.traceparent.as_str()),
    );
    t.if_match
        .guard(|expected| repo.delete(user, t.id, expected, tp))
        .await?;
    state.relay.wake();
    Ok(StatusCode::NO_CONTENT)
}

pub async fn complete(
    state: State<AppState>,
    principal: Authenticated,
    t: TaskTarget,
) -> Result<Response, ApiError> {
    set_status(state, principal, t, Status::Completed).await
}

pub async fn reopen(
    state: State<AppState>,
    principal: Authenticated,
    t: TaskTarget,
) -> Result<Response, ApiError> {
    set_status(state, principal, t, Status::Pending).await
}

#[tracing::instrument(skip_all, fields(user_id = %principal.user_id, task_id = %t.id, ?status))]
async fn set_status(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    t: TaskTarget,
    status: Status,
) -> Result<Response, ApiError> {
    let repo = state.repo.with_email(principal.email.clone());
    let (repo, user, tp) = (&repo, &principal.user_id, Some(t.traceparent.as_str()));
    let task = t
        .if_match
        .guard(|expected| repo.set_status(user, t.id, status, expected, tp))
        .await?;
    state.relay.wake();
    Ok(task_response(&task))
}
