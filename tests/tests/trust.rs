//! Trust at the edges of the running functions: `If-Match` by the strong
//! comparison over a list of tags, the RFC 6750 challenge on a 401, and
//! push replies spelled for the deliverer the token proved (the real
//! audit, with the stack's app token).

use contracts::EventKind;
use contracts::testing::{knative_binary_push, task_event};
use e2e_tests::{Stack, audit_rows_for_event};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

fn unique_user(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::new_v4().simple())
}

/// One authenticated call to task-api; returns the status and the body.
async fn call(
    stack: &Stack,
    method: Method,
    path: &str,
    token: &str,
    if_match: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = stack
        .http
        .request(method, format!("{}{path}", stack.task_api))
        .bearer_auth(token);
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("task-api reachable");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn if_match_is_a_strong_comparison_over_a_list_of_tags() {
    let stack = Stack::from_env();
    let user = unique_user("ifmatch");
    let token = stack.token(&user, false);
    let task = stack.create_task(&user, &json!({"title": "Tagged"})).await;
    let path = format!("/api/tasks/{}", task["id"].as_str().expect("an id"));
    let patch = |title: &str| Some(json!({"title": title}));
    let patch_with = |tag: &'static str, title: &'static str| {
        call(
            &stack,
            Method::PATCH,
            &path,
            &token,
            Some(tag),
            patch(title),
        )
    };

    // The task is at "1". A weak tag never matches, nor an unissued one.
    for tag in ["W/\"1\"", "\"01\"", "\"abc\"", "W/\"1\", W/\"2\""] {
        let (status, body) = patch_with(tag, "nope").await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{tag}: {body}");
    }
    // A read evaluates If-Match too (RFC 9110 §13.2.1).
    let (status, _) = call(&stack, Method::GET, &path, &token, Some("W/\"1\""), None).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    let (status, _) = call(
        &stack,
        Method::GET,
        &path,
        &token,
        Some("\"7\", \"1\""),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // A list matches when any strong tag in it is current.
    let (status, body) = patch_with("\"7\", \"1\"", "second").await;
    assert_eq!(
        (status, &body["sequence"]),
        (StatusCode::OK, &json!(2)),
        "{body}"
    );
    let (status, _) = patch_with("\"1\"", "stale").await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    let (status, body) = call(
        &stack,
        Method::POST,
        &format!("{path}/complete"),
        &token,
        Some("W/\"2\", \"2\", \"3\""),
        None,
    )
    .await;
    assert_eq!(
        (status, &body["sequence"]),
        (StatusCode::OK, &json!(3)),
        "{body}"
    );
    // Not entity tags at all: 400.
    let (status, _) = patch_with("3", "bare").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // `*` is any existing task; a gone one is 404 as without the header.
    let (status, _) = call(&stack, Method::DELETE, &path, &token, Some("*"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = patch_with("*", "gone").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = patch_with("W/\"9\"", "gone").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_401_names_the_bearer_challenge() {
    let stack = Stack::from_env();
    let expired = auth::testing::sign(
        &json!({"sub": "someone", "exp": 1_000_000_000u64}),
        &stack.jwt_secret,
    );
    for base in [&stack.task_api, &stack.audit] {
        let path = if base == &stack.task_api {
            "/api/tasks"
        } else {
            "/api/audit-logs"
        };
        for (authorization, challenge) in [
            (None, "Bearer"),
            (Some("Basic YWxpY2U6cHc=".to_owned()), "Bearer"),
            (
                Some(format!("Bearer {expired}")),
                "Bearer error=\"invalid_token\"",
            ),
        ] {
            let mut request = stack.http.get(format!("{base}{path}"));
            if let Some(value) = &authorization {
                request = request.header("authorization", value);
            }
            let response = request.send().await.expect("function reachable");
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(
                response.headers()["www-authenticate"],
                challenge,
                "{path} {authorization:?}"
            );
        }
    }
}

/// A push to the real audit with daprd's app token: however it is encoded,
/// the answer is in daprd's terms.
async fn push_as_daprd(stack: &Stack, headers: &[(String, String)], body: Vec<u8>) -> (u16, Value) {
    let token = stack
        .app_api_token
        .clone()
        .expect("the local stack runs with APP_API_TOKEN set");
    let mut request = stack
        .http
        .post(format!("{}/events/task-events", stack.audit))
        .header("dapr-api-token", token)
        .body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("audit reachable");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn daprds_token_gets_daprd_replies_in_both_encodings() {
    let stack = Stack::from_env();
    let structured = [(
        "content-type".to_owned(),
        "application/cloudevents+json".to_owned(),
    )];
    // What a CloudEvents SDK sends: structured, no `pubsubname`, a type
    // nobody handles. daprd must read DROP (a 400 it would retry).
    let unknown = json!({
        "specversion": "1.0", "id": Uuid::now_v7().to_string(), "source": "/e2e",
        "type": "com.example.unknown", "datacontenttype": "application/json",
        "data": {"a": 1}
    });
    let reply = push_as_daprd(&stack, &structured, unknown.to_string().into_bytes()).await;
    assert_eq!(reply, (200, json!({"status": "DROP"})));

    let binary = |event: &contracts::OutgoingEvent| {
        let (headers, body) = knative_binary_push(event);
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        (headers, body)
    };
    // Binary mode, data that fails the schema: DROP, not 400.
    let user = unique_user("binary");
    let (headers, _) = binary(&task_event(EventKind::TaskCreated, &user));
    let poison = br#"{"not": "a task event"}"#.to_vec();
    assert_eq!(
        push_as_daprd(&stack, &headers, poison).await,
        (200, json!({"status": "DROP"}))
    );
    // Binary mode, a good event: SUCCESS, and stored. (Another test may be
    // holding audit's table away for a while: RETRY until it is back.)
    let event = task_event(EventKind::TaskCreated, &user);
    let (headers, body) = binary(&event);
    let settled = e2e_tests::eventually(std::time::Duration::from_secs(120), || async {
        let reply = push_as_daprd(&stack, &headers, body.clone()).await;
        (reply != (200, json!({"status": "RETRY"}))).then_some(reply)
    })
    .await;
    assert_eq!(settled, Some((200, json!({"status": "SUCCESS"}))));
    let db = stack.db().await;
    assert_eq!(audit_rows_for_event(&db, &event.id.to_string()).await, 1);
}

/// The function binary the stack runs (`scripts/dev` builds it).
fn function_binary(name: &str) -> std::path::PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned());
    let profile = std::env::var("TODO_EVENTS_PROFILE").unwrap_or_else(|_| "debug".to_owned());
    std::path::PathBuf::from(target).join(profile).join(name)
}

/// A free port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// audit with only what it needs to start, and no callback token.
fn audit_without_tokens(stack: &Stack, port: u16) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(function_binary("audit"));
    command
        .env_clear()
        .env("PORT", port.to_string())
        .env("DATABASE_URL", &stack.database_url)
        .env("JWT_HS256_SECRET", &stack.jwt_secret)
        // Nothing listens there: the retention job's registration just
        // keeps retrying in the background.
        .env("DAPR_HTTP_PORT", "1")
        .env("LOG_FORMAT", "text")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_function_without_a_callback_token_refuses_to_start_unless_opened() {
    let stack = Stack::from_env();
    let port = free_port();
    let refused = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        audit_without_tokens(&stack, port).output(),
    )
    .await
    .expect("audit exits at once")
    .expect("audit runs");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "audit started without a token");
    assert!(
        said.contains("APP_API_TOKEN or KNATIVE_PUSH_TOKEN is required"),
        "{said}"
    );
    assert!(said.contains("ALLOW_UNAUTHENTICATED_CALLBACKS"), "{said}");

    // Opened on purpose, it starts, says so, and answers anyone as daprd.
    let mut open = audit_without_tokens(&stack, port);
    let mut child = open
        .env("ALLOW_UNAUTHENTICATED_CALLBACKS", "true")
        .spawn()
        .expect("audit runs");
    let base = format!("http://127.0.0.1:{port}");
    let up = e2e_tests::eventually(std::time::Duration::from_secs(20), || async {
        let health = stack.http.get(format!("{base}/healthz")).send().await;
        health.ok().filter(|r| r.status().is_success()).map(|_| ())
    })
    .await;
    let unknown = json!({
        "specversion": "1.0", "id": Uuid::now_v7().to_string(), "source": "/e2e",
        "type": "com.example.unknown", "datacontenttype": "application/json", "data": {}
    });
    let reply = stack
        .http
        .post(format!("{base}/events/task-events"))
        .header("content-type", "application/cloudevents+json")
        .body(unknown.to_string())
        .send()
        .await;
    child.start_kill().expect("audit stops");
    let output = child.wait_with_output().await.expect("audit's output");
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(up.is_some(), "audit did not start: {log}");
    assert!(log.contains("callback routes are UNAUTHENTICATED"), "{log}");
    let reply = reply.expect("audit reachable");
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(
        reply.json::<Value>().await.unwrap_or_default(),
        json!({"status": "DROP"})
    );
}

/// Pushes `body` to a function at `base` with one token header.
async fn push_with(
    stack: &Stack,
    base: &str,
    token: (&str, &str),
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, String, String) {
    let mut request = stack
        .http
        .post(format!("{base}/events/task-events"))
        .header(token.0, token.1)
        .body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("audit reachable");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (
        status,
        content_type,
        response.text().await.unwrap_or_default(),
    )
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn oversized_pushes_are_poison_and_a_rotation_admits_both_push_tokens() {
    let stack = Stack::from_env();
    let port = free_port();
    let mut child = audit_without_tokens(&stack, port)
        .env("APP_API_TOKEN", "limits-app-token")
        .env("KNATIVE_PUSH_TOKEN", "old-push-token,new-push-token")
        .spawn()
        .expect("audit runs");
    let base = format!("http://127.0.0.1:{port}");
    let up = e2e_tests::eventually(std::time::Duration::from_secs(20), || async {
        let health = stack.http.get(format!("{base}/healthz")).send().await;
        health.ok().filter(|r| r.status().is_success()).map(|_| ())
    })
    .await;
    assert!(up.is_some(), "audit did not start");
    let structured = [(
        "content-type".to_owned(),
        "application/cloudevents+json".to_owned(),
    )];

    // 3 MB: past CALLBACK_MAX_BODY_BYTES (and axum's 2 MiB default).
    // daprd must read DROP (a 413 it would retry for good), Knative a 400;
    // and the reply must arrive, not a connection closed mid-body (several
    // tries: that was a race).
    let huge = vec![b' '; 3_000_000];
    for _ in 0..5 {
        let dapr = push_with(
            &stack,
            &base,
            ("dapr-api-token", "limits-app-token"),
            &structured,
            huge.clone(),
        )
        .await;
        assert_eq!(
            (dapr.0, dapr.2.as_str()),
            (200, r#"{"status":"DROP"}"#),
            "{dapr:?}"
        );
    }
    let knative = push_with(
        &stack,
        &base,
        ("ce-pushtoken", "new-push-token"),
        &structured,
        huge,
    )
    .await;
    assert_eq!(
        (knative.0, knative.1.as_str()),
        (400, "application/problem+json"),
        "{knative:?}"
    );
    assert!(knative.2.contains("CALLBACK_MAX_BODY_BYTES"), "{knative:?}");

    // Mid-rotation, the old push token still delivers a good event.
    let event = task_event(EventKind::TaskCreated, &unique_user("rotation"));
    let (headers, body) = knative_binary_push(&event);
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let settled = e2e_tests::eventually(std::time::Duration::from_secs(120), || async {
        let reply = push_with(
            &stack,
            &base,
            ("ce-pushtoken", "old-push-token"),
            &headers,
            body.clone(),
        )
        .await;
        (reply.0 != 503).then_some(reply)
    })
    .await;
    // The list itself is no token.
    let both = push_with(
        &stack,
        &base,
        ("ce-pushtoken", "old-push-token,new-push-token"),
        &headers,
        Vec::new(),
    )
    .await;
    child.start_kill().expect("audit stops");
    let _ = child.wait().await;
    assert_eq!(both.0, 401, "{both:?}");
    let (status, _, text) = settled.expect("audit's table came back");
    assert_eq!(status, 200, "{text}");
    let db = stack.db().await;
    assert_eq!(audit_rows_for_event(&db, &event.id.to_string()).await, 1);
}
