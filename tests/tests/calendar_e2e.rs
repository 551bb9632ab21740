//! The calendar feed against real iCalendar parsers: tasks created through
//! task-api (JSON rules and RRULE strings: a Jan 31 monthly, a Feb 29
//! yearly, a daily 02:30 across New York's and Lord Howe's DST gaps, a
//! fortnightly MO/WE/FR with UNTIL, the last Friday with COUNT) are fetched
//! as `GET /api/calendar.ics` and expanded by Python's `icalendar` +
//! `recurring-ical-events` and by `dateutil.rrule`
//! (scripts/lib/ical_expand.py, run with `ICAL_PYTHON`, which
//! `./scripts/test` installs from PyPI); every date must equal the
//! engine's. Also: the feed token is required, rotates, and a rotated one
//! is refused.
//!
//! Ignored by a plain `cargo test`; `./scripts/test` runs it.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use e2e_tests::Stack;
use reqwest::StatusCode;
use serde_json::{Value, json};
use task_domain::{Recurrence, SeriesStart};
use uuid::Uuid;

const FROM: &str = "2027-01-01";
const TO: &str = "2033-01-01";

fn local(tz: &str, y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    let tz: chrono_tz::Tz = tz.parse().unwrap();
    let naive = NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(h, min, 0)
        .unwrap();
    task_domain::recurrence::to_utc(tz, naive)
}

/// The tasks the feed must carry, as create bodies.
fn bodies() -> Vec<Value> {
    vec![
        json!({"title": "Pay rent, the 31st", "due_at": local("Europe/Berlin", 2027, 1, 31, 9, 0),
               "time_zone": "Europe/Berlin", "recurrence": {"frequency": "monthly"}}),
        json!({"title": "Leap day", "due_at": local("UTC", 2028, 2, 29, 7, 0), "time_zone": "UTC",
               "rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=28,29;BYSETPOS=-1"}),
        json!({"title": "Night shift", "due_at": local("America/New_York", 2027, 3, 12, 2, 30),
               "time_zone": "America/New_York", "rrule": "FREQ=DAILY;COUNT=6"}),
        json!({"title": "Half-hour DST", "due_at": local("Australia/Lord_Howe", 2027, 10, 1, 2, 15),
               "time_zone": "Australia/Lord_Howe", "rrule": "FREQ=DAILY;COUNT=6"}),
        json!({"title": "Gym; legs, arms", "description": "line one\nline two",
               "due_at": local("Asia/Kolkata", 2027, 1, 4, 18, 0), "time_zone": "Asia/Kolkata",
               "tags": ["health", "a,b"],
               "rrule": "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE,FR;UNTIL=20270401"}),
        json!({"title": "Review", "due_at": local("Europe/London", 2027, 1, 29, 17, 0),
               "time_zone": "Europe/London", "priority": "high",
               "rrule": "FREQ=MONTHLY;BYDAY=-1FR;COUNT=12",
               "reminders": [{"minutes_before": 30, "channels": ["push"]}]}),
        json!({"title": "Once", "due_at": local("UTC", 2027, 2, 1, 10, 0)}),
        json!({"title": "After completion", "due_at": local("Europe/Paris", 2027, 2, 1, 8, 0),
               "time_zone": "Europe/Paris",
               "recurrence": {"frequency": "daily", "interval": 3, "anchor": "completion"}}),
    ]
}

/// The engine's occurrence starts in the window, for a task as the API
/// returned it (a new series: its anchor is its due date).
fn engine_starts(task: &Value) -> Vec<String> {
    engine_window(task, 1, TO)
}

/// The engine's occurrence starts from occurrence `from` of the series
/// whose first occurrence is `first`, up to the date `to` (the anchor is
/// the first's due date); a task without an RRULE has its one due date.
fn engine_window(first: &Value, from: u32, to: &str) -> Vec<String> {
    let due: DateTime<Utc> = first["due_at"].as_str().unwrap().parse().unwrap();
    let end: DateTime<Utc> = format!("{to}T00:00:00Z").parse().unwrap();
    let rule: Option<Recurrence> = serde_json::from_value(first["recurrence"].clone()).unwrap();
    let iso = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let rule = match rule {
        Some(rule) if first["rrule"].is_string() => rule,
        // No RRULE (after completion, or not recurring): the one due date.
        _ => return vec![iso(due)],
    };
    let tz: chrono_tz::Tz = first["time_zone"].as_str().unwrap().parse().unwrap();
    let start = SeriesStart::at(due, tz, 1);
    (from..)
        .map_while(|index| rule.occurrence(&start, index))
        .take_while(|o| o.due < end)
        .map(|o| iso(o.due))
        .collect()
}

/// Asserts that both parsers expanded `uid` to `want`.
fn assert_expanded(
    expanded: &BTreeMap<String, Vec<String>>,
    uid: &str,
    want: &[String],
    what: &Value,
) {
    assert_eq!(
        expanded.get(uid).map(Vec::as_slice),
        Some(want),
        "recurring-ical-events, {what}"
    );
    assert_eq!(
        expanded.get(&format!("dateutil:{uid}")).map(Vec::as_slice),
        Some(want),
        "dateutil, {what}"
    );
}

async fn feed(stack: &Stack, token: Option<&str>) -> (StatusCode, String, String) {
    let mut url = format!("{}/api/calendar.ics", stack.task_api);
    if let Some(token) = token {
        url.push_str(&format!("?token={token}"));
    }
    let response = stack.http.get(url).send().await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.unwrap())
}

async fn new_token(stack: &Stack, user: &str) -> String {
    let response = stack
        .http
        .post(format!("{}/api/calendar/token", stack.task_api))
        .bearer_auth(stack.token(user, false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(body["url"], format!("/api/calendar.ics?token={token}"));
    token
}

/// Runs scripts/lib/ical_expand.py over the feed with `ICAL_PYTHON`.
fn expand_with_python(ics: &str) -> BTreeMap<String, Vec<String>> {
    expand_between(ics, FROM, TO)
}

/// The same, for the occurrences between `from` and `to` (ISO dates).
fn expand_between(ics: &str, from: &str, to: &str) -> BTreeMap<String, Vec<String>> {
    let python = std::env::var("ICAL_PYTHON").unwrap_or_else(|_| {
        panic!(
            "ICAL_PYTHON is not set: this test needs Python with icalendar and \
             recurring-ical-events; ./scripts/test installs them (scripts/lib/ical.sh)"
        )
    });
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/lib/ical_expand.py");
    let file = std::env::temp_dir().join(format!("calendar-{}.ics", Uuid::new_v4()));
    std::fs::write(&file, ics).unwrap();
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(&file)
        .args([from, to])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "ical_expand.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn the_feed_expands_in_real_parsers_to_the_engines_dates() {
    let stack = Stack::from_env();
    let user = format!("calendar-e2e-{}", Uuid::new_v4().simple());
    let mut tasks = Vec::new();
    for body in bodies() {
        tasks.push(stack.create_task(&user, &body).await);
    }
    assert_eq!(tasks[5]["rrule"], "FREQ=MONTHLY;BYDAY=-1FR;COUNT=12");
    assert_eq!(
        tasks[0]["rrule"],
        "FREQ=MONTHLY;BYMONTHDAY=28,29,30,31;BYSETPOS=-1"
    );
    assert_eq!(tasks[7]["rrule"], Value::Null);
    // A completed task is not in the feed.
    let done = stack
        .create_task(
            &user,
            &json!({"title": "Done", "due_at": local("UTC", 2027, 3, 1, 9, 0)}),
        )
        .await;
    let response = stack
        .http
        .post(format!(
            "{}/api/tasks/{}/complete",
            stack.task_api,
            done["id"].as_str().unwrap()
        ))
        .bearer_auth(stack.token(&user, false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let token = new_token(&stack, &user).await;
    let (status, content_type, ics) = feed(&stack, Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/calendar"), "{content_type}");
    assert!(
        ics.contains("DTSTART;TZID=America/New_York:20270312T023000"),
        "{ics}"
    );
    assert!(ics.contains("BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin"));

    let expanded = expand_with_python(&ics);
    assert!(!expanded.contains_key(&format!("{}@todo-events", done["id"].as_str().unwrap())));
    for task in &tasks {
        let uid = format!("{}@todo-events", task["id"].as_str().unwrap());
        let want = engine_starts(task);
        assert!(!want.is_empty());
        assert_eq!(
            expanded.get(&uid),
            Some(&want),
            "recurring-ical-events, {}",
            task["title"]
        );
        assert_eq!(
            expanded.get(&format!("dateutil:{uid}")),
            Some(&want),
            "dateutil, {}",
            task["title"]
        );
    }
    // The relative reminder is an alarm that repeats with every instance.
    let review = format!("alarms:{}@todo-events", tasks[5]["id"].as_str().unwrap());
    assert_eq!(expanded.get(&review), Some(&vec!["-PT30M".to_owned()]));
    // The three drift cases, spelled out.
    let berlin = engine_starts(&tasks[0]);
    assert_eq!(
        &berlin[..4],
        [
            "2027-01-31T08:00:00Z",
            "2027-02-28T08:00:00Z",
            "2027-03-31T07:00:00Z",
            "2027-04-30T07:00:00Z"
        ]
    );
    assert!(engine_starts(&tasks[1]).contains(&"2032-02-29T07:00:00Z".to_owned()));
    assert_eq!(
        engine_starts(&tasks[2])[1..4],
        [
            "2027-03-13T07:30:00Z",
            "2027-03-14T07:30:00Z",
            "2027-03-15T06:30:00Z"
        ]
    );
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn the_feed_needs_its_current_token() {
    let stack = Stack::from_env();
    let user = format!("calendar-e2e-{}", Uuid::new_v4().simple());
    stack
        .create_task(
            &user,
            &json!({"title": "Mine", "due_at": local("UTC", 2027, 3, 1, 9, 0)}),
        )
        .await;
    let first = new_token(&stack, &user).await;
    assert_eq!(feed(&stack, Some(&first)).await.0, StatusCode::OK);
    let second = new_token(&stack, &user).await;
    assert_ne!(first, second);
    let (status, content_type, _) = feed(&stack, Some(&first)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a rotated token is refused"
    );
    assert_eq!(content_type, "application/problem+json");
    let (status, _, ics) = feed(&stack, Some(&second)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ics.contains("SUMMARY:Mine"));
    for bad in [
        None,
        Some("nope"),
        Some(&*format!("cal_{}", "0".repeat(64))),
    ] {
        assert_eq!(
            feed(&stack, bad).await.0,
            StatusCode::UNAUTHORIZED,
            "{bad:?}"
        );
    }
    // Another user's feed never shows this user's tasks.
    let other = format!("calendar-e2e-{}", Uuid::new_v4().simple());
    let (_, _, theirs) = feed(&stack, Some(&new_token(&stack, &other).await)).await;
    assert!(!theirs.contains("SUMMARY:Mine"));
}

/// Waits until the series has an occurrence with an index above 1; returns
/// its id.
async fn successor_of(stack: &Stack, series_id: &str) -> String {
    let db = stack.db().await;
    let id = Uuid::parse_str(series_id).unwrap();
    e2e_tests::eventually(std::time::Duration::from_secs(30), || async {
        db.query_opt(
            "SELECT id FROM tasks WHERE series_id = $1 AND occurrence > 1
             ORDER BY occurrence DESC LIMIT 1",
            &[&id],
        )
        .await
        .unwrap()
        .map(|row| row.get::<_, Uuid>(0).to_string())
    })
    .await
    .unwrap_or_else(|| panic!("series {series_id} got no next occurrence"))
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn after_completions_the_feed_carries_the_next_occurrences() {
    let stack = Stack::from_env();
    let user = format!("calendar-e2e-{}", Uuid::new_v4().simple());
    let series_bodies = [
        bodies()[0].clone(),
        bodies()[2].clone(),
        bodies()[4].clone(),
        bodies()[5].clone(),
        // Its successor is due 9999-12-31, the last date a feed can carry:
        // the feed must stay readable as a whole.
        json!({"title": "Far future", "due_at": "9999-12-30T09:00:00Z", "time_zone": "UTC",
               "recurrence": {"frequency": "daily"}}),
    ];
    let mut pairs = Vec::new();
    for body in series_bodies {
        let first = stack.create_task(&user, &body).await;
        let id = first["id"].as_str().unwrap();
        let response = stack
            .http
            .post(format!("{}/api/tasks/{id}/complete", stack.task_api))
            .bearer_auth(stack.token(&user, false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        pairs.push(first);
    }
    let mut nexts = Vec::new();
    for first in &pairs {
        let next_id = successor_of(&stack, first["series_id"].as_str().unwrap()).await;
        let response = stack
            .http
            .get(format!("{}/api/tasks/{next_id}", stack.task_api))
            .bearer_auth(stack.token(&user, false))
            .send()
            .await
            .unwrap();
        nexts.push(response.json::<Value>().await.unwrap());
    }
    let token = new_token(&stack, &user).await;
    let (status, _, ics) = feed(&stack, Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ics.contains("DTSTART:99991231T090000Z"), "{ics}");
    let expanded = expand_with_python(&ics);
    for (first, next) in pairs.iter().zip(&nexts) {
        let done = format!("{}@todo-events", first["id"].as_str().unwrap());
        assert!(
            !expanded.contains_key(&done),
            "a completed occurrence is in the feed"
        );
        let uid = format!("{}@todo-events", next["id"].as_str().unwrap());
        let from = u32::try_from(next["occurrence"].as_u64().unwrap()).unwrap();
        let want = engine_window(first, from, TO);
        if !want.is_empty() {
            assert_expanded(&expanded, &uid, &want, &first["title"]);
        }
    }
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn a_client_without_the_zone_database_reads_the_vtimezone() {
    let stack = Stack::from_env();
    let user = format!("calendar-e2e-{}", Uuid::new_v4().simple());
    let berlin = |y, m, d| local("Europe/Berlin", y, m, d, 9, 0);
    let bodies = [
        json!({"title": "Summer 2020", "due_at": berlin(2020, 7, 1), "time_zone": "Europe/Berlin"}),
        json!({"title": "Winter 2045", "due_at": berlin(2045, 1, 15), "time_zone": "Europe/Berlin"}),
        json!({"title": "Summer 2045", "due_at": berlin(2045, 7, 15), "time_zone": "Europe/Berlin"}),
        json!({"title": "Every July", "due_at": berlin(2027, 7, 1), "time_zone": "Europe/Berlin",
               "rrule": "FREQ=YEARLY;COUNT=20"}),
    ];
    let mut tasks = Vec::new();
    for body in bodies {
        tasks.push(stack.create_task(&user, &body).await);
    }
    let (status, _, ics) = feed(&stack, Some(&new_token(&stack, &user).await)).await;
    assert_eq!(status, StatusCode::OK);
    // A TZID no zone database knows: the parsers have only the VTIMEZONE.
    let renamed = ics.replace("Europe/Berlin", "Test/Renamed-Zone");
    let expanded = expand_between(&renamed, "2019-01-01", "2048-01-01");
    for task in &tasks {
        let uid = format!("{}@todo-events", task["id"].as_str().unwrap());
        let want = engine_window(task, 1, "2048-01-01");
        assert_expanded(&expanded, &uid, &want, &task["title"]);
    }
}
