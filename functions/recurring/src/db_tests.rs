//! Handler tests over the real PostgreSQL named by `DATABASE_URL`: exactly
//! one successor per completion however it is delivered (daprd twice,
//! Knative, eight racing pushes), reopen and older occurrences, deleted and
//! reopened tasks, the count's end, and re-anchoring by an edit.
//!
//! Each is `#[ignore]`d with the reason: `./scripts/test` runs them with
//! `--include-ignored`, and there a missing database fails them rather than
//! letting them pass unchecked.

use std::time::Duration;

use axum::http::StatusCode;
use contracts::testing::{dapr_push_body, knative_binary_push};
use contracts::{EventKind, OutgoingEvent, TaskEventData};
use serde_json::json;
use task_domain::{SeriesStart, Task, TaskInput, TaskRepository};

use crate::app_tests::{call, dapr_push, knative_push, router};

fn database_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "DATABASE_URL is not set: this test needs PostgreSQL and fails instead of passing \
             unchecked (./scripts/test sets it up and runs the ignored tests)"
        ),
    }
}

async fn test_pool() -> deadpool_postgres::Pool {
    let url = database_url();
    let pool = service::db::pool(&url, 8).unwrap();
    service::db::wait_ready(&pool, &url, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    service::db::migrate_pool(
        &pool,
        task_domain::migrations(),
        task_domain::MIGRATION_TABLE,
    )
    .await
    .unwrap();
    pool
}

/// A completed occurrence of a daily series (with a relative and an
/// absolute reminder) of a fresh user, and the completion event for it.
///
/// The completion is real, so the stack's own recurring (if it runs) gets
/// it too and races this test's pushes: one more racer, same single result.
async fn completed_daily(repo: &TaskRepository) -> (Task, OutgoingEvent) {
    let task = pending_daily(repo).await;
    let done = repo
        .set_status(
            &task.user_id,
            task.id,
            task_domain::Status::Completed,
            None,
            None,
        )
        .await
        .unwrap();
    (done.clone(), completion_of(&done))
}

/// A pending first occurrence of a three-day daily series of a fresh user.
async fn pending_daily(repo: &TaskRepository) -> Task {
    let user = format!("recurring-test-{}", uuid::Uuid::now_v7());
    let due = chrono::Utc::now() + chrono::Duration::hours(2);
    let input: TaskInput = serde_json::from_value(json!({
        "title": "Water the plants",
        "description": "the ones by the window",
        "priority": "high",
        "tags": ["home"],
        "due_at": due,
        "time_zone": "Europe/Berlin",
        "recurrence": {"frequency": "daily", "end": {"after": 3}},
        "reminders": [
            {"minutes_before": 15, "channels": ["push"]},
            {"at": due - chrono::Duration::hours(1), "channels": ["email"]}
        ]
    }))
    .unwrap();
    match repo
        .create(&user, input.validate().unwrap(), None, None)
        .await
        .unwrap()
    {
        task_domain::repo::CreateOutcome::Created(task) => *task,
        other => panic!("{other:?}"),
    }
}

fn completion_of(task: &Task) -> OutgoingEvent {
    let data = TaskEventData {
        task_id: task.id,
        user_id: task.user_id.clone(),
        sequence: task.sequence,
        task: task.snapshot(),
        changed: vec!["status".to_owned(), "completed_at".to_owned()],
    };
    OutgoingEvent::new(
        EventKind::TaskCompleted,
        "task-api",
        task.id.to_string(),
        &data,
    )
    .unwrap()
}

/// Every occurrence of the task's series, by index.
async fn series_of(pool: &deadpool_postgres::Pool, task: &Task) -> Vec<(i32, Task)> {
    let repo = TaskRepository::new(pool.clone());
    let client = pool.get().await.unwrap();
    let rows = client
        .query(
            "SELECT id, occurrence FROM tasks WHERE series_id = $1 ORDER BY occurrence",
            &[&task.series_id],
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    for row in rows {
        let found = repo.get(&task.user_id, row.get(0)).await.unwrap().unwrap();
        out.push((row.get(1), found));
    }
    out
}

#[tokio::test]
#[ignore = "needs PostgreSQL (DATABASE_URL): ./scripts/test runs it"]
async fn a_completion_creates_one_successor_that_keeps_the_task() {
    let pool = test_pool().await;
    let app = router(pool.clone());
    let repo = TaskRepository::new(pool.clone());
    let (done, event) = completed_daily(&repo).await;
    // Delivered by daprd, again by daprd, and by Knative: one successor.
    for _ in 0..2 {
        let (_, body) = call(&app, dapr_push(&dapr_push_body(&event))).await;
        assert_eq!(body, json!({"status": "SUCCESS"}));
    }
    let (headers, bytes) = knative_binary_push(&event);
    assert_eq!(
        call(&app, knative_push(headers, bytes)).await.0,
        StatusCode::OK
    );
    let series = series_of(&pool, &done).await;
    assert_eq!(series.len(), 2, "{series:?}");
    let next = &series[1].1;
    assert_eq!(series[1].0, 2);
    assert_eq!(next.status, task_domain::Status::Pending);
    assert_eq!(
        (
            &next.title,
            &next.description,
            next.priority,
            &next.tags,
            &next.time_zone,
            &next.recurrence
        ),
        (
            &done.title,
            &done.description,
            done.priority,
            &done.tags,
            &done.time_zone,
            &done.recurrence
        )
    );
    let shift = next.due_at.unwrap() - done.due_at.unwrap();
    assert_eq!(shift, chrono::Duration::days(1));
    let (relative, absolute) = (&next.reminders[0], &next.reminders[1]);
    assert_eq!(relative.minutes_before, Some(15));
    assert_eq!(
        relative.fire_at,
        Some(next.due_at.unwrap() - chrono::Duration::minutes(15))
    );
    assert_eq!(absolute.at, Some(done.reminders[1].at.unwrap() + shift));
}

#[tokio::test]
#[ignore = "needs PostgreSQL (DATABASE_URL): ./scripts/test runs it"]
async fn racing_deliveries_reopen_and_older_occurrences_do_not_fork() {
    let pool = test_pool().await;
    let app = router(pool.clone());
    let repo = TaskRepository::new(pool.clone());
    let (first, event) = completed_daily(&repo).await;
    // Eight deliveries of one completion at once (replicas racing).
    let body = dapr_push_body(&event);
    let pushes: Vec<_> = (0..8)
        .map(|_| {
            let (app, body) = (app.clone(), body.clone());
            tokio::spawn(async move { call(&app, dapr_push(&body)).await })
        })
        .collect();
    for push in pushes {
        assert_eq!(push.await.unwrap().1, json!({"status": "SUCCESS"}));
    }
    assert_eq!(series_of(&pool, &first).await.len(), 2);
    // Reopen and complete the first occurrence again: it is not the
    // series' latest any more, so nothing new.
    let user = &first.user_id;
    repo.set_status(user, first.id, task_domain::Status::Pending, None, None)
        .await
        .unwrap();
    let again = repo
        .set_status(user, first.id, task_domain::Status::Completed, None, None)
        .await
        .unwrap();
    let (_, body) = call(&app, dapr_push(&dapr_push_body(&completion_of(&again)))).await;
    assert_eq!(body, json!({"status": "SUCCESS"}));
    let series = series_of(&pool, &first).await;
    assert_eq!(series.len(), 2);
    // Completing the second and third ends the three-occurrence series.
    let second = repo
        .set_status(
            user,
            series[1].1.id,
            task_domain::Status::Completed,
            None,
            None,
        )
        .await
        .unwrap();
    call(&app, dapr_push(&dapr_push_body(&completion_of(&second)))).await;
    let series = series_of(&pool, &first).await;
    assert_eq!(series.len(), 3);
    let third = repo
        .set_status(
            user,
            series[2].1.id,
            task_domain::Status::Completed,
            None,
            None,
        )
        .await
        .unwrap();
    let (_, body) = call(&app, dapr_push(&dapr_push_body(&completion_of(&third)))).await;
    assert_eq!(body, json!({"status": "SUCCESS"}));
    assert_eq!(
        series_of(&pool, &first).await.len(),
        3,
        "count ends the series"
    );
}

/// A completion event for `task` as if it had been completed, while the
/// stored task is not: no real completion exists for the stack's own
/// recurring to act on, so what this test's push does is all that happens.
fn completion_not_stored(task: &Task) -> OutgoingEvent {
    completion_of(&Task {
        status: task_domain::Status::Completed,
        completed_at: Some(chrono::Utc::now()),
        ..task.clone()
    })
}

#[tokio::test]
#[ignore = "needs PostgreSQL (DATABASE_URL): ./scripts/test runs it"]
async fn a_deleted_or_reopened_task_is_acknowledged_and_left_alone() {
    let pool = test_pool().await;
    let app = router(pool.clone());
    let repo = TaskRepository::new(pool.clone());
    // Reopened since the completion: the task is pending when it arrives.
    let pending = pending_daily(&repo).await;
    let event = completion_not_stored(&pending);
    let (_, body) = call(&app, dapr_push(&dapr_push_body(&event))).await;
    assert_eq!(body, json!({"status": "SUCCESS"}));
    assert_eq!(series_of(&pool, &pending).await.len(), 1);
    // Deleted since the completion.
    let deleted = pending_daily(&repo).await;
    let event = completion_not_stored(&deleted);
    repo.delete(&deleted.user_id, deleted.id, None, None)
        .await
        .unwrap();
    let (_, body) = call(&app, dapr_push(&dapr_push_body(&event))).await;
    assert_eq!(body, json!({"status": "SUCCESS"}));
    assert!(series_of(&pool, &deleted).await.is_empty());
}

#[tokio::test]
#[ignore = "needs PostgreSQL (DATABASE_URL): ./scripts/test runs it"]
async fn an_edited_due_date_re_anchors_the_series() {
    let pool = test_pool().await;
    let app = router(pool.clone());
    let repo = TaskRepository::new(pool.clone());
    let task = pending_daily(&repo).await;
    let moved = task.due_at.unwrap() + chrono::Duration::hours(5);
    let patch: task_domain::TaskPatch =
        serde_json::from_value(json!({"due_at": moved, "reminders": []})).unwrap();
    let edited = repo
        .update(&task.user_id, task.id, patch, None, None)
        .await
        .unwrap();
    assert_eq!(edited.series_id, task.series_id, "the series keeps its id");
    assert_eq!(
        edited.series.unwrap().local,
        SeriesStart::at(moved, chrono_tz::Tz::Europe__Berlin, 1).local
    );
    let done = repo
        .set_status(
            &task.user_id,
            task.id,
            task_domain::Status::Completed,
            None,
            None,
        )
        .await
        .unwrap();
    call(&app, dapr_push(&dapr_push_body(&completion_of(&done)))).await;
    let series = series_of(&pool, &task).await;
    assert_eq!(series.len(), 2);
    assert_eq!(series[1].1.due_at, Some(moved + chrono::Duration::days(1)));
    assert_eq!(series[1].1.rrule.as_deref(), Some("FREQ=DAILY;COUNT=3"));
}
