//! The CORS policy: the settings it accepts and refuses, and what a browser
//! sees through the layer (tower's `oneshot`, no network).

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use axum::routing::get;
use proptest::prelude::*;
use settings::Settings;
use tower::ServiceExt;

use super::*;

const APP: &str = "https://app.example.com";

fn policy(pairs: &[(&str, &str)]) -> Result<CorsPolicy, SettingError> {
    let map: HashMap<&str, &str> = pairs.iter().copied().collect();
    CorsPolicy::from_settings(&Settings::new(&map))
}

fn origins(list: &str) -> CorsPolicy {
    policy(&[(ENV_CORS_ALLOWED_ORIGINS, list)]).unwrap()
}

fn router(policy: &CorsPolicy) -> Router {
    policy.apply(Router::new().route(
        "/api/things",
        get(|| async { ([(header::ETAG, "\"1\"")], "listed") }).post(|| async { "made" }),
    ))
}

async fn preflight(policy: &CorsPolicy, origin: &str) -> Response<Body> {
    let request = Request::options("/api/things")
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "PATCH")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization,content-type,idempotency-key,if-match",
        )
        .body(Body::empty())
        .unwrap();
    router(policy).oneshot(request).await.unwrap()
}

fn value(response: &Response<Body>, name: header::HeaderName) -> &str {
    response
        .headers()
        .get(&name)
        .unwrap_or_else(|| panic!("{name} missing: {:?}", response.headers()))
        .to_str()
        .unwrap()
}

/// The headers that grant a page anything.
const GRANTS: [header::HeaderName; 3] = [
    header::ACCESS_CONTROL_ALLOW_ORIGIN,
    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
    header::ACCESS_CONTROL_EXPOSE_HEADERS,
];

#[test]
fn unset_or_empty_means_same_origin_only() {
    assert_eq!(policy(&[]).unwrap(), CorsPolicy::SameOrigin);
    assert_eq!(origins(" , "), CorsPolicy::SameOrigin);
    assert!(CorsPolicy::SameOrigin.layer().is_none());
}

#[test]
fn origins_are_listed_trimmed_and_once() {
    assert_eq!(
        origins(" https://app.example.com, http://localhost:5173 ,https://app.example.com"),
        CorsPolicy::Origins(vec![APP.to_owned(), "http://localhost:5173".to_owned()])
    );
    assert_eq!(
        origins("http://[::1]:8090,http://127.0.0.1:3000"),
        CorsPolicy::Origins(vec![
            "http://[::1]:8090".to_owned(),
            "http://127.0.0.1:3000".to_owned()
        ])
    );
}

#[test]
fn a_wildcard_needs_the_development_flag() {
    let err = policy(&[(ENV_CORS_ALLOWED_ORIGINS, "*")]).unwrap_err();
    assert!(
        err.to_string().starts_with("CORS_ALLOWED_ORIGINS="),
        "{err}"
    );
    assert!(err.to_string().contains(ENV_CORS_ALLOW_ANY_ORIGIN), "{err}");
    let any = policy(&[
        (ENV_CORS_ALLOWED_ORIGINS, "*"),
        (ENV_CORS_ALLOW_ANY_ORIGIN, "true"),
    ]);
    assert_eq!(any.unwrap(), CorsPolicy::AnyOrigin);
    // The flag alone opens nothing.
    let flag_only = policy(&[(ENV_CORS_ALLOW_ANY_ORIGIN, "true")]);
    assert_eq!(flag_only.unwrap(), CorsPolicy::SameOrigin);
    let mixed = policy(&[
        (ENV_CORS_ALLOWED_ORIGINS, "*,https://app.example.com"),
        (ENV_CORS_ALLOW_ANY_ORIGIN, "true"),
    ]);
    assert!(mixed.is_err());
}

#[test]
fn origins_a_browser_never_sends_are_refused() {
    for bad in [
        "app.example.com",
        "https://app.example.com/",
        "https://app.example.com/app",
        "https://App.Example.com",
        "HTTPS://app.example.com",
        "https://app.example.com:443",
        "http://app.example.com:80",
        "https://app.example.com:0",
        "https://app.example.com:080",
        "https://app.example.com:99999",
        "https://user@app.example.com",
        "https://app.example.com?x=1",
        "ftp://app.example.com",
        "null",
        "https://",
        "https://-app.example.com",
        "https://app..example.com",
        "https://[]",
    ] {
        let err = policy(&[(ENV_CORS_ALLOWED_ORIGINS, bad)]).unwrap_err();
        assert!(
            err.to_string().starts_with("CORS_ALLOWED_ORIGINS="),
            "{bad}: {err}"
        );
    }
    // One bad entry refuses the whole list.
    let err = policy(&[(ENV_CORS_ALLOWED_ORIGINS, "https://ok.example, https://bad/")]);
    assert!(err.is_err());
}

#[tokio::test]
async fn a_preflight_from_a_listed_origin_is_granted() {
    let response = preflight(&origins(APP), APP).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(value(&response, header::ACCESS_CONTROL_ALLOW_ORIGIN), APP);
    let methods = value(&response, header::ACCESS_CONTROL_ALLOW_METHODS);
    for m in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = value(&response, header::ACCESS_CONTROL_ALLOW_HEADERS);
    for h in [
        "authorization",
        "content-type",
        "idempotency-key",
        "if-match",
    ] {
        assert!(headers.contains(h), "{headers}");
    }
    assert_eq!(value(&response, header::ACCESS_CONTROL_MAX_AGE), "600");
    assert!(value(&response, header::VARY).contains("origin"));
    assert!(
        response
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .is_none()
    );
}

#[tokio::test]
async fn a_preflight_from_another_origin_is_granted_nothing() {
    let policy = origins(&format!("{APP},http://localhost:5173"));
    for other in [
        "https://evil.example.com",
        "https://app.example.com.evil.example",
        "http://app.example.com",
        "null",
    ] {
        let response = preflight(&policy, other).await;
        for name in GRANTS {
            assert!(
                response.headers().get(&name).is_none(),
                "{other}: {name} = {:?}",
                response.headers().get(&name)
            );
        }
        // Caches must keep the answers per origin.
        assert!(value(&response, header::VARY).contains("origin"));
    }
}

#[tokio::test]
async fn a_listed_origin_reads_the_exposed_headers() {
    let request = Request::get("/api/things")
        .header(header::ORIGIN, APP)
        .body(Body::empty())
        .unwrap();
    let response = router(&origins(APP)).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(value(&response, header::ACCESS_CONTROL_ALLOW_ORIGIN), APP);
    let exposed = value(&response, header::ACCESS_CONTROL_EXPOSE_HEADERS);
    for h in ["etag", "location", "retry-after", "idempotent-replayed"] {
        assert!(exposed.contains(h), "{exposed}");
    }
}

#[tokio::test]
async fn same_origin_only_adds_no_cors_header() {
    let response = preflight(&CorsPolicy::SameOrigin, APP).await;
    // The router itself answers: OPTIONS is not a method of the route.
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let cors: Vec<_> = response
        .headers()
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .collect();
    assert!(cors.is_empty(), "{cors:?}");
}

#[tokio::test]
async fn any_origin_answers_with_the_wildcard() {
    let response = preflight(&CorsPolicy::AnyOrigin, "https://anything.example").await;
    assert_eq!(value(&response, header::ACCESS_CONTROL_ALLOW_ORIGIN), "*");
}

/// A lowercase DNS label.
fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?"
}

/// An origin as browsers serialize it.
fn browser_origin() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("http"), Just("https")],
        proptest::collection::vec(label(), 1..4),
        proptest::option::of(1u16..=u16::MAX),
    )
        .prop_filter_map("default ports are omitted", |(scheme, labels, port)| {
            let default = if scheme == "https" { 443 } else { 80 };
            let port = match port {
                Some(p) if p == default => return None,
                Some(p) => format!(":{p}"),
                None => String::new(),
            };
            Some(format!("{scheme}://{}{port}", labels.join(".")))
        })
}

proptest! {
    #[test]
    fn every_browser_origin_is_accepted_as_written(origin in browser_origin()) {
        prop_assert_eq!(origins(&origin), CorsPolicy::Origins(vec![origin.clone()]));
    }

    #[test]
    fn an_origin_with_a_path_is_refused(origin in browser_origin(), path in "/[a-z]{0,8}") {
        let bad = format!("{origin}{path}");
        prop_assert!(policy(&[(ENV_CORS_ALLOWED_ORIGINS, &bad)]).is_err());
    }

    #[test]
    fn an_origin_in_capitals_is_refused(origin in browser_origin()) {
        let bad = origin.to_ascii_uppercase();
        prop_assert!(policy(&[(ENV_CORS_ALLOWED_ORIGINS, &bad)]).is_err());
    }
}
