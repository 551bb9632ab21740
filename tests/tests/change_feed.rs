//! The change feed (`GET /api/changes`) and its retention job against the
//! real stack: a user's stream paged in order and gap-free, only their
//! own, resets for positions outside the history; the prune through the
//! real Dapr scheduler, and its horizons in a schema of its own.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use e2e_tests::{PrivateSchema, Stack, eventually, unsent_outbox_rows};
use serde_json::{Value, json};
use task_domain::prune::{Horizons, prune};
use uuid::Uuid;

async fn feed(stack: &Stack, user: &str, query: &str) -> Value {
    let response = stack
        .http
        .get(format!("{}/api/changes?{query}", stack.task_api))
        .bearer_auth(stack.token(user, false))
        .send()
        .await
        .expect("task-api reachable");
    assert_eq!(response.status(), 200, "GET /api/changes?{query}");
    response.json().await.expect("json")
}

fn offsets(page: &Value) -> Vec<i64> {
    page["events"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {page}"))
        .iter()
        .map(|e| e["data"]["offset"].as_i64().expect("offset"))
        .collect()
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_users_stream_pages_in_order_only_theirs_and_resets_outside_history() {
    let stack = Stack::from_env();
    let alice = format!("feed-a-{}", Uuid::now_v7());
    let bob = format!("feed-b-{}", Uuid::now_v7());
    let head = feed(&stack, &alice, "").await;
    assert_eq!(head["next_offset"], 0, "{head}");
    let epoch = head["epoch"].as_str().expect("epoch").to_owned();
    for i in 0..5 {
        stack
            .create_task(&alice, &json!({"title": format!("a{i}")}))
            .await;
    }
    let first = stack.create_task(&bob, &json!({"title": "b"})).await;
    let task = stack.create_task(&alice, &json!({"title": "a5"})).await;
    let done = stack
        .http
        .post(format!(
            "{}/api/tasks/{}/complete",
            stack.task_api,
            task["id"].as_str().unwrap()
        ))
        .bearer_auth(stack.token(&alice, false))
        .send()
        .await
        .expect("complete");
    assert_eq!(done.status(), 200);
    // The epoch a client was told before its first change still holds.
    assert_eq!(feed(&stack, &alice, "").await["epoch"], epoch.as_str());

    let mut seen: Vec<i64> = Vec::new();
    let mut after = 0;
    loop {
        let page = feed(
            &stack,
            &alice,
            &format!("epoch={epoch}&after={after}&limit=3"),
        )
        .await;
        let got = offsets(&page);
        for event in page["events"].as_array().unwrap() {
            contracts::schema::validate_cloudevent(event).expect("a valid task.sync event");
            assert_eq!(event["type"], "com.todo.task.sync");
            assert_eq!(event["data"]["user_id"], alice.as_str(), "only alice's");
        }
        assert_eq!(page["next_offset"], *got.last().unwrap_or(&after));
        seen.extend(got.iter().copied());
        if got.len() < 3 {
            break;
        }
        after = page["next_offset"].as_i64().unwrap();
    }
    assert_eq!(
        seen,
        (1..=7).collect::<Vec<_>>(),
        "6 creates and 1 completion"
    );
    let last = feed(&stack, &alice, &format!("epoch={epoch}&after=6")).await;
    assert_eq!(last["events"][0]["data"]["op"], "completed");

    // Bob's stream is his own, with its own epoch.
    let bob_head = feed(&stack, &bob, "").await;
    assert_eq!(bob_head["next_offset"], 1);
    let bob_epoch = bob_head["epoch"].as_str().unwrap().to_owned();
    let bobs = feed(&stack, &bob, &format!("epoch={bob_epoch}&after=0")).await;
    assert_eq!(bobs["events"][0]["data"]["task_id"], first["id"]);
    // Alice at Bob's epoch, or beyond her head: reset, with her epoch.
    for query in [
        format!("epoch={bob_epoch}&after=0"),
        format!("epoch={epoch}&after=8"),
    ] {
        let reset = feed(&stack, &alice, &query).await;
        assert_eq!(reset, json!({"reset": true, "epoch": epoch}), "{query}");
    }
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn the_scheduled_prune_removes_expired_history_and_the_feed_then_resets() {
    let stack = Stack::from_env();
    let db = stack.db().await;
    let user = format!("feed-prune-{}", Uuid::now_v7());
    for i in 0..4 {
        stack
            .create_task(&user, &json!({"title": format!("p{i}")}))
            .await;
    }
    let sent = eventually(Duration::from_secs(30), || async {
        (unsent_outbox_rows(&db, &user).await == 0).then_some(())
    })
    .await;
    assert!(sent.is_some(), "the relay published the user's events");
    // Offsets 1 and 2 age past CHANGE_RETENTION_DAYS (7).
    let aged = db
        .execute(
            "UPDATE outbox SET created_at = now() - interval '8 days'
             WHERE partition_key = $1 AND topic = 'task-updates' AND stream_offset <= 2",
            &[&user],
        )
        .await
        .unwrap();
    assert_eq!(aged, 2);

    // The job is registered at start; a one-shot job of the same prefix
    // runs the prune now, through daprd and the real scheduler.
    let job = format!("change-retention-{}", Uuid::now_v7());
    let jobs = format!("{}/v1.0-alpha1/jobs", stack.task_api_dapr);
    // daprd 1.18.2 cannot trigger a job without data ("proto:
    // google.protobuf.Value: none of the oneof fields is set" in its log).
    let mut request = stack
        .http
        .post(format!("{jobs}/{job}"))
        .json(&json!({"dueTime": "1s", "data": {"purpose": "test"}}));
    let mut registered = stack.http.get(format!("{jobs}/change-retention"));
    if let Some(token) = &stack.dapr_api_token {
        request = request.header("dapr-api-token", token);
        registered = registered.header("dapr-api-token", token);
    }
    let registered = registered.send().await.unwrap();
    assert_eq!(
        registered.status(),
        200,
        "the recurring job is in the scheduler"
    );
    let schedule: Value = registered.json().await.unwrap();
    assert!(schedule["schedule"].is_string(), "{schedule}");
    assert!(request.send().await.unwrap().status().is_success());
    let gone = eventually(Duration::from_secs(30), || async {
        let left: i64 = db
            .query_one(
                "SELECT count(*) FROM outbox WHERE partition_key = $1 AND topic = 'task-updates'",
                &[&user],
            )
            .await
            .unwrap()
            .get(0);
        (left == 2).then_some(())
    })
    .await;
    assert!(gone.is_some(), "the job deleted the two expired rows");

    let head = feed(&stack, &user, "").await;
    let epoch = head["epoch"].as_str().unwrap();
    assert_eq!(head["next_offset"], 4);
    let reset = feed(&stack, &user, &format!("epoch={epoch}&after=0")).await;
    assert_eq!(
        reset,
        json!({"reset": true, "epoch": epoch}),
        "history no longer reaches 0"
    );
    let rest = feed(&stack, &user, &format!("epoch={epoch}&after=2")).await;
    assert_eq!(offsets(&rest), vec![3, 4], "what is kept is still served");
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn each_kind_is_pruned_on_its_own_horizon_and_unsent_rows_never() {
    let stack = Stack::from_env();
    // A schema of its own: the prune's counts are exact whatever else runs.
    let schema = PrivateSchema::create(&stack, "prune_test", 2).await;
    let (pool, db) = (&schema.pool, &schema.db);
    // (topic, age in hours, sent)
    let rows = [
        ("task-updates", 24 * 8, true),   // past 7 days: goes
        ("task-updates", 24 * 6, true),   // kept: the feed's window
        ("task-updates", 24 * 30, false), // unsent: an event still owed
        ("task-events", 25, true),        // past 24 h: goes
        ("reminders", 25, true),          // past 24 h: goes
        ("task-events", 23, true),        // kept
        ("reminders", 24 * 30, false),    // unsent: kept
    ];
    for (i, (topic, hours, sent)) in rows.iter().enumerate() {
        db.execute(
            "INSERT INTO outbox (event_id, topic, partition_key, event_type, payload, stream_offset,
                                 created_at, sent_at)
             VALUES ($1, $2, 'u', 't', '{}', $3, now() - make_interval(hours => $4),
                     CASE WHEN $5 THEN now() END)",
            &[&Uuid::new_v4(), topic, &(i as i64 + 1), hours, sent],
        )
        .await
        .unwrap();
    }
    for (key, hours) in [("old", 25), ("new", 1)] {
        db.execute(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, status, body, created_at)
             VALUES ('u', $1, 'h', 201, '{}', now() - make_interval(hours => $2))",
            &[&key, &hours],
        )
        .await
        .unwrap();
    }
    let horizons = Horizons {
        change_feed: TimeDelta::days(7),
        sent_events: TimeDelta::hours(24),
        idempotency_keys: TimeDelta::hours(24),
    };
    // Batches of one: every kind needs more than one statement.
    let report = prune(pool, horizons, Utc::now(), 1).await.unwrap();
    assert_eq!(
        (
            report.change_feed,
            report.sent_events,
            report.idempotency_keys
        ),
        (1, 2, 1),
        "{report:?}"
    );
    let left: Vec<i64> = db
        .query(
            "SELECT stream_offset FROM outbox ORDER BY stream_offset",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, vec![2, 3, 6, 7]);
    let keys: Vec<String> = db
        .query("SELECT key FROM idempotency_keys", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(keys, vec!["new".to_owned()]);
    schema.drop_schema().await;
}
