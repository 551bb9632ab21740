//! task-api's one error type, and its one mapping to problem+json. Causes
//! are logged here; clients see only what they can act on.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use service::Problem;
use service::problem::FieldError;
use task_domain::{RepoError, ValidationError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Invalid(Vec<ValidationError>),
    /// Bad query parameters or headers: the request itself is malformed.
    #[error("bad request")]
    BadRequest {
        detail: String,
        errors: Vec<ValidationError>,
    },
    /// Also used for another user's task or device: existence is not revealed.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The calendar feed's token is missing, malformed or not current.
    #[error("calendar feed token refused")]
    FeedToken,
    #[error(transparent)]
    Repo(#[from] RepoError),
}

fn field_errors(errors: Vec<ValidationError>) -> Vec<FieldError> {
    errors
        .into_iter()
        .map(|e| FieldError {
            field: e.field.to_owned(),
            message: e.message,
        })
        .collect()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match self {
            ApiError::Invalid(errors) | ApiError::Repo(RepoError::Invalid(errors)) => {
                Problem::unprocessable("the request is not valid").with_errors(field_errors(errors))
            }
            ApiError::BadRequest { detail, errors } => {
                Problem::bad_request(detail).with_errors(field_errors(errors))
            }
            ApiError::Repo(RepoError::BadCursor) => {
                Problem::bad_request("invalid query parameters").with_errors(vec![FieldError {
                    field: "cursor".to_owned(),
                    message: "is not a cursor this API issued".to_owned(),
                }])
            }
            ApiError::NotFound(what) => Problem::not_found(format!("no such {what}")),
            ApiError::FeedToken => Problem::unauthorized(
                "the calendar feed needs its current token: ?token= from POST /api/calendar/token",
            ),
            ApiError::Repo(RepoError::NotFound) => Problem::not_found("no such task"),
            ApiError::Repo(RepoError::SequenceMismatch { current }) => Problem::new(
                StatusCode::PRECONDITION_FAILED,
                format!("If-Match does not match: the task is at sequence {current}"),
            ),
            ApiError::Repo(RepoError::IdempotencyConflict) => Problem::unprocessable(
                "this Idempotency-Key was already used with a different request body",
            ),
            ApiError::Repo(RepoError::Unavailable(reason)) => {
                tracing::error!(%reason, "database unavailable");
                Problem::unavailable("the database is unavailable; try again")
            }
            ApiError::Repo(error) => {
                tracing::error!(%error, "repository failure");
                Problem::internal()
            }
        };
        problem.into_response()
    }
}

impl ApiError {
    pub fn bad_header(detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            detail: detail.into(),
            errors: Vec::new(),
        }
    }
}
