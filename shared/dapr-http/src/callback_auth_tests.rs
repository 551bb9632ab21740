//! The callback guard: which token admits whom, what it tells the handler,
//! and the start-up settings that fail closed.

use std::collections::HashMap;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::post;
use tower::ServiceExt;

use super::*;
use crate::callback_body::{ENV_CALLBACK_MAX_BODY_BYTES, MIN_CALLBACK_MAX_BODY_BYTES};

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.insert(*k, v.parse().unwrap());
    }
    map
}

#[test]
fn each_token_names_its_deliverer_and_nothing_else_is_admitted() {
    let dapr_only = AppToken::new(Some("s3cret"), None);
    assert_eq!(
        dapr_only.deliverer(&headers(&[(API_TOKEN_HEADER, "s3cret")])),
        Some(Delivery::Dapr)
    );
    assert_eq!(
        dapr_only.deliverer(&headers(&[(API_TOKEN_HEADER, "wrong")])),
        None
    );
    assert_eq!(dapr_only.deliverer(&headers(&[])), None);
    assert_eq!(
        dapr_only.deliverer(&headers(&[(KNATIVE_PUSH_TOKEN_HEADER, "s3cret")])),
        None
    );
    let both = AppToken::new(Some("d"), Some("k"));
    assert_eq!(
        both.deliverer(&headers(&[(KNATIVE_PUSH_TOKEN_HEADER, "k")])),
        Some(Delivery::Knative)
    );
    assert_eq!(
        both.deliverer(&headers(&[(API_TOKEN_HEADER, "d")])),
        Some(Delivery::Dapr)
    );
    assert_eq!(
        both.deliverer(&headers(&[(KNATIVE_PUSH_TOKEN_HEADER, "d")])),
        None
    );
    assert_eq!(both.deliverer(&headers(&[(API_TOKEN_HEADER, "k")])), None);
}

#[test]
fn without_a_token_nothing_is_admitted_unless_opened_on_purpose() {
    for closed in [AppToken::new(None, None), AppToken::new(Some(""), Some(""))] {
        assert_eq!(closed.deliverer(&headers(&[])), None, "{closed:?}");
        assert_eq!(closed.deliverer(&headers(&[(API_TOKEN_HEADER, "")])), None);
        assert!(!closed.is_unauthenticated());
    }
    let open = AppToken::unauthenticated();
    assert!(open.is_unauthenticated());
    // The documented rule: an open route answers every caller as daprd.
    for pairs in [&[][..], &[(KNATIVE_PUSH_TOKEN_HEADER, "anything")]] {
        assert_eq!(open.deliverer(&headers(pairs)), Some(Delivery::Dapr));
    }
}

fn from(pairs: &[(&str, &str)]) -> Result<AppToken, SettingError> {
    let map: HashMap<&str, &str> = pairs.iter().copied().collect();
    AppToken::from_settings(&Settings::new(&map))
}

#[test]
fn a_function_refuses_to_start_without_a_callback_token() {
    let err = from(&[]).unwrap_err().to_string();
    assert!(
        err.starts_with("APP_API_TOKEN or KNATIVE_PUSH_TOKEN is required"),
        "{err}"
    );
    assert!(
        err.contains("ALLOW_UNAUTHENTICATED_CALLBACKS=true"),
        "{err}"
    );
    let err = from(&[(ENV_APP_API_TOKEN, " ")]).unwrap_err().to_string();
    assert!(
        err.starts_with("APP_API_TOKEN or"),
        "an empty token is no token: {err}"
    );
    let err = from(&[(ENV_ALLOW_UNAUTHENTICATED_CALLBACKS, "false")]).unwrap_err();
    assert!(err.to_string().starts_with("APP_API_TOKEN or"), "{err}");
    let err = from(&[(ENV_ALLOW_UNAUTHENTICATED_CALLBACKS, "perhaps")]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("ALLOW_UNAUTHENTICATED_CALLBACKS="),
        "{err}"
    );

    assert!(
        from(&[(ENV_ALLOW_UNAUTHENTICATED_CALLBACKS, "true")])
            .unwrap()
            .is_unauthenticated()
    );
    let knative = from(&[(ENV_KNATIVE_PUSH_TOKEN, "k")]).unwrap();
    assert_eq!(
        knative.deliverer(&headers(&[(KNATIVE_PUSH_TOKEN_HEADER, "k")])),
        Some(Delivery::Knative)
    );
    // A token set wins over the flag: the routes stay checked.
    let checked = from(&[
        (ENV_APP_API_TOKEN, "d"),
        (ENV_ALLOW_UNAUTHENTICATED_CALLBACKS, "true"),
    ])
    .unwrap();
    assert!(!checked.is_unauthenticated());
    assert_eq!(checked.deliverer(&headers(&[])), None);
    // Tokens never reach a log through Debug.
    let shown = format!("{checked:?}");
    assert!(
        shown.contains("<set>") && !shown.contains("\"d\""),
        "{shown}"
    );
}

async fn who(DeliveredBy(delivery): DeliveredBy) -> String {
    format!("{delivery:?}")
}

fn guarded(token: AppToken) -> Router {
    Router::new()
        .route("/events/x", post(who))
        .route_layer(axum::middleware::from_fn_with_state(
            token,
            require_app_token,
        ))
}

async fn call(
    app: &Router,
    pairs: &[(&'static str, &'static str)],
) -> (StatusCode, String, String) {
    let mut request = Request::post("/events/x");
    for (k, v) in pairs {
        request = request.header(*k, *v);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = to_bytes(response.into_body(), 1 << 16).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap(), challenge)
}

#[tokio::test]
async fn the_guard_tells_the_handler_who_delivered() {
    let app = guarded(AppToken::new(Some("d"), Some("k")));
    let (status, body, _) = call(&app, &[(API_TOKEN_HEADER, "d")]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "Dapr"));
    let (status, body, _) = call(&app, &[(KNATIVE_PUSH_TOKEN_HEADER, "k")]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "Knative"));
    let (status, body, challenge) = call(&app, &[(API_TOKEN_HEADER, "k")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(challenge.starts_with("Dapr-Api-Token"), "{challenge}");

    let closed = guarded(AppToken::new(None, None));
    assert_eq!(call(&closed, &[]).await.0, StatusCode::UNAUTHORIZED);
    let open = guarded(AppToken::unauthenticated());
    let (status, body, _) = call(&open, &[(KNATIVE_PUSH_TOKEN_HEADER, "x")]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "Dapr"));
}

#[tokio::test]
async fn a_handler_outside_the_guard_refuses_instead_of_guessing() {
    let app = Router::new().route("/events/x", post(who));
    let (status, ..) = call(&app, &[(API_TOKEN_HEADER, "d")]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn during_a_rotation_every_listed_push_token_is_admitted() {
    let rotating = AppToken::new(Some("d"), Some("old-token, new-token"));
    for presented in ["old-token", "new-token"] {
        assert_eq!(
            rotating.deliverer(&headers(&[(KNATIVE_PUSH_TOKEN_HEADER, presented)])),
            Some(Delivery::Knative),
            "{presented}"
        );
    }
    for refused in ["old-token, new-token", "old-token,new-token", "", "other"] {
        assert_eq!(
            rotating.deliverer(&headers(&[(KNATIVE_PUSH_TOKEN_HEADER, refused)])),
            None,
            "{refused:?}"
        );
    }
    // The list is for pushes only: daprd's token is not one of them.
    assert_eq!(
        rotating.deliverer(&headers(&[(KNATIVE_PUSH_TOKEN_HEADER, "d")])),
        None
    );
    let app = guarded(rotating);
    let (status, body, _) = call(&app, &[(KNATIVE_PUSH_TOKEN_HEADER, "new-token")]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "Knative"));
    // Empty entries (a stray comma) admit nothing.
    let sloppy = AppToken::new(None, Some("k,, ,"));
    assert_eq!(
        sloppy.deliverer(&headers(&[(KNATIVE_PUSH_TOKEN_HEADER, "")])),
        None
    );
    assert!(
        from(&[(ENV_KNATIVE_PUSH_TOKEN, " , ")]).is_err(),
        "no token at all"
    );
}

/// Reads the whole body, as the event handlers do, and says how long it was.
async fn body_length(DeliveredBy(_): DeliveredBy, body: axum::body::Bytes) -> String {
    body.len().to_string()
}

/// A guarded route behind an outer API body limit of 64 KiB, as task-api
/// sets `MAX_BODY_BYTES`.
fn guarded_reader(token: AppToken) -> Router {
    Router::new()
        .route("/events/x", post(body_length))
        .route_layer(axum::middleware::from_fn_with_state(
            token,
            require_app_token,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
}

async fn push(
    app: &Router,
    token: (&'static str, &'static str),
    len: usize,
) -> (StatusCode, String, String) {
    let request = Request::post("/events/x")
        .header(token.0, token.1)
        .body(Body::from(vec![b'x'; len]))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = to_bytes(response.into_body(), 1 << 16).await.unwrap();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn a_body_past_the_callback_limit_is_poison_for_its_deliverer() {
    let app = guarded_reader(AppToken::new(Some("d"), Some("k")));
    // The largest event the pubsub takes, and more, reaches the handler
    // whatever the API's own limit (64 KiB here) or axum's default (2 MiB).
    let (status, _, body) = push(&app, (API_TOKEN_HEADER, "d"), 1_100_000).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "1100000"));

    let too_large = 3_000_000;
    let (status, _, body) = push(&app, (API_TOKEN_HEADER, "d"), too_large).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply, serde_json::json!({"status": "DROP"}));

    let (status, content_type, body) =
        push(&app, (KNATIVE_PUSH_TOKEN_HEADER, "k"), too_large).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(content_type, "application/problem+json");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["status"], 400);
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("CALLBACK_MAX_BODY_BYTES"), "{detail}");

    // Without the token, the body is never read: the answer is 401.
    let (status, ..) = push(&app, (API_TOKEN_HEADER, "wrong"), too_large).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_callback_limit_is_a_setting_with_a_floor() {
    let raised = from(&[
        (ENV_APP_API_TOKEN, "d"),
        (ENV_CALLBACK_MAX_BODY_BYTES, "4194304"),
    ]);
    let app = guarded_reader(raised.unwrap());
    let (status, _, body) = push(&app, (API_TOKEN_HEADER, "d"), 3_000_000).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "3000000"));
    let (_, _, body) = push(&app, (API_TOKEN_HEADER, "d"), 4_194_305).await;
    assert_eq!(body, r#"{"status":"DROP"}"#);

    let lowered = AppToken::new(Some("d"), None).with_max_body_bytes(MIN_CALLBACK_MAX_BODY_BYTES);
    let (_, _, body) = push(&guarded_reader(lowered), (API_TOKEN_HEADER, "d"), 1_048_577).await;
    assert_eq!(body, r#"{"status":"DROP"}"#);

    let err = from(&[
        (ENV_APP_API_TOKEN, "d"),
        (ENV_CALLBACK_MAX_BODY_BYTES, "65536"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("CALLBACK_MAX_BODY_BYTES="), "{err}");
}
