//! `If-Match` parsing and the guarded retry over a list of tags.

use std::cell::Cell;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;

use super::*;

fn parse(lines: &[&'static str]) -> Result<IfMatch, StatusCode> {
    let mut headers = HeaderMap::new();
    for line in lines {
        headers.append(header::IF_MATCH, HeaderValue::from_static(line));
    }
    IfMatch::from_headers(&headers).map_err(|e| e.into_response().status())
}

#[test]
fn star_and_absence_mean_any_existing_task() {
    assert_eq!(parse(&[]), Ok(IfMatch::Any));
    assert_eq!(parse(&["*"]), Ok(IfMatch::Any));
    assert_eq!(parse(&[" * "]), Ok(IfMatch::Any));
}

#[test]
fn strong_tags_name_sequences_and_lists_are_read_whole() {
    let one_of = |v: &[i64]| Ok(IfMatch::OneOf(v.to_vec()));
    assert_eq!(parse(&["\"3\""]), one_of(&[3]));
    assert_eq!(parse(&["\"3\", \"5\""]), one_of(&[3, 5]));
    assert_eq!(parse(&["\"3\",\"5\" ,, \"8\""]), one_of(&[3, 5, 8]));
    assert_eq!(parse(&["\"3\"", "\"5\""]), one_of(&[3, 5]), "two lines");
    // Tags that cannot match by the strong comparison name nothing.
    assert_eq!(parse(&["W/\"3\""]), one_of(&[]));
    assert_eq!(parse(&["W/\"3\", \"4\""]), one_of(&[4]));
    assert_eq!(parse(&["\"03\""]), one_of(&[]));
    assert_eq!(parse(&["\"+3\""]), one_of(&[]));
    assert_eq!(parse(&["\"abc\""]), one_of(&[]));
    assert_eq!(
        parse(&["\"a,b\", \"7\""]),
        one_of(&[7]),
        "a comma inside a tag"
    );
    assert_eq!(parse(&["\"\""]), one_of(&[]));
}

#[test]
fn values_that_are_not_entity_tags_are_bad_requests() {
    for bad in [
        &["3"][..],
        &["\"3"],
        &["W/3"],
        &["w/\"3\""],
        &["\"3\" \"4\""],
        &["\"3\"x"],
        &["*, \"3\""],
        &["*", "\"3\""],
        &[""],
        &[" , "],
        &["\"a b\""],
    ] {
        assert_eq!(parse(bad), Err(StatusCode::BAD_REQUEST), "{bad:?}");
    }
}

/// A task locked at `current`: the repository's check.
fn locked(current: i64, expected: Option<i64>) -> Result<i64, RepoError> {
    match expected {
        Some(e) if e != current => Err(RepoError::SequenceMismatch { current }),
        _ => Ok(current),
    }
}

#[test]
fn a_read_is_admitted_by_any_listed_sequence() {
    assert!(IfMatch::Any.admits(4));
    assert!(IfMatch::OneOf(vec![3, 4]).admits(4));
    assert!(!IfMatch::OneOf(vec![3, 5]).admits(4));
    assert!(!IfMatch::OneOf(vec![]).admits(4));
}

#[tokio::test]
async fn a_list_matches_when_any_listed_sequence_is_current() {
    let guard = |tags: &[i64], current: i64| {
        let condition = IfMatch::OneOf(tags.to_vec());
        async move { condition.guard(|e| async move { locked(current, e) }).await }
    };
    assert_eq!(guard(&[3, 5], 5).await.unwrap(), 5);
    assert_eq!(guard(&[5, 3], 5).await.unwrap(), 5);
    assert!(matches!(
        guard(&[3, 4], 5).await,
        Err(RepoError::SequenceMismatch { current: 5 })
    ));
    assert!(matches!(
        guard(&[], 5).await,
        Err(RepoError::SequenceMismatch { current: 5 })
    ));
    assert_eq!(
        IfMatch::Any
            .guard(|e| async move { locked(9, e) })
            .await
            .unwrap(),
        9
    );
}

#[tokio::test]
async fn each_attempt_is_checked_under_the_lock_and_attempts_are_bounded() {
    // The task moves on between attempts: 3 → 5 → 8 → ..., always to the
    // next listed value, until the list runs out.
    let current = Cell::new(3);
    let attempts = Cell::new(0);
    let condition = IfMatch::OneOf(vec![1, 3, 5, 8]);
    let result = condition
        .guard(|expected| {
            attempts.set(attempts.get() + 1);
            let now = current.get();
            current.set(match now {
                3 => 5,
                5 => 8,
                _ => 13,
            });
            async move { locked(now, expected) }
        })
        .await;
    // 1 (mismatch: 3) → 3 (mismatch: 5) → 5 (mismatch: 8) → 8 (mismatch: 13).
    assert!(matches!(
        result,
        Err(RepoError::SequenceMismatch { current: 13 })
    ));
    assert_eq!(attempts.get(), 4);
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn parse_text(text: &str) -> Option<Result<IfMatch, StatusCode>> {
        let value = HeaderValue::from_str(text).ok()?;
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_MATCH, value);
        Some(IfMatch::from_headers(&headers).map_err(|e| e.into_response().status()))
    }

    proptest! {
        /// Any header value is an answer (a condition or a 400), never a
        /// panic.
        #[test]
        fn any_value_is_answered(text in "[ -~]{0,40}") {
            if let Some(parsed) = parse_text(&text) {
                prop_assert!(parsed.is_ok() || parsed == Err(StatusCode::BAD_REQUEST));
            }
        }

        /// A list of tags as a client writes it parses to exactly its
        /// strong tags, in order; weak ones drop out.
        #[test]
        fn written_lists_read_back(tags in proptest::collection::vec((any::<bool>(), 0..i64::MAX), 1..6)) {
            let text = tags
                .iter()
                .map(|(weak, n)| if *weak { format!("W/\"{n}\"") } else { format!("\"{n}\"") })
                .collect::<Vec<_>>()
                .join(", ");
            let strong: Vec<i64> = tags.iter().filter(|(weak, _)| !weak).map(|(_, n)| *n).collect();
            prop_assert_eq!(parse_text(&text), Some(Ok(IfMatch::OneOf(strong))));
        }
    }
}
