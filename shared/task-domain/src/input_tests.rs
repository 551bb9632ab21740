//! Tests of request parsing and validation, including property tests that
//! feed arbitrary bytes and arbitrary JSON to the same entry points the fuzz
//! target drives.

use super::*;
use crate::model::MAX_DESCRIPTION_CHARS;
use proptest::prelude::*;

fn input(title: &str) -> TaskInput {
    TaskInput {
        title: title.to_owned(),
        ..TaskInput::default()
    }
}

fn stored() -> Task {
    sample_task()
}

#[test]
fn defaults_fill_in() {
    let task = input("  Buy milk ").validate().unwrap();
    assert_eq!(task.fields.title, "Buy milk");
    assert_eq!(task.fields.priority, Priority::Medium);
    assert_eq!(task.fields.time_zone, "UTC");
    assert!(task.fields.tags.is_empty() && task.reminders.is_empty());
}

#[test]
fn all_broken_rules_are_reported() {
    let bad = TaskInput {
        title: " ".into(),
        description: Some("x".repeat(MAX_DESCRIPTION_CHARS + 1)),
        time_zone: Some("Mars/Olympus".into()),
        tags: Some(vec!["".into()]),
        recurrence: serde_json::from_str(r#"{"frequency":"daily","weekdays":["mon"]}"#).ok(),
        ..TaskInput::default()
    };
    let fields: Vec<_> = bad
        .validate()
        .unwrap_err()
        .iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(
        fields,
        ["title", "description", "time_zone", "tags", "recurrence"]
    );
}

#[test]
fn parse_errors_are_classified() {
    assert!(matches!(parse_create(b"{"), Err(ParseError::Syntax(_))));
    assert!(matches!(
        parse_create(br#"{"title":"a","owner":"mallory"}"#),
        Err(ParseError::Shape(m)) if m.contains("unknown field")
    ));
    assert!(matches!(
        parse_create(br#"{"title":5}"#),
        Err(ParseError::Shape(_))
    ));
    assert!(matches!(
        parse_create(br#"{"title":"a","time_zone":"Nowhere/Land"}"#),
        Err(ParseError::Invalid(_))
    ));
    assert!(parse_create(br#"{"title":"a","due_at":"2026-11-30T09:00:00Z","recurrence":{"frequency":"weekly","weekdays":["mon","fri"]},"reminders":[{"minutes_before":10,"channels":["push","email"]}]}"#).is_ok());
}

#[test]
fn patch_tracks_real_changes_and_nulls() {
    let task = stored();
    let same = parse_patch(br#"{"title":"Sample","priority":"medium"}"#, &task).unwrap();
    assert!(same.changed.is_empty());
    let moved = parse_patch(
        br#"{"due_at":"2026-11-02T09:00:00Z","tags":["Home","bills"]}"#,
        &task,
    )
    .unwrap();
    assert_eq!(moved.changed, ["tags", "due_at"]);
    assert!(moved.reminders.is_none());
    // Clearing the due date would strand the relative reminder.
    let err = parse_patch(br#"{"due_at":null}"#, &task).unwrap_err();
    assert!(matches!(err, ParseError::Invalid(e) if e[0].field == "reminders"));
    let cleared = parse_patch(br#"{"due_at":null,"reminders":[]}"#, &task).unwrap();
    assert_eq!(cleared.changed, ["due_at", "reminders"]);
    assert!(matches!(
        parse_patch(br#"{"status":"completed"}"#, &task),
        Err(ParseError::Shape(_))
    ));
}

#[test]
fn null_is_refused_where_a_field_has_no_empty_state() {
    let task = stored();
    for field in [
        "title",
        "description",
        "priority",
        "tags",
        "time_zone",
        "reminders",
    ] {
        let body = format!(r#"{{"{field}":null}}"#);
        assert!(
            matches!(
                parse_patch(body.as_bytes(), &task),
                Err(ParseError::Shape(_))
            ),
            "{field}: null gave {:?}",
            parse_patch(body.as_bytes(), &task).map(|o| o.changed)
        );
    }
    // Left out, each stays as it is.
    assert!(parse_patch(b"{}", &task).unwrap().changed.is_empty());
}

#[test]
fn a_recurring_task_knows_its_next_due_date() {
    let mut task = stored();
    assert_eq!(task.next_due(Utc::now()), None, "not recurring");
    let body = br#"{"recurrence":{"frequency":"daily","interval":2,"end":{"after":2}}}"#;
    task.recurrence = parse_patch(body, &task).unwrap().fields.recurrence;
    let due = task.due_at.unwrap();
    assert_eq!(task.next_due(due), Some(due + chrono::Duration::days(2)));
    task.occurrence = 2;
    assert_eq!(task.next_due(due), None, "the series ended");
}

fn any_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "\\PC{0,20}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("2026-11-01T09:00:00Z")),
        Just(serde_json::Value::from("daily")),
        Just(serde_json::Value::from("Europe/Paris")),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        let keys = prop_oneof![
            Just("title".to_owned()),
            Just("due_at".to_owned()),
            Just("recurrence".to_owned()),
            Just("frequency".to_owned()),
            Just("reminders".to_owned()),
            Just("minutes_before".to_owned()),
            Just("channels".to_owned()),
            Just("time_zone".to_owned()),
            Just("tags".to_owned()),
            "[a-z_]{1,8}",
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(keys, inner, 0..5)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        parse_any(&bytes);
    }

    #[test]
    fn arbitrary_query_strings_never_panic(query in "[a-z_=&%0-9,:TZ+-]{0,80}") {
        parse_any(query.as_bytes());
    }

    #[test]
    fn arbitrary_json_is_accepted_only_when_valid(json in any_json()) {
        let body = json.to_string();
        if let Ok(new) = parse_create(body.as_bytes()) {
            // Whatever is accepted satisfies every rule.
            prop_assert!(validate_title(&new.fields.title).is_ok());
            prop_assert!(new.fields.tags.len() <= crate::model::MAX_TAGS);
            if let Some(r) = &new.fields.recurrence {
                prop_assert!(r.validate(new.fields.due_at.is_some()).is_ok());
            }
        }
        parse_any(body.as_bytes());
    }
}

#[test]
fn an_rrule_stands_in_for_the_json_rule() {
    let task = parse_create(
        br#"{"title":"Rent","due_at":"2026-12-25T16:00:00Z","time_zone":"Europe/Berlin","rrule":"FREQ=MONTHLY;BYDAY=-1FR;COUNT=12"}"#,
    )
    .unwrap();
    let rule = task.fields.recurrence.unwrap();
    assert_eq!(rule.end, crate::recurrence::End::After(12));
    assert!(rule.nth_weekday.is_some());
    for (body, needle) in [
        (
            r#"{"title":"a","due_at":"2026-12-25T16:00:00Z","rrule":"FREQ=DAILY;BYHOUR=9"}"#,
            "BYHOUR",
        ),
        (r#"{"title":"a","rrule":"FREQ=DAILY"}"#, "due_at"),
        (
            r#"{"title":"a","due_at":"2026-12-25T16:00:00Z","rrule":"FREQ=DAILY","recurrence":{"frequency":"daily"}}"#,
            "not both",
        ),
    ] {
        match parse_create(body.as_bytes()) {
            Err(ParseError::Invalid(errors)) => {
                assert_eq!(errors[0].field, "rrule");
                assert!(errors[0].message.contains(needle), "{}", errors[0].message);
            }
            other => panic!("{body}: {other:?}"),
        }
    }
}
