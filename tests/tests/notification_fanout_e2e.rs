//! One firing's targets go out concurrently: a device behind a slow push
//! service does not hold back the email or the user's other devices. Real
//! stack (task-api, Kafka, daprd, the scheduler, mailpit) and the local
//! Web Push service, one of whose subscriptions answers only after a delay.
//!
//! Ignored by a plain `cargo test`; `./scripts/test` runs it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use e2e_tests::eventually;
use e2e_tests::notify::{MAIL, PushService, WAIT, env, one_mail, unique_user};
use serde_json::Value;

/// Longer than any send on a busy machine, shorter than notification's
/// 10 s push timeout (a timed-out push would be retried, not sent).
const SLOW: Duration = Duration::from_secs(6);

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_slow_push_service_does_not_delay_the_email_or_the_other_devices() {
    let _mail = MAIL.read().await;
    let env = env();
    let push = PushService::start().await;
    let user = unique_user();
    let address = env.email_for(&user).await;
    // Devices are sent to in registration order: the slow one first, so
    // one at a time the fast one would wait for it.
    let slow = push.subscribe_slow(&env.stack.http, SLOW).await;
    let fast = push.subscribe(&env.stack.http, None).await;
    let slow_id = env.register(&user, &slow).await["id"].clone();
    let fast_id = env.register(&user, &fast).await["id"].clone();

    let due = Utc::now() + chrono::Duration::seconds(2);
    env.task_with_reminder(&user, "Call the plumber", due).await;
    one_mail(&env, &address).await;

    // All three records settled as sent (the slow one after SLOW).
    let items = eventually(WAIT + SLOW, || async {
        let (_, body) = env
            .call(reqwest::Method::GET, &user, "/api/notifications", None)
            .await;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 3 && items.iter().all(|i| i["status"] == "sent")).then_some(items)
    })
    .await
    .expect("email and both devices recorded as sent");
    let sent_at = |pick: &dyn Fn(&Value) -> bool| -> DateTime<Utc> {
        let item = items.iter().find(|i| pick(&i["target"])).expect("target");
        serde_json::from_value(item["updated_at"].clone()).expect("updated_at")
    };
    let email = sent_at(&|t| t["channel"] == "email");
    let slow_at = sent_at(&|t| t["device_id"] == slow_id);
    let fast_at = sent_at(&|t| t["device_id"] == fast_id);
    let half = chrono::Duration::from_std(SLOW / 2).unwrap_or_default();
    assert!(
        fast_at + half < slow_at,
        "the fast device waited for the slow one: fast {fast_at}, slow {slow_at}"
    );
    assert!(
        email + half < slow_at,
        "the email waited for the slow device: email {email}, slow {slow_at}"
    );
    // Each arrived once.
    assert_eq!(push.messages(&env.stack.http, &slow).await.len(), 1);
    assert_eq!(push.messages(&env.stack.http, &fast).await.len(), 1);
    assert_eq!(env.mail(&address).await.len(), 1);
}
