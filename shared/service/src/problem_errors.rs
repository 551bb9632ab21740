//! problem+json for the error answers no handler wrote: axum's own (404
//! for an unknown path, 405 for a method a path does not take, the
//! text/plain rejections of extractors such as `Path` and `Query`) and
//! those of layers (a `TimeoutLayer`'s empty 503). [`layer`] wraps a whole
//! router, so every error a function answers is an RFC 9457 document.
//!
//! Only a bare error is replaced: one with no body type, or a text/plain
//! one (whose wording is the framework's, not written for clients).
//! Problems that handlers wrote, and other documents such as the JSON
//! readiness report, pass unchanged; headers (`Allow`, `Retry-After`,
//! `WWW-Authenticate`) are kept.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::problem::{PROBLEM_JSON, Problem};

/// `router` with every bare error answer turned into a problem document.
/// Apply it last, so it also sees the fallback's 404 and outer layers'
/// answers.
pub fn layer<S>(router: Router<S>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(axum::middleware::map_response(into_problem))
}

/// The response itself, or for a bare error a problem of the same status.
pub async fn into_problem(response: Response) -> Response {
    let status = response.status();
    let error = status.is_client_error() || status.is_server_error();
    if !error || !is_bare(response.headers()) {
        return response;
    }
    let (mut parts, original) = response.into_parts();
    // axum's method router answers a method it does not route with an
    // empty 405 and adds Allow outside this layer; a handler's own 405
    // (the WebSocket upgrade's refusal of an HTTP/2 GET) has a body and no
    // Allow.
    let allow_follows = axum::body::HttpBody::size_hint(&original).exact() == Some(0);
    let (problem, body) = Problem::new(status, detail(status, allow_follows))
        .into_response()
        .into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if let Some(challenge) = problem.headers.get(header::WWW_AUTHENTICATE) {
        parts
            .headers
            .entry(header::WWW_AUTHENTICATE)
            .or_insert_with(|| challenge.clone());
    }
    Response::from_parts(parts, body)
}

fn is_bare(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_none_or(|value| {
        value
            .to_str()
            .ok()
            .is_none_or(|v| v.trim_start().starts_with("text/plain"))
    })
}

/// A fixed sentence per status: the replaced body was written for
/// developers (e.g. serde's message about a path parameter), not clients.
/// A 405 names the Allow header only when the answer will have one.
fn detail(status: StatusCode, allow_follows: bool) -> &'static str {
    match status {
        StatusCode::METHOD_NOT_ALLOWED if !allow_follows => {
            "this resource does not take this method"
        }
        StatusCode::BAD_REQUEST => "the request is malformed",
        StatusCode::UNAUTHORIZED => "the request needs a valid bearer token",
        StatusCode::NOT_FOUND => "no such resource",
        StatusCode::METHOD_NOT_ALLOWED => {
            "this resource does not take this method; the Allow header lists those it takes"
        }
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "the request body's media type is not supported",
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => {
            "the service could not answer in time; try again"
        }
        StatusCode::INTERNAL_SERVER_ERROR => "the server failed to handle the request",
        _ => "the request failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::extract::Path;
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt;

    fn app() -> Router {
        let router = Router::new()
            .route(
                "/items/{id}",
                get(|Path(id): Path<u32>| async move { id.to_string() })
                    .delete(|| async { StatusCode::NO_CONTENT }),
            )
            .route("/own", get(|| async { Problem::forbidden("admins only") }))
            .route(
                "/ready",
                get(|| async {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(serde_json::json!({"db": "unavailable"})),
                    )
                }),
            )
            .route(
                "/teapot",
                get(|| async { (StatusCode::IM_A_TEAPOT, "short and stout") }),
            )
            .route("/plain", get(|| async { "fine" }))
            // What tower-http's TimeoutLayer::with_status_code answers.
            .route("/slow", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
            // A 405 a handler gives itself, as axum's WebSocket upgrade does
            // to an HTTP/2 GET: no Allow header.
            .route(
                "/upgrade",
                get(|| async {
                    (
                        StatusCode::METHOD_NOT_ALLOWED,
                        "Request method must be `CONNECT`",
                    )
                }),
            );
        layer(router)
    }

    async fn call(method: &str, uri: &str) -> (StatusCode, HeaderMap, serde_json::Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = app().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = to_bytes(body, 1 << 16).await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (parts.status, parts.headers, json)
    }

    fn assert_problem(got: &(StatusCode, HeaderMap, serde_json::Value), status: u16, detail: &str) {
        let (code, headers, body) = got;
        assert_eq!(code.as_u16(), status);
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(body["status"], status);
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["title"], code.canonical_reason().unwrap());
        assert_eq!(body["detail"], detail);
    }

    #[tokio::test]
    async fn an_unknown_path_is_a_problem() {
        assert_problem(&call("GET", "/nowhere").await, 404, "no such resource");
    }

    #[tokio::test]
    async fn a_method_not_taken_is_a_problem_with_allow_kept() {
        let got = call("PUT", "/items/1").await;
        assert_problem(
            &got,
            405,
            "this resource does not take this method; the Allow header lists those it takes",
        );
        let allow = got.1[header::ALLOW].to_str().unwrap();
        assert!(allow.contains("GET") && allow.contains("DELETE"), "{allow}");
    }

    #[tokio::test]
    async fn a_405_without_allow_does_not_point_to_one() {
        let got = call("GET", "/upgrade").await;
        assert_problem(&got, 405, "this resource does not take this method");
        assert!(!got.1.contains_key(header::ALLOW));
    }

    #[tokio::test]
    async fn a_path_rejection_is_a_problem_without_serdes_wording() {
        let got = call("GET", "/items/not-a-number").await;
        assert_problem(&got, 400, "the request is malformed");
        assert!(!got.2.to_string().contains("parse"), "{}", got.2);
    }

    #[tokio::test]
    async fn other_error_bodies_and_successes_pass_unchanged() {
        let (status, _, body) = call("GET", "/own").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["detail"], "admins only");
        let (status, headers, body) = call("GET", "/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(body["db"], "unavailable");
        let (status, headers, _) = call("GET", "/plain").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
    }

    #[tokio::test]
    async fn an_empty_timeout_answer_is_a_problem() {
        assert_problem(
            &call("GET", "/slow").await,
            503,
            "the service could not answer in time; try again",
        );
    }

    #[tokio::test]
    async fn any_other_bare_status_gets_the_generic_sentence() {
        assert_problem(&call("GET", "/teapot").await, 418, "the request failed");
    }
}
