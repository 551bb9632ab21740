//! audit against the real stack: task-api, daprd, Kafka, the Dapr scheduler
//! and PostgreSQL. Nothing here is faked: events travel through daprd's
//! publish API and Kafka, the retention purge is triggered by the real
//! scheduler, and the ops gap command runs in the real psql.
//!
//! Every test is ignored by a plain `cargo test`; `./scripts/test` runs them
//! with `TODO_EVENTS_STACK=1`, and then an unreachable stack fails them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use contracts::testing::task_snapshot;
use contracts::{EventKind, OutgoingEvent, TaskEventData};
use e2e_tests::{Stack, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

/// audit's read API and the waits these tests share, over the common
/// [`Stack`] helpers.
trait AuditStack {
    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value);
    async fn publish_task_event(&self, event: &OutgoingEvent, user: &str);
    async fn row_exists(&self, event_id: &str) -> bool;
    async fn rows_of_user(&self, user: &str) -> i64;
}

impl AuditStack for Stack {
    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.http.get(format!("{}{path}", self.audit));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("audit at {} is not reachable: {e}", self.audit));
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn publish_task_event(&self, event: &OutgoingEvent, user: &str) {
        let status = self.publish("task-events", user, &event.to_json()).await;
        assert_eq!(status, 204, "daprd refused the publish");
    }

    async fn row_exists(&self, event_id: &str) -> bool {
        self.db()
            .await
            .query_opt("SELECT 1 FROM audit_logs WHERE event_id = $1", &[&event_id])
            .await
            .unwrap()
            .is_some()
    }

    async fn rows_of_user(&self, user: &str) -> i64 {
        self.db()
            .await
            .query_one(
                "SELECT count(*) FROM audit_logs WHERE user_id = $1",
                &[&user],
            )
            .await
            .unwrap()
            .get(0)
    }
}

/// Polls for up to 30 s; a timeout fails the test, naming what never came.
async fn wait_for<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually(Duration::from_secs(30), probe)
        .await
        .unwrap_or_else(|| panic!("timed out: {what}"))
}

fn task_event(kind: EventKind, task: Uuid, user: &str, sequence: i64) -> OutgoingEvent {
    let data = TaskEventData {
        task_id: task,
        user_id: user.to_owned(),
        sequence,
        task: task_snapshot(task, user, sequence),
        changed: vec!["title".to_owned()],
    };
    OutgoingEvent::new(kind, "task-api", task.to_string(), &data).unwrap()
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn audit_trail_of_a_real_task_is_its_owners_alone() {
    let stack = Stack::from_env();
    let owner = format!("e2e-audit-{}", Uuid::now_v7());
    let owner_token = stack.token(&owner, false);
    let task = stack
        .create_task(&owner, &json!({"title": "audit e2e"}))
        .await;
    let task_id = task["id"].as_str().unwrap().to_owned();

    let path = format!("/api/audit-logs?task_id={task_id}");
    let page = wait_for("the created event reaches the audit log", || async {
        let (status, page) = stack.get(&path, Some(&owner_token)).await;
        let found =
            status == StatusCode::OK && page["items"].as_array().is_some_and(|i| !i.is_empty());
        found.then_some(page)
    })
    .await;
    let entry = &page["items"][0];
    assert_eq!(entry["type"], "com.todo.task.created");
    assert_eq!(entry["user_id"], owner);
    assert_eq!(entry["sequence"], 1);
    assert_eq!(entry["payload"]["task"]["id"], task_id.as_str());
    assert!(page["next_cursor"].is_null());
    let event_id = entry["event_id"].as_str().unwrap();

    let stranger = stack.token(&format!("e2e-stranger-{}", Uuid::now_v7()), false);
    let admin = stack.token("e2e-auditor", true);
    let one = format!("/api/audit-logs/{event_id}");
    assert_eq!(stack.get(&one, Some(&owner_token)).await.0, StatusCode::OK);
    assert_eq!(stack.get(&one, Some(&admin)).await.0, StatusCode::OK);
    let (status, body) = stack.get(&one, Some(&stranger)).await;
    assert_eq!(
        (status, body["status"].as_u64()),
        (StatusCode::NOT_FOUND, Some(404))
    );
    // A stranger naming the owner still gets only their own (no) rows.
    let (status, body) = stack
        .get(&format!("{path}&user_id={owner}"), Some(&stranger))
        .await;
    assert_eq!((status, body["items"].clone()), (StatusCode::OK, json!([])));
    let (_, body) = stack
        .get(
            &format!("/api/audit-logs?user_id={owner}&type=created"),
            Some(&admin),
        )
        .await;
    assert_eq!(body["items"][0]["event_id"], event_id);
    assert_eq!(stack.get(&path, None).await.0, StatusCode::UNAUTHORIZED);
}

/// Follows the user's ingest-ordered tail from `cursor` until `want` more
/// entries came (30 s at most); returns their ids and where to continue.
async fn follow_tail(
    stack: &Stack,
    token: &str,
    mut cursor: Option<String>,
    want: usize,
) -> (Vec<String>, Option<String>) {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out: the tail handed out {seen:?}, wanted {want}"
        );
        let after = cursor.as_deref().map(|c| format!("&cursor={c}"));
        let request = format!(
            "/api/audit-logs?order=ingest&limit=2{}",
            after.unwrap_or_default()
        );
        let (status, page) = stack.get(&request, Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for item in page["items"].as_array().into_iter().flatten() {
            seen.push(item["event_id"].as_str().unwrap_or_default().to_owned());
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (seen, cursor)
}

/// A client tailing its trail through the real stack gets an event that
/// arrives late (ten days old, as a dead-letter replay would bring it),
/// after its cursor passed that time: the event-time listing files it
/// behind.
#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_late_event_reaches_a_client_following_the_tail() {
    let stack = Stack::from_env();
    let user = format!("e2e-tail-{}", Uuid::now_v7());
    let token = stack.token(&user, false);
    let task = Uuid::now_v7();
    let first = task_event(EventKind::TaskCreated, task, &user, 1);
    stack.publish_task_event(&first, &user).await;
    let (seen, cursor) = follow_tail(&stack, &token, None, 1).await;
    assert_eq!(seen, vec![first.id.to_string()]);
    let (_, by_time) = stack.get("/api/audit-logs", Some(&token)).await;
    assert!(by_time["next_cursor"].is_null(), "{by_time}");

    let mut late = task_event(EventKind::TaskUpdated, task, &user, 2);
    late.time = Utc::now() - chrono::Duration::days(10);
    stack.publish_task_event(&late, &user).await;
    let (seen, _) = follow_tail(&stack, &token, cursor, 1).await;
    assert_eq!(seen, vec![late.id.to_string()], "the late event, once");

    let (_, by_time) = stack.get("/api/audit-logs", Some(&token)).await;
    assert_eq!(
        by_time["items"][0]["event_id"],
        late.id.to_string(),
        "by event time it sorts first, before where a reader had got to"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn redelivered_and_replayed_events_add_nothing() {
    let stack = Stack::from_env();
    let user = format!("e2e-dup-{}", Uuid::now_v7());
    let event = task_event(EventKind::TaskCreated, Uuid::now_v7(), &user, 1);
    for _ in 0..3 {
        stack.publish_task_event(&event, &user).await;
    }
    wait_for("the event is stored", || async {
        (stack.rows_of_user(&user).await >= 1).then_some(())
    })
    .await;
    // A replay after it was stored: acknowledged, still one row. The next
    // event of the same user (same partition, behind the replay) being
    // stored proves the replay was consumed before we count.
    stack.publish_task_event(&event, &user).await;
    let next = task_event(EventKind::TaskUpdated, Uuid::now_v7(), &user, 1);
    stack.publish_task_event(&next, &user).await;
    wait_for("the event after the replay is stored", || async {
        (stack.rows_of_user(&user).await >= 2).then_some(())
    })
    .await;
    assert_eq!(stack.rows_of_user(&user).await, 2, "one row per event id");
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn the_gap_endpoint_lists_holes_until_they_are_filled() {
    let stack = Stack::from_env();
    let user = format!("e2e-gaps-{}", Uuid::now_v7());
    let task = Uuid::now_v7();
    for (kind, sequence) in [
        (EventKind::TaskCreated, 1),
        (EventKind::TaskUpdated, 2),
        (EventKind::TaskUpdated, 4),
    ] {
        stack
            .publish_task_event(&task_event(kind, task, &user, sequence), &user)
            .await;
    }
    wait_for("three events stored", || async {
        (stack.rows_of_user(&user).await == 3).then_some(())
    })
    .await;
    let admin = stack.token("e2e-auditor", true);
    let path = format!("/api/audit-logs/gaps?task_id={task}");
    let (status, body) = stack.get(&path, Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["items"][0]["missing"], json!([3]), "{body}");
    assert_eq!(body["items"][0]["max_sequence"], 4);
    let user_token = stack.token(&user, false);
    assert_eq!(
        stack.get(&path, Some(&user_token)).await.0,
        StatusCode::FORBIDDEN
    );

    stack
        .publish_task_event(&task_event(EventKind::TaskUpdated, task, &user, 3), &user)
        .await;
    wait_for("the hole is filled", || async {
        (stack.get(&path, Some(&admin)).await.1["items"] == json!([])).then_some(())
    })
    .await;
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn the_ops_gap_command_finds_a_lost_tail() {
    let stack = Stack::from_env();
    let owner = format!("e2e-tail-{}", Uuid::now_v7());
    let task = stack.create_task(&owner, &json!({"title": "tail"})).await;
    let task_id = task["id"].as_str().unwrap().to_owned();
    wait_for("the created event is stored", || async {
        (stack.rows_of_user(&owner).await == 1).then_some(())
    })
    .await;
    let run = || {
        let output = std::process::Command::new("psql")
            .args([stack.database_url.as_str(), "-X", "-A", "-t", "-q"])
            .args(["-v", "ON_ERROR_STOP=1", "-v", "settle_seconds=0"])
            .args(["-v", &format!("task_id={task_id}")])
            .args([
                "-f",
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../functions/audit/ops/audit-gaps.sql"
                ),
            ])
            .output()
            .expect("psql runs (install the PostgreSQL client)");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(run().trim(), "", "a complete trail lists nothing");

    // Lose the newest (and only) entry: audit alone cannot see a lost
    // tail, the command comparing with tasks.sequence does.
    let task_uuid = Uuid::parse_str(&task_id).unwrap();
    stack
        .db()
        .await
        .execute("DELETE FROM audit_logs WHERE task_id = $1", &[&task_uuid])
        .await
        .unwrap();
    let report = run();
    assert!(
        report.contains(&task_id) && report.trim_end().ends_with("|{1}"),
        "{report}"
    );
}

/// Inserts an audit row directly, `age` old.
async fn insert_aged(stack: &Stack, user: &str, sequence: i64, age: chrono::Duration) -> String {
    let task = Uuid::now_v7();
    let event = task_event(EventKind::TaskUpdated, task, user, sequence);
    let at: DateTime<Utc> = Utc::now() - age;
    let id = event.id.to_string();
    stack
        .db()
        .await
        .execute(
            "INSERT INTO audit_logs (event_id, event_type, user_id, task_id, sequence, occurred_at, source, payload)
             VALUES ($1, $2, $3, $4, $5, $6, '/todo-events/task-api', $7)",
            &[&id, &event.kind.as_str(), &user, &task, &sequence, &at, &event.data],
        )
        .await
        .unwrap();
    id
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn retention_runs_through_the_real_scheduler() {
    let stack = Stack::from_env();
    let with_token = |request: reqwest::RequestBuilder| match &stack.dapr_api_token {
        Some(token) => request.header("dapr-api-token", token),
        None => request,
    };
    // The daily job was registered at start.
    let job: Value = with_token(stack.http.get(format!(
        "{}/v1.0-alpha1/jobs/audit-retention",
        stack.audit_dapr
    )))
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        job["schedule"],
        std::env::var("AUDIT_RETENTION_SCHEDULE")
            .unwrap_or_else(|_| "@daily".to_owned())
            .as_str(),
        "{job}"
    );

    let user = format!("e2e-retention-{}", Uuid::now_v7());
    let old = insert_aged(&stack, &user, 1, chrono::Duration::days(91)).await;
    let young = insert_aged(&stack, &user, 1, chrono::Duration::days(89)).await;

    // A one-shot job the app maps to the same purge, fired by the scheduler.
    let name = format!("audit-retention-e2e-{}", Uuid::now_v7());
    let scheduled = with_token(
        stack
            .http
            .post(format!("{}/v1.0-alpha1/jobs/{name}", stack.audit_dapr))
            .json(&json!({"dueTime": "1s", "data": {"test": "retention"}})),
    )
    .send()
    .await
    .unwrap();
    assert!(scheduled.status().is_success(), "{scheduled:?}");

    wait_for("the 91-day-old row is purged", || async {
        (!stack.row_exists(&old).await).then_some(())
    })
    .await;
    assert!(stack.row_exists(&young).await, "the 89-day-old row stays");
    stack
        .db()
        .await
        .execute("DELETE FROM audit_logs WHERE user_id = $1", &[&user])
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn audit_serves_its_openapi_document() {
    let stack = Stack::from_env();
    // Served without a token, exactly the document kept in the repo.
    let (status, served) = stack.get("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../functions/audit/openapi.json"
    );
    let kept: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("in the repo")).expect("JSON");
    assert_eq!(served, kept, "the running audit serves another document");
    assert_eq!(served["openapi"], "3.1.0");
    // What it documents is what the running audit answers: the list is
    // bearer-protected, with the documented challenge.
    let (status, problem) = stack.get("/api/audit-logs", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(served["paths"]["/api/audit-logs"]["get"]["responses"]["401"].is_object());
    assert_eq!(problem["status"], 401);
}
