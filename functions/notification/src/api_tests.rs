//! Every error the user API answers is RFC 9457 problem+json with a
//! precise status and fields: axum's own 404/405, path and body
//! rejections, refused tokens (a fixed sentence), and registration's
//! field errors for the subscription keys. Nothing here reaches a store:
//! each request is refused before (see `app_tests`).

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::app_tests::{body, router};

const P256DH: &str =
    "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM";
const AUTH: &str = "tBHItJI5svbpez7KI4CCXg";

fn bearer() -> String {
    format!("Bearer {}", auth::testing::token_for("alice", false))
}

async fn call(request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = router().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = body(response).await;
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, headers, json)
}

/// Status, media type and the RFC 9457 members; returns the body.
async fn problem(request: Request<Body>, status: StatusCode) -> Value {
    let (got, headers, json) = call(request).await;
    assert_eq!(got, status, "{json}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(json["status"], status.as_u16());
    assert_eq!(json["title"], status.canonical_reason().unwrap());
    assert_eq!(json["type"], "about:blank");
    assert!(json["detail"].is_string(), "{json}");
    json
}

fn register(body: &str, content_type: &str) -> Request<Body> {
    Request::post("/api/devices")
        .header(header::AUTHORIZATION, bearer())
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn a_malformed_device_id_is_not_found_as_a_problem() {
    let request = Request::delete("/api/devices/not-a-uuid")
        .header(header::AUTHORIZATION, bearer())
        .body(Body::empty())
        .unwrap();
    let json = problem(request, StatusCode::NOT_FOUND).await;
    assert_eq!(json["detail"], "no such resource");
}

#[tokio::test]
async fn a_method_a_route_does_not_take_is_a_405_problem_with_allow() {
    let request = Request::put("/api/devices")
        .header(header::AUTHORIZATION, bearer())
        .body(Body::empty())
        .unwrap();
    let (status, headers, json) = call(request).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(json["status"], 405);
    let allow = headers[header::ALLOW].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
}

#[tokio::test]
async fn an_unknown_path_is_a_404_problem() {
    let request = Request::get("/api/nothing-here")
        .body(Body::empty())
        .unwrap();
    problem(request, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn body_rejections_are_problems_with_precise_statuses() {
    let json = problem(
        register(r#"{"endpoint":"#, "application/json"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        json["detail"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON"),
        "{json}"
    );
    problem(
        register("{}", "text/plain"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    problem(
        register(r#"{"endpoint":"https://x"}"#, "application/json"),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let unknown = json!({"endpoint": "https://x", "p256dh": P256DH, "auth": AUTH, "extra": 1});
    problem(
        register(&unknown.to_string(), "application/json"),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}

#[tokio::test]
async fn a_refused_token_is_a_fixed_sentence() {
    for token in ["not.a.jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"] {
        let request = Request::get("/api/devices")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let json = problem(request, StatusCode::UNAUTHORIZED).await;
        assert_eq!(json["detail"], "the bearer token is not valid");
    }
    let request = Request::get("/api/devices").body(Body::empty()).unwrap();
    let json = problem(request, StatusCode::UNAUTHORIZED).await;
    assert_eq!(json["detail"], "the request has no bearer token");
}

/// Issue point 3: each key is checked for what RFC 8291 needs, and the
/// 422 names the field. The endpoint is public (a literal: no lookup), so
/// a key error is the only reason to refuse.
#[tokio::test]
async fn subscription_keys_must_be_a_curve_point_and_a_16_byte_secret() {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let mut off_curve = vec![4u8];
    off_curve.extend([1u8; 64]);
    let mut compressed = vec![2u8];
    compressed.extend(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(P256DH)
            .unwrap()[1..33],
    );
    let mut zero = vec![4u8];
    zero.extend([0u8; 64]);
    let cases = [
        (b64(&off_curve), AUTH.to_owned(), vec!["p256dh"]),
        (b64(&compressed), AUTH.to_owned(), vec!["p256dh"]),
        (b64(&zero), AUTH.to_owned(), vec!["p256dh"]),
        ("!!".to_owned(), AUTH.to_owned(), vec!["p256dh"]),
        (P256DH.to_owned(), b64(&[1u8; 15]), vec!["auth"]),
        (P256DH.to_owned(), b64(&[1u8; 17]), vec!["auth"]),
        (b64(&off_curve), b64(&[1u8; 32]), vec!["p256dh", "auth"]),
    ];
    for (p256dh, auth, fields) in cases {
        let input = json!({"endpoint": "https://8.8.8.8/push/1", "p256dh": p256dh, "auth": auth});
        let json = problem(
            register(&input.to_string(), "application/json"),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        let named: Vec<&str> = json["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(named, fields, "{json}");
    }
}

#[tokio::test]
async fn endpoint_refusals_name_the_field() {
    for endpoint in [
        "https://user:pw@push.example.com/x",
        "https://push.example.com:8443/x",
        "https://[::127.0.0.1]/x",
        "https://198.18.0.1/x",
    ] {
        let input = json!({"endpoint": endpoint, "p256dh": P256DH, "auth": AUTH});
        let json = problem(
            register(&input.to_string(), "application/json"),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(json["errors"][0]["field"], "endpoint", "{endpoint}: {json}");
    }
}
