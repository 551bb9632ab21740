//! The HTTP routes, and the request-header rules they share.

mod calendar;
mod changes;
pub mod if_match;
mod tasks;

use axum::Router;
use axum::extract::{FromRequestParts, Path};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{get, post};
use service::openapi::RouteTable;
use telemetry::trace_context::TraceParent;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::routes::if_match::IfMatch;

/// The OpenAPI 3.1 document, also kept in the repo beside this crate.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// Every public route, through a table that keeps their paths: a test
/// ([`service::openapi::drift`]) holds the app and `openapi.json`
/// together, both ways. The health routes are documented there too.
pub fn table() -> RouteTable<AppState> {
    RouteTable::new()
        .route("/api/tasks", post(tasks::create).get(tasks::list))
        .route(
            "/api/tasks/{id}",
            get(tasks::get_one)
                .patch(tasks::update)
                .delete(tasks::remove),
        )
        .route("/api/tasks/{id}/complete", post(tasks::complete))
        .route("/api/tasks/{id}/reopen", post(tasks::reopen))
        .route("/api/changes", get(changes::list))
        .route("/api/calendar/token", post(calendar::rotate_token))
        .route(calendar::FEED_PATH, get(calendar::feed))
        .route("/openapi.json", get(openapi))
}

pub fn router() -> Router<AppState> {
    table().into_router()
}

async fn openapi() -> Response {
    service::openapi::serve(OPENAPI)
}

/// What every write of one task reads from the request: the task's id,
/// what the client expects of its current state (`If-Match`) and the trace
/// context.
pub struct TaskTarget {
    pub id: Uuid,
    pub if_match: IfMatch,
    pub traceparent: TraceParent,
}

impl<S: Send + Sync> FromRequestParts<S> for TaskTarget {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound("task"))?;
        Ok(Self {
            id: parse_id(&raw, "task")?,
            if_match: IfMatch::from_headers(&parts.headers)?,
            traceparent: TraceParent::from_headers_or_new(&parts.headers),
        })
    }
}

/// A path id; a malformed one cannot name anything the caller owns.
fn parse_id(raw: &str, what: &'static str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(what))
}

/// The ETag of a task at `sequence`.
fn etag(sequence: i64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("\"{sequence}\"")).ok()
}
