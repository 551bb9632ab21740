//! Every running function answers the errors no handler wrote (an unknown
//! path, a method a path does not take) as RFC 9457 problem documents, as
//! its `main` builds it: routers merged after a function's `app()` bring
//! their own fallback, so a test of `app()` alone cannot see this.

use e2e_tests::Stack;
use reqwest::{Method, StatusCode};

fn functions(stack: &Stack) -> Vec<(&'static str, String, &'static str)> {
    let var = |key: &str, default: &str| std::env::var(key).unwrap_or_else(|_| default.to_owned());
    vec![
        ("task-api", stack.task_api.clone(), "/api/tasks"),
        ("audit", stack.audit.clone(), "/api/audit-logs"),
        (
            "notification",
            var("NOTIFICATION_URL", "http://127.0.0.1:8083"),
            "/api/devices",
        ),
        (
            "recurring",
            var("RECURRING_URL", "http://127.0.0.1:8082"),
            "/healthz",
        ),
        (
            "sync-gateway",
            var("SYNC_GATEWAY_URL", "http://127.0.0.1:8090"),
            "/healthz",
        ),
    ]
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn unknown_paths_and_methods_are_problem_documents_on_every_function() {
    let stack = Stack::from_env();
    for (name, base, known) in functions(&stack) {
        for (method, path, expected) in [
            (Method::GET, "/no/such/path", StatusCode::NOT_FOUND),
            (Method::PUT, known, StatusCode::METHOD_NOT_ALLOWED),
        ] {
            let what = format!("{name}: {method} {path}");
            let response = stack
                .http
                .request(method, format!("{base}{path}"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{what}: not reachable: {e}"));
            assert_eq!(response.status(), expected, "{what}");
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            assert_eq!(content_type, "application/problem+json", "{what}");
            let body: serde_json::Value = response.json().await.expect("a JSON body");
            assert_eq!(body["status"], expected.as_u16(), "{what}: {body}");
        }
    }
}
