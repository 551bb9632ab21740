//! Tests of [`super`]: the decisions on hand-made tasks and feeds, and
//! the change-feed lookup against the real task-api.

use super::*;

fn task(title: &str, status: &str, sequence: i64) -> Value {
    json!({"title": title, "status": status, "sequence": sequence})
}

#[test]
fn a_status_change_is_decided_by_the_status() {
    let done = task("t", "completed", 4);
    let open = task("t", "pending", 3);
    assert_eq!(
        decide(Op::Complete, "", Some(&done), Some(3)),
        Decision::Applied
    );
    assert_eq!(
        decide(Op::Complete, "", Some(&open), Some(2)),
        Decision::NotApplied(3)
    );
    assert_eq!(
        decide(Op::Reopen, "", Some(&open), Some(2)),
        Decision::Applied
    );
    assert_eq!(
        decide(Op::Reopen, "", Some(&done), Some(3)),
        Decision::NotApplied(4)
    );
}

#[test]
fn a_status_change_applied_only_past_the_known_sequence() {
    // The complete before this reopen stayed unknown and never applied:
    // the task is still pending at the sequence the client knew, which
    // is no reopen.
    let open = task("t", "pending", 3);
    assert_eq!(
        decide(Op::Reopen, "", Some(&open), Some(3)),
        Decision::NotApplied(3)
    );
    let done = task("t", "completed", 3);
    assert_eq!(
        decide(Op::Complete, "", Some(&done), Some(3)),
        Decision::NotApplied(3)
    );
}

#[test]
fn a_delete_applied_when_the_task_is_gone() {
    assert_eq!(decide(Op::Delete, "", None, Some(1)), Decision::Applied);
    let there = task("t", "pending", 2);
    assert_eq!(
        decide(Op::Delete, "", Some(&there), Some(2)),
        Decision::NotApplied(2)
    );
    assert_eq!(decide(Op::Complete, "", None, Some(1)), Decision::Undecided);
}

#[test]
fn an_update_is_applied_only_when_its_title_shows() {
    let mine = task("ops 1 1.0", "pending", 3);
    let other = task("ops 1 1.1", "pending", 3);
    for op in [Op::Update, Op::UpdateIfMatch] {
        assert_eq!(
            decide(op, "ops 1 1.0", Some(&mine), Some(1)),
            Decision::Applied
        );
        // Overwritten or never applied: the feed decides, and a retry
        // goes against the sequence read.
        assert_eq!(
            decide(op, "ops 1 1.0", Some(&other), Some(1)),
            Decision::Overwritten(3)
        );
    }
}

/// The feed lookup against the real task-api: an update a sibling
/// overwrote is found by its title, one that never applied is not.
#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn on_the_stack_the_feed_finds_an_overwritten_update() {
    let stack = crate::Stack::from_env();
    let user = format!("feed-{}", Uuid::new_v4().simple());
    let created = stack
        .create_task(&user, &json!({"title": "first", "priority": "low"}))
        .await;
    let id = created["id"].as_str().and_then(|s| Uuid::parse_str(s).ok());
    let target = Target {
        http: reqwest::Client::new(),
        url: stack.task_api.trim_end_matches('/').to_owned(),
        tokens: vec![crate::user_token(&user, false, &stack.jwt_secret)],
        permits: std::sync::Arc::new(tokio::sync::Semaphore::new(4)),
        tag: user.clone(),
        retry_for: Duration::from_secs(30),
    };
    let call = |title: &'static str| Call {
        user: 0,
        op: Op::Update,
        task_id: id,
        title,
        key: "",
        known: Some(1),
    };
    for title in ["mine", "a sibling's"] {
        let answer = send(&target, request(&target, &call(title), None)).await;
        assert!(
            matches!(&answer, Answer::Response { status, .. } if status.is_success()),
            "{}",
            answer.describe()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let read = read(&target, &call("mine"), deadline).await.expect("read");
    assert_eq!(
        decide(Op::Update, "mine", read.as_ref(), Some(1)),
        Decision::Overwritten(3)
    );
    assert_eq!(feed_shows(&target, &call("mine"), deadline).await, Ok(true));
    assert_eq!(
        feed_shows(&target, &call("never sent"), deadline).await,
        Ok(false)
    );
}

#[test]
fn an_overwritten_update_is_decided_by_the_feed() {
    for op in [Op::Update, Op::UpdateIfMatch] {
        assert_eq!(after_feed(op, true), Some(Verdict::Changed));
    }
    // Absent: sent again, unless it was conditional on version 1.
    assert_eq!(after_feed(Op::Update, false), None);
    assert_eq!(after_feed(Op::UpdateIfMatch, false), Some(Verdict::Refused));
}

#[test]
fn the_feed_shows_an_update_by_its_task_and_title() {
    let task = Uuid::from_u128(1);
    let event = |id: Uuid, title: &str| {
        json!({"type": "com.todo.task.sync",
               "data": {"task_id": id.to_string(), "sequence": 2,
                        "task": {"title": title}}})
    };
    let deleted = json!({"data": {"task_id": task.to_string(), "task": null}});
    let events = vec![
        event(task, "ops 1 1.1"),
        deleted,
        event(Uuid::from_u128(2), "ops 1 1.0"),
    ];
    assert!(!shows_title(&events, task, "ops 1 1.0"));
    assert!(shows_title(&events, task, "ops 1 1.1"));
    assert!(shows_title(&[event(task, "ops 1 1.0")], task, "ops 1 1.0"));
}

#[test]
fn lost_answers_5xx_and_429_are_retried_others_not() {
    let response = |s: u16| Answer::Response {
        status: StatusCode::from_u16(s).unwrap(),
        body: Value::Null,
    };
    assert!(Answer::Lost("reset".into()).retryable());
    for s in [500, 502, 503, 429] {
        assert!(response(s).retryable(), "{s}");
    }
    for s in [200, 201, 204, 400, 404, 412, 422] {
        assert!(!response(s).retryable(), "{s}");
    }
}
