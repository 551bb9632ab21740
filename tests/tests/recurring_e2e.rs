//! recurring against the real stack (PostgreSQL, Kafka, daprd): a
//! completion through task-api gets exactly one next occurrence, which
//! reaches audit through recurring's own outbox relay; and redelivery,
//! duplicates, racing deliveries, reopen + complete again, an older
//! occurrence, a deleted task and an ended series create nothing more.
//!
//! "Nothing more" needs a moment after which recurring has seen the event:
//! one user's events share a partition and are handled in order, so a
//! second series of the same user completed afterwards is the barrier:
//! when its successor exists, every earlier event of that user was handled.
//!
//! Every test is ignored by a plain `cargo test`; `./scripts/test` runs them.

use std::time::Duration;

use e2e_tests::{Stack, audit_rows_for_task, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

fn unique_user() -> String {
    format!("recurring-e2e-{}", Uuid::new_v4().simple())
}

/// A daily series due in an hour, with a relative and an absolute reminder.
fn daily(count: u32) -> Value {
    let due = chrono::Utc::now() + chrono::Duration::hours(1);
    json!({
        "title": "Stretch",
        "description": "ten minutes",
        "priority": "low",
        "tags": ["health"],
        "due_at": due,
        "time_zone": "America/New_York",
        "recurrence": {"frequency": "daily", "end": {"after": count}},
        "reminders": [
            {"minutes_before": 10, "channels": ["push"]},
            {"at": due - chrono::Duration::hours(2), "channels": ["email"]}
        ]
    })
}

async fn post(stack: &Stack, user: &str, path: &str) -> Value {
    let response = stack
        .http
        .post(format!("{}{path}", stack.task_api))
        .bearer_auth(stack.token(user, false))
        .send()
        .await
        .unwrap_or_else(|e| panic!("task-api is not reachable: {e}"));
    assert_eq!(response.status(), StatusCode::OK, "POST {path}");
    response.json().await.unwrap_or(Value::Null)
}

async fn get_task(stack: &Stack, user: &str, id: &str) -> Value {
    let response = stack
        .http
        .get(format!("{}/api/tasks/{id}", stack.task_api))
        .bearer_auth(stack.token(user, false))
        .send()
        .await
        .unwrap_or_else(|e| panic!("task-api is not reachable: {e}"));
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap_or(Value::Null)
}

/// The ids of a series' tasks, by occurrence index.
async fn series(stack: &Stack, series_id: &str) -> Vec<(i32, Uuid)> {
    let db = stack.db().await;
    let id = Uuid::parse_str(series_id).unwrap();
    db.query(
        "SELECT occurrence, id FROM tasks WHERE series_id = $1 ORDER BY occurrence",
        &[&id],
    )
    .await
    .unwrap()
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect()
}

/// The occurrence indices a series has.
async fn indices(stack: &Stack, series_id: &str) -> Vec<i32> {
    series(stack, series_id)
        .await
        .iter()
        .map(|(i, _)| *i)
        .collect()
}

/// A new daily series of `count` for `user`, its first occurrence completed
/// and its second created: (series id, first id, both occurrences).
async fn advanced_series(
    stack: &Stack,
    user: &str,
    count: u32,
) -> (String, String, Vec<(i32, Uuid)>) {
    let first = stack.create_task(user, &daily(count)).await;
    let series_id = first["series_id"].as_str().unwrap().to_owned();
    let id = first["id"].as_str().unwrap().to_owned();
    post(stack, user, &format!("/api/tasks/{id}/complete")).await;
    let found = until_occurrences(stack, &series_id, 2).await;
    (series_id, id, found)
}

/// Waits until the series has `n` occurrences; returns them.
async fn until_occurrences(stack: &Stack, series_id: &str, n: usize) -> Vec<(i32, Uuid)> {
    eventually(WAIT, || async {
        let found = series(stack, series_id).await;
        (found.len() >= n).then_some(found)
    })
    .await
    .unwrap_or_else(|| panic!("series {series_id} did not reach {n} occurrences"))
}

/// Completes a fresh series of `user` and waits for its successor: after
/// that, recurring has handled every earlier event of `user`.
async fn barrier(stack: &Stack, user: &str) {
    let task = stack.create_task(user, &daily(2)).await;
    post(
        stack,
        user,
        &format!("/api/tasks/{}/complete", task["id"].as_str().unwrap()),
    )
    .await;
    until_occurrences(stack, task["series_id"].as_str().unwrap(), 2).await;
}

/// The completion event task-api enqueued for `task_id`, as published.
async fn completion_event(stack: &Stack, task_id: &str) -> Value {
    let db = stack.db().await;
    let row = db
        .query_one(
            "SELECT payload FROM outbox WHERE event_type = 'com.todo.task.completed'
               AND payload->>'subject' = $1 ORDER BY id DESC LIMIT 1",
            &[&task_id],
        )
        .await
        .unwrap();
    row.get(0)
}

/// Delivers `event` to recurring's route the way its daprd does.
async fn push_to_recurring(stack: &Stack, event: &Value) -> Value {
    let mut body = event.clone();
    body["topic"] = json!("task-events");
    body["pubsubname"] = json!("pubsub");
    let mut request = stack
        .http
        .post(format!("{}/events/task-events", stack.recurring))
        .header("content-type", "application/cloudevents+json")
        .body(body.to_string());
    if let Some(token) = &stack.app_api_token {
        request = request.header("dapr-api-token", token);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("recurring at {} is not reachable: {e}", stack.recurring));
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap_or(Value::Null)
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_completion_gets_one_next_occurrence_that_reaches_audit() {
    let stack = Stack::from_env();
    let user = unique_user();
    let first = stack.create_task(&user, &daily(3)).await;
    let series_id = first["series_id"].as_str().expect("a series id").to_owned();
    assert_eq!(first["occurrence"], 1);
    assert_eq!(first["rrule"], "FREQ=DAILY;COUNT=3");
    let id = first["id"].as_str().unwrap();
    // As stored (microseconds), not as sent.
    let first = get_task(&stack, &user, id).await;
    post(&stack, &user, &format!("/api/tasks/{id}/complete")).await;
    let found = until_occurrences(&stack, &series_id, 2).await;
    let next = get_task(&stack, &user, &found[1].1.to_string()).await;
    assert_eq!(next["occurrence"], 2);
    assert_eq!(next["series_id"], first["series_id"]);
    assert_eq!(next["status"], "pending");
    for field in [
        "title",
        "description",
        "priority",
        "tags",
        "time_zone",
        "recurrence",
        "rrule",
    ] {
        assert_eq!(next[field], first[field], "{field}");
    }
    let due = |t: &Value| {
        t["due_at"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    };
    assert_eq!(due(&next) - due(&first), chrono::Duration::days(1));
    assert_eq!(next["reminders"][0]["minutes_before"], 10);
    let at = |t: &Value| {
        t["reminders"][1]["at"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    };
    assert_eq!(at(&next) - at(&first), chrono::Duration::days(1));
    // recurring's relay published the new task's events through Kafka.
    let db = stack.db().await;
    let audited = eventually(WAIT, || async {
        (audit_rows_for_task(&db, found[1].1).await >= 1).then_some(())
    })
    .await;
    assert!(audited.is_some(), "the next occurrence never reached audit");
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn redelivered_duplicated_and_racing_completions_create_one() {
    let stack = Stack::from_env();
    let user = unique_user();
    let first = stack.create_task(&user, &daily(5)).await;
    let series_id = first["series_id"].as_str().unwrap().to_owned();
    let id = first["id"].as_str().unwrap().to_owned();
    post(&stack, &user, &format!("/api/tasks/{id}/complete")).await;
    let event = completion_event(&stack, &id).await;
    // Racing: eight deliveries at once beside the one through Kafka.
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let (stack, event) = (stack.clone(), event.clone());
            tokio::spawn(async move { push_to_recurring(&stack, &event).await })
        })
        .collect();
    for racer in racers {
        assert_eq!(racer.await.unwrap(), json!({"status": "SUCCESS"}));
    }
    until_occurrences(&stack, &series_id, 2).await;
    // Redelivery of the same event, and the same completion again under a
    // new event id, both through daprd and Kafka.
    let status = stack.publish("task-events", &user, &event).await;
    assert_eq!(status, 204);
    let mut duplicate = event.clone();
    duplicate["id"] = json!(Uuid::now_v7().to_string());
    assert_eq!(stack.publish("task-events", &user, &duplicate).await, 204);
    barrier(&stack, &user).await;
    assert_eq!(series(&stack, &series_id).await.len(), 2);
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn reopening_or_completing_an_older_occurrence_does_not_fork_the_series() {
    let stack = Stack::from_env();
    let user = unique_user();
    let (series_id, id, found) = advanced_series(&stack, &user, 5).await;
    // Reopen the first and complete it again: its successor exists.
    post(&stack, &user, &format!("/api/tasks/{id}/reopen")).await;
    post(&stack, &user, &format!("/api/tasks/{id}/complete")).await;
    barrier(&stack, &user).await;
    assert_eq!(series(&stack, &series_id).await.len(), 2);
    // Complete the second (third appears), then the first once more.
    post(
        &stack,
        &user,
        &format!("/api/tasks/{}/complete", found[1].1),
    )
    .await;
    until_occurrences(&stack, &series_id, 3).await;
    post(&stack, &user, &format!("/api/tasks/{id}/reopen")).await;
    post(&stack, &user, &format!("/api/tasks/{id}/complete")).await;
    barrier(&stack, &user).await;
    let indices = indices(&stack, &series_id).await;
    assert_eq!(indices, [1, 2, 3]);
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_late_completion_catches_up_and_the_count_ends_the_series() {
    let stack = Stack::from_env();
    let user = unique_user();
    // Due 3 days and 1 hour ago, daily, five in all: completing now skips
    // the three that passed (2, 3, 4) and creates occurrence 5, the last.
    let mut body = daily(5);
    let due = chrono::Utc::now() - chrono::Duration::hours(73);
    body["due_at"] = json!(due);
    body["reminders"] = json!([]);
    let first = stack.create_task(&user, &body).await;
    let series_id = first["series_id"].as_str().unwrap().to_owned();
    // As stored (microseconds), not as sent.
    let stored = get_task(&stack, &user, first["id"].as_str().unwrap()).await;
    let due: chrono::DateTime<chrono::Utc> = stored["due_at"].as_str().unwrap().parse().unwrap();
    post(
        &stack,
        &user,
        &format!("/api/tasks/{}/complete", first["id"].as_str().unwrap()),
    )
    .await;
    let found = until_occurrences(&stack, &series_id, 2).await;
    assert_eq!(found[1].0, 5, "skipped occurrences count");
    let next = get_task(&stack, &user, &found[1].1.to_string()).await;
    let next_due: chrono::DateTime<chrono::Utc> = next["due_at"].as_str().unwrap().parse().unwrap();
    assert!(next_due > chrono::Utc::now() && next_due - due == chrono::Duration::days(4));
    // It is the fifth of five: completing it ends the series.
    post(
        &stack,
        &user,
        &format!("/api/tasks/{}/complete", found[1].1),
    )
    .await;
    barrier(&stack, &user).await;
    assert_eq!(series(&stack, &series_id).await.len(), 2);
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn deleted_tasks_and_poison_are_answered_without_effect() {
    let stack = Stack::from_env();
    let user = unique_user();
    let task = stack.create_task(&user, &daily(3)).await;
    let series_id = task["series_id"].as_str().unwrap().to_owned();
    let id = task["id"].as_str().unwrap().to_owned();
    post(&stack, &user, &format!("/api/tasks/{id}/complete")).await;
    let event = completion_event(&stack, &id).await;
    // Delete the whole series, then deliver the completion again.
    until_occurrences(&stack, &series_id, 2).await;
    for (_, task_id) in series(&stack, &series_id).await {
        let response = stack
            .http
            .delete(format!("{}/api/tasks/{task_id}", stack.task_api))
            .bearer_auth(stack.token(&user, false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    assert_eq!(
        push_to_recurring(&stack, &event).await,
        json!({"status": "SUCCESS"})
    );
    assert!(series(&stack, &series_id).await.is_empty());
    // Poison: not a CloudEvent, and an unknown schema version.
    assert_eq!(
        push_to_recurring(&stack, &json!({"hello": 1})).await,
        json!({"status": "DROP"})
    );
    let mut future = event.clone();
    future["dataschema"] = json!("urn:todo-events:schema:task-event:v9");
    assert_eq!(
        push_to_recurring(&stack, &future).await,
        json!({"status": "DROP"})
    );
}

async fn delete_task(stack: &Stack, user: &str, id: &str) {
    let response = stack
        .http
        .delete(format!("{}/api/tasks/{id}", stack.task_api))
        .bearer_auth(stack.token(user, false))
        .send()
        .await
        .unwrap_or_else(|e| panic!("task-api is not reachable: {e}"));
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_deleted_successor_stays_deleted() {
    let stack = Stack::from_env();
    let user = unique_user();
    let (series_id, id, found) = advanced_series(&stack, &user, 5).await;
    delete_task(&stack, &user, &found[1].1.to_string()).await;
    // The completion again: straight to recurring, through daprd and Kafka,
    // and as a reopen + complete of the first occurrence.
    let event = completion_event(&stack, &id).await;
    assert_eq!(
        push_to_recurring(&stack, &event).await,
        json!({"status": "SUCCESS"})
    );
    assert_eq!(stack.publish("task-events", &user, &event).await, 204);
    post(&stack, &user, &format!("/api/tasks/{id}/reopen")).await;
    post(&stack, &user, &format!("/api/tasks/{id}/complete")).await;
    barrier(&stack, &user).await;
    let indices = indices(&stack, &series_id).await;
    assert_eq!(indices, [1], "the deleted occurrence 2 came back");
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_reopened_occurrence_moved_back_does_not_skip_ahead() {
    let stack = Stack::from_env();
    let user = unique_user();
    let (series_id, id, _) = advanced_series(&stack, &user, 30).await;
    // Reopen the first and move it ten days back: completing it now would
    // (alone) catch up to occurrence 11; the series already has a later one.
    post(&stack, &user, &format!("/api/tasks/{id}/reopen")).await;
    let stored = get_task(&stack, &user, &id).await;
    let due: chrono::DateTime<chrono::Utc> = stored["due_at"].as_str().unwrap().parse().unwrap();
    let response = stack
        .http
        .patch(format!("{}/api/tasks/{id}", stack.task_api))
        .bearer_auth(stack.token(&user, false))
        .json(&json!({"due_at": due - chrono::Duration::days(10), "reminders": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "PATCH due_at");
    post(&stack, &user, &format!("/api/tasks/{id}/complete")).await;
    barrier(&stack, &user).await;
    let indices = indices(&stack, &series_id).await;
    assert_eq!(indices, [1, 2]);
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn poison_through_daprd_reaches_the_dead_letter_topic() {
    let stack = Stack::from_env();
    let user = unique_user();
    let task = stack.create_task(&user, &daily(3)).await;
    let id = task["id"].as_str().unwrap().to_owned();
    post(&stack, &user, &format!("/api/tasks/{id}/complete")).await;
    // A completion of a schema version no consumer knows, under a fresh id,
    // through daprd and Kafka: the routing rule sends it to recurring's
    // handler, which answers DROP, and recurring's daprd dead-letters it.
    let mut poison = completion_event(&stack, &id).await;
    let poison_id = Uuid::now_v7().to_string();
    poison["id"] = json!(poison_id);
    poison["dataschema"] = json!("urn:todo-events:schema:task-event:v9");
    assert_eq!(stack.publish("task-events", &user, &poison).await, 204);
    // task-events has two subscribers, audit and recurring, and both
    // dead-letter an unknown version: two copies mean recurring's is there.
    let copies = eventually(WAIT, || async {
        let dlq = stack.dev(&["topic", "task-events-dlq", "5"]).await;
        let n = dlq.matches(&poison_id).count();
        (n >= 2).then_some(n)
    })
    .await;
    assert!(
        copies.is_some(),
        "recurring's daprd did not dead-letter the poison event"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn crafted_dates_and_rules_are_refused_as_problems() {
    let stack = Stack::from_env();
    let user = unique_user();
    for (body, what) in [
        // Once panicked task-api (an end far past chrono's range).
        (
            json!({"title": "a", "due_at": "2027-01-05T14:00:00Z", "time_zone": "America/New_York",
                   "recurrence": {"frequency": "daily", "end": {"until": "+262142-12-31"}}}),
            "until far out",
        ),
        (
            json!({"title": "a", "due_at": "2027-01-05T14:00:00Z", "time_zone": "Asia/Tokyo",
                   "recurrence": {"frequency": "daily", "end": {"until": "-262143-01-01"}}}),
            "until before year 1",
        ),
        (
            json!({"title": "a", "due_at": "+10000-01-01T00:00:00Z"}),
            "due past 9999",
        ),
        (
            json!({"title": "a", "due_at": "2027-01-05T14:00:00Z", "rrule": "FREQ=DAILY;UNTIL=20200101T000000Z"}),
            "UNTIL before the due date",
        ),
        (
            json!({"title": "a", "due_at": "2027-01-06T14:00:00Z", "rrule": "FREQ=WEEKLY;BYDAY=MO,FR;COUNT=4"}),
            "due date off the rule",
        ),
    ] {
        let response = stack
            .http
            .post(format!("{}/api/tasks", stack.task_api))
            .bearer_auth(stack.token(&user, false))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: task-api dropped the request: {e}"));
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}"
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
    }
}
