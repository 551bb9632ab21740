//! The one mapping from notification's errors to problem+json.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use service::Problem;
use service::problem::FieldError;

use crate::push::EndpointError;
use crate::state::StateError;
use crate::store::{MAX_DEVICES, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query string on a route that takes none: refused rather than
    /// ignored, as task-api and audit refuse unknown parameters.
    #[error("unexpected query string")]
    QueryString,
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    #[error("push endpoint refused: {0}")]
    Endpoint(#[from] EndpointError),
    #[error("admin only")]
    Forbidden,
    /// Also another user's device or delivery: existence is not revealed.
    #[error("not found")]
    NotFound,
    #[error("too many devices")]
    TooManyDevices,
    #[error("no such job: {0}")]
    UnknownJob(String),
    #[error("the delivery is not failed")]
    NotFailed,
    /// An admin retry of a firing whose reminder was cancelled or moved.
    #[error("the reminder was cancelled or moved")]
    FiringGone,
    /// A job trigger found a delivery `sending`: daprd offers it again.
    #[error("a delivery of this job is in flight")]
    DeliveryInFlight,
    /// The Dapr scheduler did not take a job; nothing changed.
    #[error("scheduler unavailable: {0}")]
    Scheduler(String),
    /// A firing's deliveries ended abnormally (their task panicked).
    #[error("delivery task failed: {0}")]
    Internal(String),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::TooManyDevices => ApiError::TooManyDevices,
            other => ApiError::Store(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match &self {
            ApiError::QueryString => Problem::new(
                StatusCode::BAD_REQUEST,
                "this resource takes no query parameters",
            ),
            ApiError::Invalid(errors) => {
                Problem::unprocessable("the request is not valid").with_errors(errors.clone())
            }
            ApiError::Endpoint(e) => {
                Problem::unprocessable(e.to_string()).with_errors(vec![FieldError {
                    field: "endpoint".into(),
                    message: e.to_string(),
                }])
            }
            ApiError::Forbidden => Problem::forbidden("this endpoint is for admins"),
            ApiError::NotFound => Problem::not_found("no such resource"),
            ApiError::TooManyDevices => Problem::new(
                StatusCode::CONFLICT,
                format!("at most {MAX_DEVICES} devices per user; remove one first"),
            ),
            ApiError::UnknownJob(name) => Problem::not_found(format!("no job named {name}")),
            ApiError::NotFailed => Problem::new(
                StatusCode::CONFLICT,
                "only a failed or unknown delivery can be retried",
            ),
            ApiError::FiringGone => Problem::new(
                StatusCode::CONFLICT,
                "the reminder was cancelled or moved since; this firing is not sent again",
            ),
            ApiError::DeliveryInFlight => {
                Problem::unavailable("a delivery of this firing is in flight; offer it again")
            }
            ApiError::Scheduler(error) => {
                tracing::warn!(%error, "retry job not scheduled");
                Problem::unavailable(
                    "the scheduler is unavailable; the delivery is unchanged, try again",
                )
            }
            ApiError::Internal(error) => {
                tracing::error!(%error, "delivery task failed");
                Problem::internal()
            }
            ApiError::Store(error) => {
                tracing::warn!(%error, "database unavailable");
                Problem::unavailable("the notification store is unavailable; try again")
            }
            ApiError::State(StateError::Conflict) => {
                Problem::new(StatusCode::CONFLICT, "changed concurrently; try again")
            }
            ApiError::State(error) => {
                tracing::warn!(%error, "state store unavailable");
                Problem::unavailable("the state store is unavailable; try again")
            }
        };
        problem.into_response()
    }
}
