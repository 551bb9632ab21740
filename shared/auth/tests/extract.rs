//! The extractor's 401s carry the RFC 6750 challenge: bare `Bearer` when
//! no bearer token was sent, `error="invalid_token"` when one was refused.

use std::sync::Arc;

use auth::testing::{expired_token_for, test_config, token_for};
use auth::{Authenticated, Authenticator, HasAuthenticator};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use tower::ServiceExt;

#[derive(Clone)]
struct State(Arc<Authenticator>);

impl HasAuthenticator for State {
    fn authenticator(&self) -> &Arc<Authenticator> {
        &self.0
    }
}

async fn whoami(Authenticated(principal): Authenticated) -> String {
    principal.user_id
}

fn app() -> Router {
    Router::new()
        .route("/me", get(whoami))
        .with_state(State(Arc::new(Authenticator::new(&test_config()))))
}

async fn challenge(authorization: Option<&str>) -> (StatusCode, Option<String>, String) {
    let mut request = Request::get("/me");
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let response = app()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let header_of = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &header::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let challenge = header_of(header::WWW_AUTHENTICATE);
    let content_type = header_of(header::CONTENT_TYPE).unwrap_or_default();
    (response.status(), challenge, content_type)
}

#[tokio::test]
async fn refusals_carry_the_bearer_challenge() {
    let invalid = Some(r#"Bearer error="invalid_token""#.to_owned());
    let cases = [
        (None, Some("Bearer".to_owned())),
        (
            Some("Basic YWxpY2U6cHc=".to_owned()),
            Some("Bearer".to_owned()),
        ),
        (
            Some(format!("Bearer {}", expired_token_for("alice"))),
            invalid.clone(),
        ),
        (Some("Bearer not.a.jwt".to_owned()), invalid),
    ];
    for (authorization, expected) in cases {
        let (status, challenge, content_type) = challenge(authorization.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert_eq!(challenge, expected, "{authorization:?}");
        assert_eq!(content_type, "application/problem+json");
    }
    let ok = format!("Bearer {}", token_for("alice", false));
    let (status, challenge, _) = challenge(Some(&ok)).await;
    assert_eq!((status, challenge), (StatusCode::OK, None));
}

/// Why a token was refused stays in the log: the body says one fixed
/// sentence per case, never the JWT library's wording.
#[tokio::test]
async fn refusal_details_are_fixed_sentences() {
    let cases = [
        (None, "the request has no bearer token"),
        (
            Some("Basic YWxpY2U6cHc=".to_owned()),
            "the Authorization header is not a bearer token",
        ),
        (
            Some(format!("Bearer {}", expired_token_for("alice"))),
            "the bearer token is not valid",
        ),
        (
            Some("Bearer not.a.jwt".to_owned()),
            "the bearer token is not valid",
        ),
        (
            Some("Bearer eyJhbGciOiJub25lIn0.e30.".to_owned()),
            "the bearer token is not valid",
        ),
    ];
    for (authorization, detail) in cases {
        let mut request = Request::get("/me");
        if let Some(value) = &authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let response = app()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["detail"], detail, "{authorization:?}");
        assert_eq!(body["status"], 401);
    }
}
