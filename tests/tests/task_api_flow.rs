//! task-api's REST surface against the real stack (PostgreSQL, daprd,
//! Kafka): a task's whole life with its reminders, If-Match, other users'
//! ids, Idempotency-Key, list filters and cursors, and every event
//! the API emitted checked against its JSON Schema.

use std::collections::BTreeSet;

use contracts::schema::validate_cloudevent;
use e2e_tests::Stack;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

fn unique_user(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::new_v4().simple())
}

struct Api<'a> {
    stack: &'a Stack,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Api<'_> {
    async fn call(
        &self,
        method: Method,
        path: &str,
        user: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self
            .stack
            .http
            .request(method, format!("{}{path}", self.stack.task_api))
            .bearer_auth(self.stack.token(user, false));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap_or_else(|e| {
            panic!("task-api at {} is not reachable: {e}", self.stack.task_api)
        });
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.json().await.unwrap_or(Value::Null),
        }
    }
}

/// The outbox rows of `user`'s events, in publish order.
async fn events_of(db: &tokio_postgres::Client, user: &str) -> Vec<Value> {
    db.query(
        "SELECT payload FROM outbox WHERE partition_key = $1 ORDER BY id",
        &[&user],
    )
    .await
    .expect("outbox rows")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            e["type"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches("com.todo.")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_task_lives_and_dies_with_its_reminders_and_events() {
    let stack = Stack::from_env();
    let api = Api { stack: &stack };
    let (alice, mallory) = (unique_user("flow"), unique_user("mallory"));
    let db = stack.db().await;

    let body = json!({
        // A Monday: the first due date is one of the rule's dates (mon, thu).
        "title": "Water the plants", "due_at": "2030-06-03T08:00:00Z", "time_zone": "Europe/Berlin",
        "tags": ["Home", "home", "garden"], "priority": "high",
        "recurrence": {"frequency": "weekly", "weekdays": ["mon", "thu"], "end": {"after": 10}},
        "reminders": [
            {"minutes_before": 60, "channels": ["push"]},
            {"at": "2030-05-31T18:00:00Z", "channels": ["email", "push"]}
        ]
    });
    let created = api
        .call(Method::POST, "/api/tasks", &alice, Some(&body), &[])
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let task = created.body;
    let id = task["id"].as_str().unwrap().to_owned();
    let path = format!("/api/tasks/{id}");
    assert_eq!(task["tags"], json!(["home", "garden"]));
    assert_eq!(task["reminders"][0]["fire_at"], "2030-06-03T07:00:00Z");
    assert_eq!(created.headers["etag"], "\"1\"");

    // Another user's id is 404 on every route, and changes nothing.
    for (method, suffix) in [
        (Method::GET, ""),
        (Method::PATCH, ""),
        (Method::DELETE, ""),
        (Method::POST, "/complete"),
        (Method::POST, "/reopen"),
    ] {
        let r = api
            .call(
                method.clone(),
                &format!("{path}{suffix}"),
                &mallory,
                Some(&json!({})),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {suffix}");
        assert_eq!(r.headers["content-type"], "application/problem+json");
    }

    // Moving the due date moves the relative reminder: cancel old, schedule new.
    let stale = api
        .call(
            Method::PATCH,
            &path,
            &alice,
            Some(&json!({"title": "x"})),
            &[("if-match", "\"7\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let moved = api
        .call(
            Method::PATCH,
            &path,
            &alice,
            Some(&json!({"due_at": "2030-06-06T08:00:00Z"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!(moved.body["sequence"], 2);
    assert_eq!(
        moved.body["reminders"][0]["fire_at"],
        "2030-06-06T07:00:00Z"
    );
    assert_eq!(moved.body["reminders"][0]["id"], task["reminders"][0]["id"]);
    // An invalid merged state is refused: weekdays only with weekly.
    let bad = api
        .call(
            Method::PATCH,
            &path,
            &alice,
            Some(&json!({"recurrence": {"frequency": "daily", "weekdays": ["mon"]}})),
            &[],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["errors"][0]["field"], "recurrence");
    // PostgreSQL cannot store U+0000: refused as invalid, not a 500.
    let nul = api
        .call(
            Method::PATCH,
            &path,
            &alice,
            Some(&json!({"title": "a\u{0}b"})),
            &[],
        )
        .await;
    assert_eq!(nul.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(nul.body["errors"][0]["field"], "title");
    // A patch that changes nothing emits nothing and keeps the sequence.
    let same = api
        .call(
            Method::PATCH,
            &path,
            &alice,
            Some(&json!({"priority": "high"})),
            &[],
        )
        .await;
    assert_eq!(same.body["sequence"], 2);

    let done = api
        .call(Method::POST, &format!("{path}/complete"), &alice, None, &[])
        .await;
    assert_eq!(done.body["status"], "completed");
    assert!(done.body["reminders"][0]["fire_at"].is_null());
    let again = api
        .call(Method::POST, &format!("{path}/complete"), &alice, None, &[])
        .await;
    assert_eq!(again.body["sequence"], 3, "completing twice is one change");
    let reopened = api
        .call(Method::POST, &format!("{path}/reopen"), &alice, None, &[])
        .await;
    assert_eq!(reopened.body["status"], "pending");
    assert_eq!(reopened.body["sequence"], 4);
    let deleted = api.call(Method::DELETE, &path, &alice, None, &[]).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = api.call(Method::GET, &path, &alice, None, &[]).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);

    let events = events_of(&db, &alice).await;
    // The user's stream may also hold the next occurrence that recurring
    // creates when the completion reaches it (before or after the reopen,
    // whichever comes first): this task's own events are the subject here.
    let mine: Vec<Value> = events
        .iter()
        .filter(|e| e["subject"].as_str() == Some(id.as_str()))
        .cloned()
        .collect();
    assert_eq!(
        kinds(&mine),
        [
            "task.sync",
            "task.created",
            "reminder.scheduled",
            "reminder.scheduled",
            "task.sync",
            "task.updated",
            // The relative reminder moves with the due date; the absolute
            // one keeps its time but shows the new due date, so it is
            // scheduled again too (notification's view stays current).
            "reminder.cancelled",
            "reminder.scheduled",
            "reminder.scheduled",
            "task.sync",
            "task.completed",
            "reminder.cancelled",
            "reminder.cancelled",
            "task.sync",
            "task.updated",
            "reminder.scheduled",
            "reminder.scheduled",
            "task.sync",
            "task.deleted",
            "reminder.cancelled",
            "reminder.cancelled",
        ]
    );
    let offsets: Vec<i64> = events
        .iter()
        .filter(|e| e["type"] == "com.todo.task.sync")
        .map(|e| e["data"]["offset"].as_i64().unwrap())
        .collect();
    let expected: Vec<i64> = (1..=offsets.len() as i64).collect();
    assert_eq!(offsets, expected, "the user's stream has no gap");
    let sequences: Vec<i64> = mine
        .iter()
        .filter(|e| e["type"] == "com.todo.task.sync")
        .map(|e| e["data"]["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(sequences, [1, 2, 3, 4, 5]);
    for event in &events {
        validate_cloudevent(event).unwrap_or_else(|e| panic!("{e}: {event}"));
    }
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn idempotency_keys_replay_or_refuse() {
    let stack = Stack::from_env();
    let api = Api { stack: &stack };
    let user = unique_user("idem");
    let body = json!({"title": "Once only", "tags": ["a"]});
    let key = [("idempotency-key", "order-42")];
    let first = api
        .call(Method::POST, "/api/tasks", &user, Some(&body), &key)
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    // The same body, spelt differently, replays the same response.
    let same = json!({"tags": ["a"], "title": "Once only"});
    let replay = api
        .call(Method::POST, "/api/tasks", &user, Some(&same), &key)
        .await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(replay.body["id"], first.body["id"]);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    let other = json!({"title": "Something else"});
    let refused = api
        .call(Method::POST, "/api/tasks", &user, Some(&other), &key)
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Concurrent requests with one key make one task.
    let key2 = [("idempotency-key", "burst")];
    let replies = futures::future::join_all(
        (0..8).map(|_| api.call(Method::POST, "/api/tasks", &user, Some(&body), &key2)),
    )
    .await;
    let ids: BTreeSet<String> = replies
        .iter()
        .map(|r| r.body["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    // Keys are per user: another user's same key is a new request.
    let bob = unique_user("idem-bob");
    let theirs = api
        .call(Method::POST, "/api/tasks", &bob, Some(&body), &key)
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    assert_ne!(theirs.body["id"], first.body["id"]);
    let list = api.call(Method::GET, "/api/tasks", &user, None, &[]).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
}

const PRIORITIES: [&str; 3] = ["high", "medium", "low"];

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn list_filters_sorts_and_pages_stably() {
    let stack = Stack::from_env();
    let api = Api { stack: &stack };
    let user = unique_user("list");
    let mut ids = Vec::new();
    for i in 0..7 {
        let body = json!({
            "title": format!("Task {i}{}", if i % 3 == 0 { " invoice" } else { "" }),
            "priority": PRIORITIES[i % 3],
            "tags": if i % 2 == 0 { json!(["even", "all"]) } else { json!(["all"]) },
            "due_at": if i == 3 { Value::Null } else { json!(format!("2030-01-0{}T09:00:00Z", 7 - i)) },
        });
        let r = api
            .call(Method::POST, "/api/tasks", &user, Some(&body), &[])
            .await;
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let get = |query: String| {
        let api = &api;
        let user = &user;
        async move {
            let r = api
                .call(Method::GET, &format!("/api/tasks?{query}"), user, None, &[])
                .await;
            assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
            r.body
        }
    };
    let titles = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["title"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        titles(&get("q=INVOICE".into()).await),
        ["Task 6 invoice", "Task 3 invoice", "Task 0 invoice"]
    );
    assert_eq!(
        get("tags=even,all&tag_mode=all".into()).await["items"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        get("tags=even,nothing".into()).await["items"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        get("priority=high".into()).await["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let due =
        get("sort=due&due_after=2030-01-02T00:00:00Z&due_before=2030-01-05T00:00:00Z".into()).await;
    assert_eq!(titles(&due), ["Task 5", "Task 4"]);
    // Due sorting puts tasks without a due date last.
    let by_due = titles(&get("sort=due".into()).await);
    assert_eq!(by_due.last().map(String::as_str), Some("Task 3 invoice"));

    // Page through newest-first two at a time while inserting new tasks:
    // every original task is seen once, none twice.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("limit=2&cursor={c}"),
            None => "limit=2".to_owned(),
        };
        let page = get(query).await;
        for t in page["items"].as_array().unwrap() {
            seen.push(t["id"].as_str().unwrap().to_owned());
        }
        api.call(
            Method::POST,
            "/api/tasks",
            &user,
            Some(&json!({"title": "inserted meanwhile"})),
            &[],
        )
        .await;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    let bad = api
        .call(
            Method::GET,
            "/api/tasks?sort=due&cursor=eyJ4IjoxfQ",
            &user,
            None,
            &[],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // A well-formed cursor with a forged sort key is the client's error too.
    // base64url of {"sort":"created","desc":true,"key":"not a time","id":"00000000-0000-0000-0000-000000000000"}
    let forged = "eyJzb3J0IjoiY3JlYXRlZCIsImRlc2MiOnRydWUsImtleSI6Im5vdCBhIHRpbWUiLCJpZCI6IjAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMCJ9";
    let forged = api
        .call(
            Method::GET,
            &format!("/api/tasks?cursor={forged}"),
            &user,
            None,
            &[],
        )
        .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    assert_eq!(forged.body["errors"][0]["field"], "cursor");
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn the_openapi_document_is_served() {
    let stack = Stack::from_env();
    let doc: Value = stack
        .http
        .get(format!("{}/openapi.json", stack.task_api))
        .send()
        .await
        .expect("task-api reachable")
        .json()
        .await
        .expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/tasks/{id}/complete"]["post"].is_object());
}
