//! CORS on every running HTTP function (shared/service/src/cors.rs): the
//! local stack admits the page's origin (`CORS_ALLOWED_ORIGINS`, set for
//! every function by scripts/lib/stack.sh and exported to the tests by
//! `./scripts/test`). A preflight from that origin is granted by task-api,
//! audit, notification and sync-gateway; one from another origin is
//! granted nothing; and a real cross-origin create can read the headers
//! the API exposes.

use e2e_tests::Stack;
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, Response};
use uuid::Uuid;

/// The first origin the stack admits, as the functions read it.
fn allowed_origin() -> String {
    let configured = std::env::var("CORS_ALLOWED_ORIGINS").unwrap_or_default();
    let first = configured.split(',').map(str::trim).find(|o| !o.is_empty());
    match first {
        Some(origin) => origin.to_owned(),
        // stack.sh's default when nothing overrides it.
        None => {
            std::env::var("SYNC_GATEWAY_URL").unwrap_or_else(|_| "http://127.0.0.1:8090".to_owned())
        }
    }
}

/// A function and a route of it a browser page would call.
struct Target {
    name: &'static str,
    base: String,
    path: &'static str,
    method: &'static str,
    headers: &'static str,
}

fn targets(stack: &Stack) -> Vec<Target> {
    let var = |key: &str, default: &str| std::env::var(key).unwrap_or_else(|_| default.to_owned());
    vec![
        Target {
            name: "task-api",
            base: stack.task_api.clone(),
            path: "/api/tasks/00000000-0000-0000-0000-000000000000",
            method: "PATCH",
            headers: "authorization,content-type,if-match",
        },
        Target {
            name: "task-api",
            base: stack.task_api.clone(),
            path: "/api/tasks",
            method: "POST",
            headers: "authorization,content-type,idempotency-key",
        },
        Target {
            name: "audit",
            base: stack.audit.clone(),
            path: "/api/audit-logs",
            method: "GET",
            headers: "authorization",
        },
        Target {
            name: "notification",
            base: var("NOTIFICATION_URL", "http://127.0.0.1:8083"),
            path: "/api/devices",
            method: "POST",
            headers: "authorization,content-type",
        },
        Target {
            name: "sync-gateway",
            base: var("SYNC_GATEWAY_URL", "http://127.0.0.1:8090"),
            path: "/healthz",
            method: "GET",
            headers: "authorization",
        },
    ]
}

async fn preflight(stack: &Stack, target: &Target, origin: &str) -> Response {
    let url = format!("{}{}", target.base, target.path);
    stack
        .http
        .request(Method::OPTIONS, &url)
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, target.method)
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, target.headers)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{} at {url} is not reachable: {e}", target.name))
}

fn value<'h>(headers: &'h HeaderMap, name: &header::HeaderName, what: &str) -> &'h str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("{what}: no {name} in {headers:?}"))
        .to_str()
        .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn every_function_grants_a_preflight_from_the_configured_origin() {
    let stack = Stack::from_env();
    let origin = allowed_origin();
    for target in targets(&stack) {
        let what = format!("{} {} {}", target.name, target.method, target.path);
        let response = preflight(&stack, &target, &origin).await;
        assert!(response.status().is_success(), "{what}: {response:?}");
        let h = response.headers();
        assert_eq!(
            value(h, &header::ACCESS_CONTROL_ALLOW_ORIGIN, &what),
            origin,
            "{what}"
        );
        let methods = value(h, &header::ACCESS_CONTROL_ALLOW_METHODS, &what);
        assert!(methods.contains(target.method), "{what}: {methods}");
        let allowed = value(h, &header::ACCESS_CONTROL_ALLOW_HEADERS, &what).to_lowercase();
        for wanted in target.headers.split(',') {
            assert!(
                allowed.contains(wanted),
                "{what}: {wanted} not in {allowed}"
            );
        }
        assert!(value(h, &header::VARY, &what).contains("origin"), "{what}");
        assert!(
            h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none(),
            "{what}: tokens travel in Authorization, never as credentials"
        );
    }
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn another_origin_is_granted_nothing_by_any_function() {
    let stack = Stack::from_env();
    let allowed = allowed_origin();
    // A look-alike of the allowed origin, another scheme, and a stranger.
    let others = [
        format!("{allowed}.evil.example"),
        allowed.replacen("http://", "https://", 1),
        "https://evil.example".to_owned(),
    ];
    for target in targets(&stack) {
        for origin in &others {
            let response = preflight(&stack, &target, origin).await;
            let h = response.headers();
            for name in [
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
            ] {
                assert!(
                    h.get(&name).is_none(),
                    "{} {} from {origin}: {name} = {:?}",
                    target.name,
                    target.path,
                    h.get(&name)
                );
            }
        }
    }
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_cross_origin_create_can_read_location_and_etag() {
    let stack = Stack::from_env();
    let origin = allowed_origin();
    let user = format!("cors-{}", Uuid::new_v4());
    let response = stack
        .http
        .post(format!("{}/api/tasks", stack.task_api))
        .header(header::ORIGIN, &origin)
        .header("idempotency-key", Uuid::new_v4().to_string())
        .bearer_auth(stack.token(&user, false))
        .json(&serde_json::json!({"title": "made from another origin"}))
        .send()
        .await
        .expect("task-api reachable");
    assert_eq!(response.status(), 201, "{response:?}");
    let h = response.headers();
    let what = "POST /api/tasks";
    assert_eq!(value(h, &header::ACCESS_CONTROL_ALLOW_ORIGIN, what), origin);
    let exposed = value(h, &header::ACCESS_CONTROL_EXPOSE_HEADERS, what).to_lowercase();
    for name in ["location", "etag"] {
        assert!(exposed.contains(name), "{exposed}");
        assert!(h.contains_key(name), "{name} missing: {h:?}");
    }
}
