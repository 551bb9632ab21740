//! notification's delivery states against the real stack: a trigger
//! delivered again after the send, or for a superseded firing, sends
//! nothing; a `reminder.scheduled` that arrives long after its firing
//! (a Kafka redelivery, a `reminders-dlq` replay) is recorded as missed,
//! gets no job and sends nothing; a delivery a crash left `sending`
//! becomes `unknown`, is listed for admins and re-sent only by an admin's
//! retry; an admin retry the scheduler does not take leaves the delivery
//! failed.
//!
//! A crash between the claim and the outcome is reproduced by writing
//! what it leaves (a `sending` record) through notification's daprd.
//! Each test has its own user and reminder ids.
//! Every test is ignored by a plain `cargo test`; `./scripts/test` runs them.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use chrono::{DateTime, Utc};
use contracts::{EventKind, OutgoingEvent, ReminderChannel, ReminderEventData};
use e2e_tests::eventually;
use e2e_tests::notify::{Env, MAIL, PushService, WAIT, env, firing_job, one_mail, unique_user};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

/// The task's first reminder: its id and firing time.
fn first_reminder(task: &Value) -> (String, DateTime<Utc>) {
    let reminder = &task["reminders"][0];
    let fire_at = reminder["fire_at"]
        .as_str()
        .and_then(|f| DateTime::parse_from_rfc3339(f).ok())
        .expect("the reminder's fire_at")
        .to_utc();
    (
        reminder["id"].as_str().expect("reminder id").to_owned(),
        fire_at,
    )
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_trigger_delivered_again_after_the_send_sends_nothing_new() {
    let _mail = MAIL.read().await;
    let env = env();
    let push = PushService::start().await;
    let (user, address, phone) = env.user_with_device(&push).await;
    let at = Utc::now() + chrono::Duration::seconds(2);
    let task = env
        .stack
        .create_task(
            &user,
            &json!({"title": "Feed the cat", "reminders": [{"at": at, "channels": ["email", "push"]}]}),
        )
        .await;
    let (reminder, fire_at) = first_reminder(&task);
    one_mail(&env, &address).await;
    let pushed = eventually(WAIT, || async {
        let m = push.messages(&env.stack.http, &phone).await;
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert!(pushed.is_some(), "no push arrived");

    // daprd delivering the same trigger again (its failure policy after a
    // lost answer, a scheduler failover): the records say sent.
    let job = firing_job(&reminder, fire_at);
    for _ in 0..2 {
        let (status, report) = env.trigger(&job).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["sent"], 0, "{report}");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(env.mail(&address).await.len(), 1);
    assert_eq!(push.messages(&env.stack.http, &phone).await.len(), 1);
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_superseded_firing_triggered_by_hand_sends_nothing() {
    let _mail = MAIL.read().await;
    let env = env();
    let user = unique_user();
    let address = env.email_for(&user).await;
    let first = Utc::now() + chrono::Duration::seconds(60);
    let task = env.task_with_reminder(&user, "Superseded", first).await;
    let later = Utc::now() + chrono::Duration::seconds(120);
    env.move_reminder(&user, &task, later).await;
    let (status, task_now) = env.task_json(&user, &format!("/api/tasks/{task}")).await;
    assert_eq!(status, StatusCode::OK, "{task_now}");
    let (reminder, new_fire) = first_reminder(&task_now);
    // Wait until notification's view holds the new firing.
    let view_key = format!("view|{reminder}");
    let moved = eventually(WAIT, || async {
        let view = env.state(&view_key).await;
        let fire = view["fire_at"]
            .as_str()
            .and_then(|f| DateTime::parse_from_rfc3339(f).ok())?;
        (fire.timestamp_millis() == new_fire.timestamp_millis()).then_some(())
    })
    .await;
    assert!(moved.is_some(), "the view never moved to the new firing");

    // The old firing's job was deleted; its trigger, sent by hand (a
    // scheduler that fired before the delete), finds it superseded.
    let old = firing_job(&reminder, first);
    assert!(
        !env.job_exists(&old).await,
        "the old job is still scheduled"
    );
    let (status, report) = env.trigger(&old).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["skipped"], "cancelled or superseded", "{report}");
    assert!(env.job_exists(&firing_job(&reminder, new_fire)).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(env.mail(&address).await.is_empty());
    assert!(env.history(&user).await.is_empty());
    // Cancel the later firing: nothing of this test fires after it.
    let s = env
        .task_api(
            reqwest::Method::DELETE,
            &user,
            &format!("/api/tasks/{task}"),
            None,
        )
        .await;
    assert!(s.is_success(), "{s}");
}

/// `reminder.scheduled` for a firing `ago` in the past, published to
/// `reminders` the way task-api's relay does.
async fn publish_old_schedule(
    env: &Env,
    user: &str,
    ago: chrono::Duration,
) -> (Uuid, DateTime<Utc>) {
    let reminder_id = Uuid::now_v7();
    let fire_at = Utc::now() - ago;
    let data = ReminderEventData {
        reminder_id,
        task_id: Uuid::now_v7(),
        user_id: user.to_owned(),
        sequence: 1,
        fire_at,
        occurrence_due_at: None,
        channels: vec![ReminderChannel::Email, ReminderChannel::Push],
        title: "Long past".into(),
        email: None,
        time_zone: None,
    };
    let event = OutgoingEvent::new(
        EventKind::ReminderScheduled,
        "task-api",
        reminder_id.to_string(),
        &data,
    )
    .expect("event");
    let status = env.stack.publish("reminders", user, &event.to_json()).await;
    assert!((200..300).contains(&status), "publish answered {status}");
    (reminder_id, fire_at)
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_schedule_arriving_long_after_its_firing_is_missed_not_sent() {
    let _mail = MAIL.read().await;
    let env = env();
    let push = PushService::start().await;
    // Registered now, long after the firing: not one of its targets.
    let (user, address, phone) = env.user_with_device(&push).await;
    let (reminder_id, fire_at) =
        publish_old_schedule(&env, &user, chrono::Duration::hours(2)).await;

    let missed = eventually(WAIT, || async {
        let items = env.history(&user).await;
        (!items.is_empty()).then_some(items)
    })
    .await
    .expect("the firing is recorded");
    assert_eq!(
        missed.len(),
        1,
        "email only, no device added since: {missed:?}"
    );
    assert_eq!(missed[0]["status"], "missed", "{missed:?}");
    assert_eq!(missed[0]["target"]["channel"], "email", "{missed:?}");
    let job = firing_job(&reminder_id.to_string(), fire_at);
    assert!(
        !env.job_exists(&job).await,
        "a job was made for a past firing"
    );
    // A trigger for it anyway (a job made before the fix) sends nothing.
    let (status, report) = env.trigger(&job).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["skipped"], "too late", "{report}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(env.mail(&address).await.is_empty());
    assert!(push.messages(&env.stack.http, &phone).await.is_empty());
}

/// A view and a delivery record as notification writes them, for a
/// firing `ago` in the past; the record `sending` since `since`.
async fn crashed_mid_send(
    env: &Env,
    user: &str,
    since: DateTime<Utc>,
) -> (Uuid, DateTime<Utc>, String) {
    let reminder_id = Uuid::now_v7();
    let task_id = Uuid::now_v7();
    let fire_at = DateTime::from_timestamp_millis(
        (Utc::now() - chrono::Duration::seconds(5)).timestamp_millis(),
    )
    .expect("time");
    let view = json!({
        "reminder_id": reminder_id, "task_id": task_id, "user_id": user, "sequence": 1,
        "fire_at": fire_at, "occurrence_due_at": null, "channels": ["email"],
        "title": "Maybe sent", "email": null, "time_zone": null, "cancelled": false
    });
    env.put_state(&format!("view|{reminder_id}"), &view).await;
    let key = format!(
        "delivery|{}|{}|email",
        reminder_id.simple(),
        fire_at.timestamp_millis()
    );
    let record = json!({
        "reminder_id": reminder_id, "task_id": task_id, "user_id": user, "fire_at": fire_at,
        "target": {"channel": "email"}, "title": "Maybe sent", "status": "sending",
        "attempts": 1, "last_error": null, "updated_at": since
    });
    env.put_state(&key, &record).await;
    (reminder_id, fire_at, key)
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_send_a_crash_interrupted_is_unknown_listed_and_resent_only_by_an_admin() {
    let _mail = MAIL.read().await;
    let env = env();
    let user = unique_user();
    let address = env.email_for(&user).await;

    // Sending for a few seconds: maybe an attempt under way. The trigger
    // answers 503 so daprd offers it again later; nothing is sent.
    let (young, young_fire, young_key) = crashed_mid_send(&env, &user, Utc::now()).await;
    let (status, problem) = env
        .trigger(&firing_job(&young.to_string(), young_fire))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(problem["status"], 503, "{problem}");
    assert_eq!(env.state(&young_key).await["status"], "sending");

    // Sending for five minutes: no attempt lives that long. The trigger
    // daprd offers again after the crash records it as unknown.
    let since = Utc::now() - chrono::Duration::minutes(5);
    let (dead, dead_fire, dead_key) = crashed_mid_send(&env, &user, since).await;
    let job = firing_job(&dead.to_string(), dead_fire);
    let (status, report) = env.trigger(&job).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["unknown"], 1, "{report}");
    assert_eq!(report["sent"], 0, "{report}");
    assert_eq!(env.state(&dead_key).await["status"], "unknown");
    let (status, report) = env.trigger(&job).await;
    assert_eq!(
        (status, &report["sent"]),
        (StatusCode::OK, &json!(0)),
        "{report}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(env.mail(&address).await.is_empty(), "re-sent by itself");

    let id = format!("{}.{}.email", dead.simple(), dead_fire.timestamp_millis());
    let (status, listed) = env
        .admin(reqwest::Method::GET, "/api/notifications/failed")
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let item = listed["items"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["id"] == id.as_str()).cloned())
        .unwrap_or_else(|| panic!("{id} not listed: {listed}"));
    assert_eq!(item["status"], "unknown", "{item}");

    let (status, body) = env
        .admin(
            reqwest::Method::POST,
            &format!("/api/notifications/failed/{id}/retry"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let mail = one_mail(&env, &address).await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    let sent = eventually(WAIT, || async {
        (env.state(&dead_key).await["status"] == "sent").then_some(())
    })
    .await;
    assert!(sent.is_some(), "{}", env.state(&dead_key).await);
}

/// notification's own router, with its state client on the real daprd and
/// its scheduler client on a closed port: the scheduler takes no job.
fn in_process_router(env: &Env) -> axum::Router {
    let closed = "http://127.0.0.1:9";
    let timeout = Duration::from_secs(5);
    let pool = service::db::pool(&env.stack.database_url, 1).expect("pool");
    let state = notification::AppState {
        store: notification::store::Store::new(pool),
        state: notification::state::StateClient::new(
            &env.notification_dapr,
            env.stack.dapr_api_token.clone(),
            "statestore",
            timeout,
        ),
        dapr: dapr_http::DaprClient::new(closed, None, timeout),
        pubsub: "pubsub".into(),
        email: None,
        push: None,
        authenticator: Arc::new(auth::Authenticator::new(&auth::testing::test_config())),
        retry_delays: vec![Duration::from_secs(1)],
        late_limit: Duration::from_secs(900),
        record_ttl: Duration::from_secs(3600),
        link_base: "http://x".into(),
        allow_private_endpoints: false,
        tasks: notification::TaskTracker::new(),
    };
    notification::app(
        state,
        dapr_http::AppToken::new(Some("app-token"), None),
        Vec::new(),
        telemetry::metrics::Metrics::new("test"),
        timeout * 2,
    )
}

/// A delivery record of `user`'s reminder, written as a trigger leaves it.
async fn put_record(
    env: &Env,
    user: &str,
    reminder_id: Uuid,
    fire_at: DateTime<Utc>,
    status: &str,
) -> String {
    let key = format!(
        "delivery|{}|{}|email",
        reminder_id.simple(),
        fire_at.timestamp_millis()
    );
    let record = json!({
        "reminder_id": reminder_id, "task_id": Uuid::now_v7(), "user_id": user, "fire_at": fire_at,
        "target": {"channel": "email"}, "title": "Failed", "status": status,
        "attempts": 4, "last_error": "451", "updated_at": Utc::now()
    });
    env.put_state(&key, &record).await;
    key
}

/// The view of a live reminder firing at `fire_at`.
async fn put_live_view(env: &Env, user: &str, reminder_id: Uuid, fire_at: DateTime<Utc>) {
    let view = json!({
        "reminder_id": reminder_id, "task_id": Uuid::now_v7(), "user_id": user, "sequence": 1,
        "fire_at": fire_at, "occurrence_due_at": null, "channels": ["email"],
        "title": "Failed", "cancelled": false
    });
    env.put_state(&format!("view|{reminder_id}"), &view).await;
}

async fn admin_retry(
    router: &axum::Router,
    reminder_id: Uuid,
    fire_at: DateTime<Utc>,
) -> (StatusCode, String) {
    let id = format!(
        "{}.{}.email",
        reminder_id.simple(),
        fire_at.timestamp_millis()
    );
    let request = axum::http::Request::post(format!("/api/notifications/failed/{id}/retry"))
        .header(
            "authorization",
            format!("Bearer {}", auth::testing::token_for("ops", true)),
        )
        .body(Body::empty())
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("response");
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    (response.status(), kind)
}

fn now_millis() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("time")
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn an_admin_retry_the_scheduler_does_not_take_leaves_the_delivery_failed() {
    let env = env();
    let user = unique_user();
    let reminder_id = Uuid::now_v7();
    let fire_at = now_millis();
    let key = put_record(&env, &user, reminder_id, fire_at, "failed").await;
    put_live_view(&env, &user, reminder_id, fire_at).await;
    let router = in_process_router(&env);
    for _ in 0..2 {
        let (status, kind) = admin_retry(&router, reminder_id, fire_at).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(kind, "application/problem+json");
        // Failed again, by its ETag: listed, and retryable (a second
        // retry is not refused as "not failed").
        let now = env.state(&key).await;
        assert_eq!(now["status"], "failed", "{now}");
        assert_eq!(now["attempts"], 4, "{now}");
    }
}

/// A firing whose reminder is gone (cancelled or moved: no live view) is
/// not retried by an admin: 409, the record unchanged.
#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn an_admin_retry_of_a_firing_whose_reminder_is_gone_is_refused() {
    let env = env();
    let user = unique_user();
    let reminder_id = Uuid::now_v7();
    let fire_at = now_millis();
    let key = put_record(&env, &user, reminder_id, fire_at, "failed").await;
    let router = in_process_router(&env);
    let (status, kind) = admin_retry(&router, reminder_id, fire_at).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(kind, "application/problem+json");
    // Moved: the view now holds a later firing.
    put_live_view(
        &env,
        &user,
        reminder_id,
        fire_at + chrono::Duration::hours(1),
    )
    .await;
    let (status, _) = admin_retry(&router, reminder_id, fire_at).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let now = env.state(&key).await;
    assert_eq!(now["status"], "failed", "{now}");
}

/// A retry job that finds its reminder gone settles the `retrying` record
/// as skipped: nothing would ever take it again.
#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_retry_whose_reminder_is_gone_settles_as_skipped() {
    let env = env();
    let user = unique_user();
    let reminder_id = Uuid::now_v7();
    let fire_at = now_millis();
    let key = put_record(&env, &user, reminder_id, fire_at, "retrying").await;
    let job = format!(
        "/job/retry-{}-{}-email-4",
        reminder_id.simple(),
        fire_at.timestamp_millis()
    );
    let request = axum::http::Request::post(job)
        .header("dapr-api-token", "app-token")
        .body(Body::empty())
        .expect("request");
    let response = in_process_router(&env)
        .oneshot(request)
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let now = env.state(&key).await;
    assert_eq!(now["status"], "skipped", "{now}");
    assert_eq!(now["last_error"], "reminder cancelled or moved", "{now}");
}

/// A retry after the user turned email off sends nothing: the settings are
/// read at each attempt, not only at the firing.
#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_retry_after_email_was_turned_off_sends_nothing() {
    let _mail = MAIL.read().await;
    let env = env();
    let user = unique_user();
    let address = env.email_for(&user).await;
    let (status, body) = env
        .call(
            reqwest::Method::PUT,
            &user,
            "/api/notification-settings",
            Some(json!({"email": address, "email_enabled": false, "push_enabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reminder_id = Uuid::now_v7();
    let fire_at = now_millis();
    put_live_view(&env, &user, reminder_id, fire_at).await;
    let key = put_record(&env, &user, reminder_id, fire_at, "retrying").await;
    let job = format!(
        "retry-{}-{}-email-4",
        reminder_id.simple(),
        fire_at.timestamp_millis()
    );
    let (status, body) = env.trigger(&job).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let now = env.state(&key).await;
    assert_eq!(now["status"], "skipped", "{now}");
    assert!(env.mail(&address).await.is_empty());
}
