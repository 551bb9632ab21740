//! notification against the real stack: task-api's reminders travel
//! through the outbox, Kafka and daprd to notification, which schedules a
//! Dapr job per firing in the real scheduler; the trigger sends through
//! mailpit (read back through its REST API) and the local Web Push service
//! (scripts/lib/push_service.py, which checks VAPID and decrypts).
//!
//! Each test has its own user, address and push subscriptions, so
//! concurrent tests and other engineers' traffic do not disturb it.
//! Every test is ignored by a plain `cargo test`; `./scripts/test` runs them.

use std::time::{Duration, Instant};

use chrono::Utc;
use e2e_tests::eventually;
use e2e_tests::notify::{MAIL, PushService, WAIT, env, one_mail, unique_user};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_reminder_due_in_2s_arrives_once_by_email_and_once_per_device() {
    let _mail = MAIL.read().await;
    let env = env();
    let push = PushService::start().await;
    let (user, address, phone) = env.user_with_device(&push).await;
    let laptop = push.subscribe(&env.stack.http, None).await;
    env.register(&user, &laptop).await;

    let due = Utc::now() + chrono::Duration::seconds(2);
    env.task_with_reminder(&user, "Water the plants", due).await;

    let mail = one_mail(&env, &address).await;
    assert!(mail[0].0.contains("Water the plants"), "{mail:?}");
    for device in [&phone, &laptop] {
        let got = eventually(WAIT, || async {
            let m = push.messages(&env.stack.http, device).await;
            (!m.is_empty()).then_some(m)
        })
        .await
        .expect("a push for each device");
        let payload: Value = serde_json::from_str(got[0]["plaintext"].as_str().unwrap_or_default())
            .expect("JSON payload");
        assert_eq!(payload["title"], "Water the plants");
        assert_eq!(got[0]["urgency"], "high");
        assert!(got[0]["ttl"].as_u64().unwrap_or_default() > 0);
    }
    // Once: nothing more arrives after a while (redelivered triggers and
    // the scheduler's failure policy find the delivery records).
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(env.mail(&address).await.len(), 1);
    assert_eq!(push.messages(&env.stack.http, &phone).await.len(), 1);
    assert_eq!(push.messages(&env.stack.http, &laptop).await.len(), 1);

    let (status, history) = env
        .call(reqwest::Method::GET, &user, "/api/notifications", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let items = history["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 3, "{history}");
    assert!(items.iter().all(|i| i["status"] == "sent"), "{history}");
    // Another user sees none of it.
    let (_, other) = env
        .call(
            reqwest::Method::GET,
            &unique_user(),
            "/api/notifications",
            None,
        )
        .await;
    assert_eq!(other["items"], json!([]));
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn the_tokens_email_claim_is_the_address_without_settings() {
    let _mail = MAIL.read().await;
    let env = env();
    let user = unique_user();
    let address = format!("{user}@claim.example.test");
    // No address in the user's settings: only the token's claim names one.
    let (status, settings) = env
        .call(
            reqwest::Method::GET,
            &user,
            "/api/notification-settings",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert!(settings["email"].is_null(), "{settings}");

    let now = Utc::now().timestamp();
    let mut claims = json!({"sub": user, "iat": now, "exp": now + 3600, "email": address});
    for (claim, var) in [("iss", "JWT_ISSUER"), ("aud", "JWT_AUDIENCE")] {
        if let Ok(value) = std::env::var(var) {
            claims[claim] = Value::String(value);
        }
    }
    let token = auth::testing::sign(&claims, &env.stack.jwt_secret);
    let at = Utc::now() + chrono::Duration::seconds(2);
    let response = env
        .stack
        .http
        .post(format!("{}/api/tasks", env.stack.task_api))
        .bearer_auth(token)
        .json(&json!({
            "title": "Call the plumber",
            "due_at": at + chrono::Duration::hours(1),
            "reminders": [{"at": at, "channels": ["email"]}]
        }))
        .send()
        .await
        .expect("task-api reachable");
    assert_eq!(response.status(), StatusCode::CREATED);

    let mail = one_mail(&env, &address).await;
    assert!(mail[0].0.contains("Call the plumber"), "{mail:?}");
}

/// A reminder whose events carry no claim (made by a token without one,
/// as the recurring function's next occurrence is) goes to the last
/// claim notification saw for the user.
#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_reminder_without_the_claim_goes_to_the_last_claim_seen() {
    let _mail = MAIL.read().await;
    let env = env();
    let user = unique_user();
    let address = format!("{user}@claim.example.test");
    let now = Utc::now().timestamp();
    let mut claims = json!({"sub": user, "iat": now, "exp": now + 3600, "email": address});
    for (claim, var) in [("iss", "JWT_ISSUER"), ("aud", "JWT_AUDIENCE")] {
        if let Ok(value) = std::env::var(var) {
            claims[claim] = Value::String(value);
        }
    }
    let token = auth::testing::sign(&claims, &env.stack.jwt_secret);
    // A reminder far off, made with the claim: notification sees it.
    let later = Utc::now() + chrono::Duration::days(2);
    let response = env
        .stack
        .http
        .post(format!("{}/api/tasks", env.stack.task_api))
        .bearer_auth(token)
        .json(&json!({
            "title": "Renew the passport",
            "due_at": later + chrono::Duration::hours(1),
            "reminders": [{"at": later, "channels": ["email"]}]
        }))
        .send()
        .await
        .expect("task-api reachable");
    assert_eq!(response.status(), StatusCode::CREATED);
    let seen = eventually(WAIT, || async {
        let claim = env.state(&format!("email|{user}")).await;
        (claim["email"] == address.as_str()).then_some(())
    })
    .await;
    assert!(seen.is_some(), "the claim was not remembered");

    // Then one made by a token without the claim, due in 2 s.
    let at = Utc::now() + chrono::Duration::seconds(2);
    env.stack
        .create_task(
            &user,
            &json!({"title": "Feed the cat", "due_at": at + chrono::Duration::hours(1), "reminders": [{"at": at, "channels": ["email"]}]}),
        )
        .await;
    let mail = one_mail(&env, &address).await;
    assert!(mail[0].0.contains("Feed the cat"), "{mail:?}");
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_rescheduled_reminder_arrives_only_at_the_new_time() {
    let _mail = MAIL.read().await;
    let env = env();
    let user = unique_user();
    let address = env.email_for(&user).await;
    let first = Utc::now() + chrono::Duration::seconds(4);
    let task = env.task_with_reminder(&user, "Call the bank", first).await;
    let later = Utc::now() + chrono::Duration::seconds(12);
    env.move_reminder(&user, &task, later).await;
    let mail = one_mail(&env, &address).await;
    assert!(
        mail[0].1 >= later - chrono::Duration::milliseconds(500),
        "sent at {} although moved to {later}",
        mail[0].1
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(env.mail(&address).await.len(), 1);
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn completed_and_deleted_tasks_send_nothing() {
    let _mail = MAIL.read().await;
    let env = env();
    let user = unique_user();
    let address = env.email_for(&user).await;
    let at = Utc::now() + chrono::Duration::seconds(5);
    let done = env.task_with_reminder(&user, "Done already", at).await;
    let gone = env.task_with_reminder(&user, "Deleted", at).await;
    // A third, not cancelled, is the barrier: once it arrives, the
    // other two firings have passed.
    let barrier = env
        .task_with_reminder(&user, "Barrier", at + chrono::Duration::seconds(2))
        .await;
    let s = env
        .task_api(
            reqwest::Method::POST,
            &user,
            &format!("/api/tasks/{done}/complete"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let s = env
        .task_api(
            reqwest::Method::DELETE,
            &user,
            &format!("/api/tasks/{gone}"),
            None,
        )
        .await;
    assert!(s.is_success(), "{s}");
    let mail = one_mail(&env, &address).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mail_after = env.mail(&address).await;
    assert_eq!(mail_after.len(), 1, "{mail_after:?} (barrier {barrier})");
    assert!(mail[0].0.contains("Barrier"), "{mail:?}");
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_retitled_tasks_reminder_shows_the_new_title() {
    let _mail = MAIL.read().await;
    let env = env();
    let user = unique_user();
    let address = env.email_for(&user).await;
    let at = Utc::now() + chrono::Duration::seconds(6);
    let task = env.task_with_reminder(&user, "Old title", at).await;
    let status = env
        .task_api(
            reqwest::Method::PATCH,
            &user,
            &format!("/api/tasks/{task}"),
            Some(json!({"title": "New title"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mail = one_mail(&env, &address).await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert!(mail[0].0.contains("New title"), "{mail:?}");
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn an_expired_subscription_is_removed() {
    let _mail = MAIL.read().await;
    let env = env();
    let push = PushService::start().await;
    let user = unique_user();
    env.email_for(&user).await;
    let expired = push.subscribe(&env.stack.http, Some(410)).await;
    let device = env.register(&user, &expired).await;
    env.task_with_reminder(&user, "Stretch", Utc::now() + chrono::Duration::seconds(2))
        .await;
    let started = Instant::now();
    let removed = eventually(WAIT, || async {
        let (_, devices) = env
            .call(reqwest::Method::GET, &user, "/api/devices", None)
            .await;
        let ids: Vec<Value> = devices["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|d| d["id"].clone())
            .collect();
        (!ids.contains(&device["id"])).then_some(())
    })
    .await;
    assert!(
        removed.is_some(),
        "device still listed after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_push_endpoint_belongs_to_one_user() {
    let _mail = MAIL.read().await;
    let env = env();
    let push = PushService::start().await;
    let (alice, bob) = (unique_user(), unique_user());
    let shared = push.subscribe(&env.stack.http, None).await;
    env.register(&alice, &shared).await;
    env.register(&bob, &shared).await;
    let (_, alices) = env
        .call(reqwest::Method::GET, &alice, "/api/devices", None)
        .await;
    let (_, bobs) = env
        .call(reqwest::Method::GET, &bob, "/api/devices", None)
        .await;
    assert_eq!(alices["items"], json!([]), "moved away from alice");
    assert_eq!(bobs["items"].as_array().map(Vec::len), Some(1));

    // Another spelling of the same URL (scheme case, 127.1) is the same
    // endpoint: it moves too, and is stored as the URL parser writes it.
    let endpoint = shared["endpoint"].as_str().expect("endpoint");
    let respelled = endpoint
        .replacen("http://", "HTTP://", 1)
        .replacen("127.0.0.1", "127.1", 1);
    assert_ne!(respelled, endpoint, "{endpoint}");
    let moved = json!({"endpoint": respelled, "p256dh": shared["p256dh"], "auth": shared["auth"]});
    env.register(&alice, &moved).await;
    let (_, bobs) = env
        .call(reqwest::Method::GET, &bob, "/api/devices", None)
        .await;
    let (_, alices) = env
        .call(reqwest::Method::GET, &alice, "/api/devices", None)
        .await;
    assert_eq!(bobs["items"], json!([]), "moved away from bob");
    assert_eq!(alices["items"][0]["endpoint"], endpoint, "{alices}");
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn devices_register_update_and_stay_private() {
    let _mail = MAIL.read().await;
    let env = env();
    let push = PushService::start().await;
    let (user, other) = (unique_user(), unique_user());
    let sub = push.subscribe(&env.stack.http, None).await;
    let first = env.register(&user, &sub).await;
    let device = json!({"endpoint": sub["endpoint"], "p256dh": sub["p256dh"], "auth": sub["auth"]});
    let (again, body) = env
        .call(reqwest::Method::POST, &user, "/api/devices", Some(device))
        .await;
    assert_eq!(
        again,
        StatusCode::OK,
        "the same endpoint again updates: {body}"
    );
    assert_eq!(body["id"], first["id"]);
    let bad = json!({"endpoint": "ftp://plain", "p256dh": "x", "auth": "y"});
    let (refused, body) = env
        .call(reqwest::Method::POST, &user, "/api/devices", Some(bad))
        .await;
    assert_eq!(refused, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(2), "{body}");
    let path = format!("/api/devices/{}", first["id"].as_str().unwrap_or_default());
    let delete = |user: String| {
        let path = path.clone();
        let env = &env;
        async move {
            env.call(reqwest::Method::DELETE, &user, &path, None)
                .await
                .0
        }
    };
    assert_eq!(
        delete(other.clone()).await,
        StatusCode::NOT_FOUND,
        "another user's device does not exist for them"
    );
    assert_eq!(delete(user.clone()).await, StatusCode::NO_CONTENT);
    assert_eq!(delete(user).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn task_api_no_longer_serves_devices() {
    let env = env();
    let response = env
        .stack
        .http
        .post(format!("{}/api/devices", env.stack.task_api))
        .bearer_auth(env.stack.token(&unique_user(), false))
        .json(&json!({}))
        .send()
        .await
        .expect("task-api reachable");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_user_has_at_most_20_devices() {
    let env = env();
    let push = PushService::start().await;
    let user = unique_user();
    for _ in 0..20 {
        let sub = push.subscribe(&env.stack.http, None).await;
        env.register(&user, &sub).await;
    }
    let extra = push.subscribe(&env.stack.http, None).await;
    let device =
        json!({"endpoint": extra["endpoint"], "p256dh": extra["p256dh"], "auth": extra["auth"]});
    let (status, body) = env
        .call(reqwest::Method::POST, &user, "/api/devices", Some(device))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["status"], 409);
    let (_, listed) = env
        .call(reqwest::Method::GET, &user, "/api/devices", None)
        .await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(20));
}
