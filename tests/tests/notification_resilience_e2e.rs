//! notification when things fail, against the real stack: restarts of the
//! function and of its daprd between scheduling and the due time, and
//! SMTP failures from mailpit's chaos mode (451 to every recipient) that
//! are retried after 1 s and 5 s, or end recorded as failed, listed for
//! admins, published to `reminders-dlq` and retried by an admin.
//!
//! These tests stop parts or break mailpit for everyone, so each holds
//! [`MAIL`] for writing: the other mail tests of this run wait.
//! Every test is ignored by a plain `cargo test`; `./scripts/test` runs them.

use std::time::Duration;

use chrono::Utc;
use e2e_tests::eventually;
use e2e_tests::notify::{Env, MAIL, WAIT, env, one_mail, unique_user};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Makes mailpit answer 451 to every recipient (or stop doing so).
async fn chaos(env: &Env, on: bool) {
    let probability = if on { 100 } else { 0 };
    let response = env
        .stack
        .http
        .put(format!("{}/api/v1/chaos", env.mailpit))
        .json(&json!({"Recipient": {"ErrorCode": 451, "Probability": probability}}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("mailpit is not reachable: {e}"));
    assert!(
        response.status().is_success(),
        "mailpit chaos refused (started with --enable-chaos?)"
    );
}

/// Turns chaos off even when the test fails half-way.
struct ChaosOff<'a>(&'a Env);
impl Drop for ChaosOff<'_> {
    fn drop(&mut self) {
        let url = format!("{}/api/v1/chaos", self.0.mailpit);
        let _ = std::thread::spawn(move || {
            let body = r#"{"Recipient":{"ErrorCode":451,"Probability":0}}"#;
            let _ = std::process::Command::new("curl")
                .args(["-fsS", "-X", "PUT", "-d", body, &url])
                .output();
        })
        .join();
    }
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn restarting_notification_before_the_due_time_still_delivers() {
    let _mail = MAIL.write().await;
    let env = env();
    let user = unique_user();
    let address = env.email_for(&user).await;
    let due = Utc::now() + chrono::Duration::seconds(20);
    env.task_with_reminder(&user, "Survives a restart", due)
        .await;
    // Time for the event to reach notification (view stored, job made).
    tokio::time::sleep(Duration::from_secs(3)).await;
    env.stack
        .dev(&["restart", "notification", "--no-build"])
        .await;
    assert!(
        Utc::now() < due,
        "the restart took past the due time; the test proves nothing"
    );
    let mail = one_mail(&env, &address).await;
    assert_eq!(mail.len(), 1, "{mail:?}");
}

/// The scheduler's default failure policy (4 attempts in about 3 s) would
/// drop this firing; the function's jobs retry until the app takes them.
#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn notification_down_across_the_due_time_still_delivers_once() {
    let _mail = MAIL.write().await;
    let env = env();
    let user = unique_user();
    let address = env.email_for(&user).await;
    let due = Utc::now() + chrono::Duration::seconds(8);
    env.task_with_reminder(&user, "Survives an outage over its due time", due)
        .await;
    // Time for the event to reach notification (view stored, job made).
    tokio::time::sleep(Duration::from_secs(3)).await;
    env.stack.dev(&["app", "stop", "notification"]).await;
    // Down from before the due time until well past the default's last try.
    let back_at = due + chrono::Duration::seconds(8);
    let wait = (back_at - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait).await;
    env.stack.dev(&["app", "start", "notification"]).await;
    let mail = one_mail(&env, &address).await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    // Retried triggers after the send find the delivery record.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(env.mail(&address).await.len(), 1);
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn restarting_its_daprd_before_the_due_time_still_delivers() {
    let _mail = MAIL.write().await;
    let env = env();
    let user = unique_user();
    let address = env.email_for(&user).await;
    let due = Utc::now() + chrono::Duration::seconds(15);
    env.task_with_reminder(&user, "Survives a sidecar restart", due)
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    env.stack.dev(&["sidecar", "stop", "notification"]).await;
    env.stack.dev(&["sidecar", "start", "notification"]).await;
    assert!(
        Utc::now() < due,
        "the sidecar restart took past the due time"
    );
    let mail = one_mail(&env, &address).await;
    assert_eq!(mail.len(), 1, "{mail:?}");
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_refused_send_is_retried_and_sent_once() {
    let _mail = MAIL.write().await;
    let env = env();
    let _off = ChaosOff(&env);
    let user = unique_user();
    let address = env.email_for(&user).await;
    chaos(&env, true).await;
    let due = Utc::now() + chrono::Duration::seconds(2);
    env.task_with_reminder(&user, "Retried", due).await;
    // The first attempt and the 1 s retry fail; the 5 s retry succeeds.
    let waiting = eventually(WAIT, || async {
        let items = env.history(&user).await;
        items
            .iter()
            .any(|i| i["status"] == "retrying" && i["attempts"] == 2)
            .then_some(())
    })
    .await;
    assert!(
        waiting.is_some(),
        "never saw the second attempt fail: {:?}",
        env.history(&user).await
    );
    chaos(&env, false).await;
    let mail = one_mail(&env, &address).await;
    assert_eq!(mail.len(), 1);
    let sent_after = mail[0].1 - due;
    assert!(
        sent_after >= chrono::Duration::seconds(5),
        "sent {sent_after} after due: not after the 1 s + 5 s retries"
    );
    let items = env.history(&user).await;
    assert_eq!(items[0]["status"], "sent", "{items:?}");
    assert_eq!(items[0]["attempts"], 3, "{items:?}");
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_send_that_keeps_failing_is_recorded_listed_dead_lettered_and_retried_by_an_admin() {
    let _mail = MAIL.write().await;
    let env = env();
    let _off = ChaosOff(&env);
    let user = unique_user();
    let admin = unique_user();
    let address = env.email_for(&user).await;
    chaos(&env, true).await;
    env.task_with_reminder(&user, "Gives up", Utc::now() + chrono::Duration::seconds(2))
        .await;
    // 1 + 5 + 25 s of retries, then failed.
    let failed = eventually(Duration::from_secs(75), || async {
        let items = env.history(&user).await;
        items.iter().find(|i| i["status"] == "failed").cloned()
    })
    .await
    .expect("the delivery ends failed");
    assert_eq!(failed["attempts"], 4, "{failed}");
    chaos(&env, false).await;

    let admin_call = |method, path: String| {
        let request = env
            .stack
            .http
            .request(method, format!("{}{path}", env.notification))
            .bearer_auth(env.stack.token(&admin, true));
        async move { request.send().await.expect("notification reachable") }
    };
    let listed: Value = admin_call(reqwest::Method::GET, "/api/notifications/failed".into())
        .await
        .json()
        .await
        .expect("json");
    let id = failed["id"].as_str().expect("id");
    assert!(
        listed["items"]
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["id"] == id)),
        "{listed}"
    );
    let (status, _) = env
        .call(
            reqwest::Method::GET,
            &user,
            "/api/notifications/failed",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "admins only");

    let dlq = env.stack.dev(&["topic", "reminders-dlq", "5"]).await;
    assert!(
        dlq.contains(&user) && dlq.contains("com.todo.notification.failed"),
        "not on reminders-dlq"
    );

    let retried = admin_call(
        reqwest::Method::POST,
        format!("/api/notifications/failed/{id}/retry"),
    )
    .await;
    assert_eq!(retried.status(), StatusCode::ACCEPTED);
    let mail = one_mail(&env, &address).await;
    assert_eq!(mail.len(), 1);
}
