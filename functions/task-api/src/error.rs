//! task-api's one error type, and its one mapping to problem+json. Causes
//! are logged here; clients see only what they can act on.

use axum::response::{IntoResponse, Response};
use service::Problem;
use service::problem::FieldError;
use task_domain::{RepoError, ValidationError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Invalid(Vec<ValidationError>),
    /// Also used for another user's task: its existence is not revealed.
    #[error("task not found")]
    NotFound,
    #[error(transparent)]
    Repo(#[from] RepoError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match self {
            ApiError::Invalid(errors) => Problem::unprocessable("the task is not valid")
                .with_errors(
                    errors
                        .into_iter()
                        .map(|e| FieldError {
                            field: e.field.to_owned(),
                            message: e.message,
                        })
                        .collect(),
                ),
            ApiError::NotFound => Problem::not_found("no such task"),
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
