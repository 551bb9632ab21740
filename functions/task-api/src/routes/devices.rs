//! `/api/devices`: a user's Web Push subscriptions.

use auth::Authenticated;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use service::ApiJson;
use task_domain::devices::DeviceInput;

use super::parse_id;
use crate::AppState;
use crate::error::ApiError;

/// 201 for a new subscription, 200 when the endpoint was known (its keys
/// are updated).
pub async fn create(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    ApiJson(input): ApiJson<DeviceInput>,
) -> Result<Response, ApiError> {
    input.validate().map_err(ApiError::Invalid)?;
    let (device, inserted) = state.repo.upsert_device(&principal.user_id, &input).await?;
    let status = if inserted {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(device)).into_response())
}

pub async fn remove(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id, "device")?;
    if state.repo.delete_device(&principal.user_id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("device"))
    }
}
