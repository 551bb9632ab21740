//! `openapi.json` against what `main` serves ([`crate::router`], the page
//! included, over a page directory with the app and the docs): every
//! route is documented and every documented operation served, both ways
//! ([`service::openapi::drift`]), the callbacks stay out, the static-file
//! fallback is held to its named paths ([`FALLBACK_PATHS`]), every answer
//! a probe gets (the socket's 101 and 503 over a real connection) is one
//! the document lists with its body's schema, and the examples match
//! their schemas. `scripts/test` validates the document with
//! openapi-spec-validator.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use auth::Authenticator;
use auth::testing::test_config;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use dapr_http::AppToken;
use serde_json::Value;
use service::openapi::{answer_schema, validate_at};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::config::SocketBuffers;
use crate::feed::TaskApiFeed;
use crate::hub::Hub;
use crate::openapi::{FALLBACK_PATHS, OPENAPI, PAGE_ROUTES};
use crate::session::{Context, SessionConfig};
use crate::web::WebConfig;
use crate::ws::Sessions;
use crate::{AppState, GatewayMetrics, callback_routes, public_routes, router};

fn document() -> Value {
    serde_json::from_str(OPENAPI).expect("openapi.json is JSON")
}

/// A page directory as web/dist is built: the app and the docs.
fn page_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sync-gateway-openapi-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><title>app</title>").unwrap();
    for page in ["index.html", "events.html"] {
        std::fs::write(
            dir.join("docs").join(page),
            "<!doctype html><title>docs</title>",
        )
        .unwrap();
    }
    for document in ["openapi.json", "asyncapi.json"] {
        std::fs::write(dir.join("docs").join(document), r#"{"info":{}}"#).unwrap();
    }
    dir
}

/// The router `main` builds, with the change feed at a closed port and at
/// most `max_sockets` sockets; `page` as WEB_DIR.
fn gateway(page: Option<PathBuf>, max_sockets: usize) -> Router {
    let state = AppState {
        session: Context {
            feed: TaskApiFeed::new("http://127.0.0.1:1", Duration::from_millis(100)).unwrap(),
            hub: Hub::new(8),
            auth: Arc::new(Authenticator::new(&test_config())),
            config: SessionConfig::default(),
            shutdown: tokio::sync::watch::channel(false).1,
            replays: Arc::new(tokio::sync::Semaphore::new(1)),
        },
        buffers: SocketBuffers {
            read: 4096,
            write: 4096,
            max_message: 16384,
        },
        sessions: Sessions::with_limit(max_sockets),
        pubsub: "pubsub".into(),
        metrics: GatewayMetrics::default(),
    };
    let web = WebConfig {
        dir: page,
        api_url: String::new(),
    };
    let token = AppToken::new(Some("dapr-app-token"), None);
    router(state, token, telemetry::metrics::Metrics::new("test"), &web)
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut public = public_routes().paths().to_vec();
    public.extend(service::health::PATHS);
    public.extend(PAGE_ROUTES);
    public.extend(FALLBACK_PATHS);
    let internal = callback_routes().paths().to_vec();
    let app = gateway(Some(page_dir()), 10);
    let problems = service::openapi::drift(&app, &doc, &public, &internal).await;
    assert!(problems.is_empty(), "openapi.json drifted: {problems:#?}");
    // The fallback serves files, not every path: one the page does not
    // have is a 404, so the named paths are the only documented ones.
    let missing = Request::get("/docs/missing.html")
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(missing).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_document_is_served_as_json() {
    let request = Request::get("/openapi.json").body(Body::empty()).unwrap();
    let response = gateway(None, 10).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), document());
}

#[test]
fn every_example_matches_its_schema() {
    service::openapi::assert_examples_hold(&document(), 15);
}

/// Holds one answer to the document: its status is documented for `GET
/// path`, the documented headers it must carry are there, and a JSON body
/// matches the documented schema.
fn assert_documented(doc: &Value, path: &str, status: u16, headers: &HeaderMap, body: &[u8]) {
    let at = format!("/paths/{}/get/responses/{status}", path.replace('/', "~1"));
    let answer = doc
        .pointer(&at)
        .unwrap_or_else(|| panic!("GET {path} answered {status}, not documented"));
    for (name, documented) in answer["headers"].as_object().into_iter().flatten() {
        // The two security headers come from a layer that only some paths
        // get; a header marked `required: false` only on some answers.
        let optional = name == "Content-Security-Policy"
            || name == "X-Content-Type-Options"
            || documented["required"] == false;
        assert!(
            optional || headers.contains_key(name.as_str()),
            "GET {path} {status}: no {name}"
        );
    }
    let Some((schema, media)) = answer_schema(doc, path, "get", status) else {
        return;
    };
    let content_type = headers[header::CONTENT_TYPE].to_str().unwrap();
    assert!(
        content_type.starts_with(&media),
        "GET {path} {status}: {content_type}, documented {media}"
    );
    if media.ends_with("json") {
        let value: Value = serde_json::from_slice(body).unwrap();
        validate_at(doc, &schema, &value).unwrap_or_else(|e| panic!("GET {path} {status}: {e}"));
    }
}

/// Request headers of a probe.
type Headers = Vec<(&'static str, String)>;

async fn answer(app: &Router, path: &str, headers: &[(&str, String)]) -> (u16, HeaderMap, Vec<u8>) {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, headers, body.to_vec())
}

/// The answers a client can get without a socket: the page, its
/// settings, the docs and their redirect, no page at all, and the refused
/// upgrades.
#[tokio::test]
async fn every_answer_over_http_is_documented() {
    let doc = document();
    let upgrade = || {
        vec![
            ("connection", "Upgrade".to_owned()),
            ("upgrade", "websocket".to_owned()),
            ("sec-websocket-version", "13".to_owned()),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==".to_owned()),
        ]
    };
    let other_version = || {
        let mut headers = upgrade();
        headers[2].1 = "8".to_owned();
        headers
    };
    let bad_token = vec![("authorization", "Bearer not.a.jwt".to_owned())];
    let expired = vec![(
        "authorization",
        format!("Bearer {}", auth::testing::expired_token_for("alice")),
    )];
    let with_page = gateway(Some(page_dir()), 10);
    let without = gateway(None, 10);
    let cases: Vec<(&Router, &str, Headers, u16)> = vec![
        (&with_page, "/", vec![], 200),
        (&with_page, "/docs", vec![], 307),
        (&with_page, "/docs/", vec![], 200),
        (&with_page, "/docs/events.html", vec![], 200),
        (&with_page, "/config.json", vec![], 200),
        (&with_page, "/docs/openapi.json", vec![], 200),
        (&with_page, "/docs/asyncapi.json", vec![], 200),
        (&without, "/docs/asyncapi.json", vec![], 404),
        (&without, "/", vec![], 404),
        (&without, "/docs/", vec![], 404),
        (&without, "/config.json", vec![], 404),
        (&without, "/ws/tasks", vec![], 400),
        (&without, "/ws/tasks", bad_token, 401),
        (&without, "/ws/tasks", expired, 401),
        // In-process there is no connection to take over.
        (&without, "/ws/tasks", upgrade(), 426),
        (&without, "/ws/tasks", other_version(), 400),
        (&without, "/healthz", vec![], 200),
        (&without, "/readyz", vec![], 200),
    ];
    for (app, path, headers, want) in cases {
        let (status, headers, body) = answer(app, path, &headers).await;
        assert_eq!(
            status,
            want,
            "GET {path}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_documented(&doc, path, status, &headers, &body);
    }
    // RFC 6455 section 4.4: a refused version is told the one spoken here.
    let (status, headers, _) = answer(&without, "/ws/tasks", &other_version()).await;
    assert_eq!(status, 400);
    assert_eq!(headers["sec-websocket-version"], "13");
    let (_, headers, _) = answer(&without, "/ws/tasks", &[]).await;
    assert!(!headers.contains_key("sec-websocket-version"));
}

/// Over a real connection: the upgrade's 101, and the 503 of a replica
/// that holds as many sockets as it takes.
#[tokio::test]
async fn the_socket_answers_are_documented() {
    use tokio_tungstenite::tungstenite::Error;
    let doc = document();
    for (max_sockets, want) in [(10, 101), (0, 503)] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = gateway(None, max_sockets);
        tokio::spawn(async move { axum::serve(listener, app).await });
        let (status, headers, body) =
            match tokio_tungstenite::connect_async(format!("ws://{address}/ws/tasks")).await {
                Ok((_socket, response)) => {
                    (response.status(), response.headers().clone(), Vec::new())
                }
                Err(Error::Http(response)) => {
                    let (parts, body) = (*response).into_parts();
                    (parts.status, parts.headers, body.unwrap_or_default())
                }
                Err(other) => panic!("{other}"),
            };
        assert_eq!(status.as_u16(), want);
        assert_documented(&doc, "/ws/tasks", want, &headers, &body);
    }
}
