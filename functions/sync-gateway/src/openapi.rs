//! `openapi.json`, the gateway's OpenAPI 3.1 document, served at
//! `GET /openapi.json`, and the paths it describes that no route table
//! holds: the page's routes ([`crate::web::routes`]) and the files of its
//! static-file fallback.
//!
//! The socket's messages are not HTTP: they are described in AsyncAPI
//! (`shared/contracts/asyncapi.json`), which the document links.

use axum::response::Response;

/// The document, kept in the repo beside this crate.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The routes [`crate::web::routes`] registers beside its fallback.
pub const PAGE_ROUTES: [&str; 1] = ["/config.json"];

/// The documented paths the page's `ServeDir` fallback answers (any file
/// of WEB_DIR is served; these are the entry points a reader is sent to):
/// the app, the interface documents' two pages, the redirect to them, and the
/// documents it renders (web/scripts/build-docs.mjs puts them there).
pub const FALLBACK_PATHS: [&str; 6] = [
    "/",
    "/docs",
    "/docs/",
    "/docs/events.html",
    "/docs/openapi.json",
    "/docs/asyncapi.json",
];

/// `GET /openapi.json`.
pub async fn serve() -> Response {
    service::openapi::serve(OPENAPI)
}
