//! Tests of [`super`]: the pure checker on hand-made inputs, and the
//! workload alone on the stack.

use super::*;

fn series(rows: &[(i32, bool)]) -> Vec<Occurrence> {
    rows.iter()
        .map(|&(occurrence, completed)| Occurrence {
            occurrence,
            completed,
            series_id: Some(Uuid::from_u128(7)),
        })
        .collect()
}

#[test]
fn every_completion_with_one_successor_passes() {
    let rows = series(&[(1, true), (2, true), (3, true), (4, false)]);
    let verdict = check_series(&rows, &[2, 3, 4], &BTreeSet::new());
    assert_eq!(
        verdict,
        Verdict {
            completions: 3,
            ..Verdict::default()
        }
    );
}

#[test]
fn a_missing_successor_is_lost() {
    let rows = series(&[(1, true), (2, true)]);
    let verdict = check_series(&rows, &[2], &BTreeSet::new());
    assert_eq!((verdict.completions, verdict.lost), (2, 1));
    assert_eq!(verdict.duplicated, 0);
    assert!(verdict.problems[0].contains("occurrence 2"), "{verdict:?}");
}

#[test]
fn a_successor_deleted_since_is_kept_by_its_advance_mark() {
    let rows = series(&[(1, true)]);
    assert_eq!(check_series(&rows, &[2], &BTreeSet::new()).lost, 0);
}

#[test]
fn a_doubled_successor_is_duplicated() {
    let rows = series(&[(1, true), (2, false), (2, false)]);
    let verdict = check_series(&rows, &[2], &BTreeSet::new());
    assert_eq!((verdict.duplicated, verdict.lost), (1, 0));
}

#[test]
fn a_successor_of_an_uncompleted_occurrence_is_duplicated() {
    // Occurrence 3 exists although 2 was never completed: created by a
    // completion that already had its successor.
    let rows = series(&[(1, true), (2, false), (3, false)]);
    let verdict = check_series(&rows, &[2, 3], &BTreeSet::new());
    assert_eq!(verdict.duplicated, 1, "{verdict:?}");
    // Unless the client itself reopened 2 after its successor came.
    let reopened = BTreeSet::from([2]);
    assert_eq!(check_series(&rows, &[2, 3], &reopened).duplicated, 0);
}

#[test]
fn a_forked_series_is_reported() {
    let mut rows = series(&[(1, true), (2, false)]);
    rows[1].series_id = Some(Uuid::from_u128(8));
    let verdict = check_series(&rows, &[2], &BTreeSet::new());
    assert!(verdict.problems.iter().any(|p| p.contains("forked")));
}

proptest::proptest! {
    /// A healthy series of any length passes; doubling any one
    /// occurrence row is caught as exactly one duplicate, and cutting
    /// the series after any completion as exactly one loss.
    #[test]
    fn planted_faults_are_counted_exactly(n in 1i32..30, pick in 0usize..30) {
        let mut rows: Vec<(i32, bool)> = (1..=n).map(|k| (k, true)).collect();
        rows.push((n + 1, false));
        let advances: Vec<i32> = (2..=n + 1).collect();
        let none = BTreeSet::new();
        proptest::prop_assert_eq!(check_series(&series(&rows), &advances, &none).lost, 0);
        let i = pick % rows.len();
        let mut doubled = rows.clone();
        doubled.push(rows[i]);
        let verdict = check_series(&series(&doubled), &advances, &none);
        proptest::prop_assert_eq!((verdict.duplicated, verdict.lost), (1, 0));
        // Cut after a completed occurrence m: its successor is lost.
        let m = (pick as i32 % n) + 1;
        let cut: Vec<(i32, bool)> = rows.iter().copied().filter(|r| r.0 <= m).collect();
        let kept: Vec<i32> = advances.iter().copied().filter(|a| *a <= m).collect();
        let verdict = check_series(&series(&cut), &kept, &none);
        proptest::prop_assert_eq!(verdict.duplicated, 0);
        proptest::prop_assert_eq!(verdict.lost, 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn alone_on_the_stack_every_completion_has_one_successor() {
    let scale = Scale {
        ops: 100,
        users: 2,
        sockets: 0,
        recurring: 3,
        reminders: 0,
        hostile: 0,
    };
    let tally =
        crate::workload::alone(2, move |env, phase| run(env, scale, 7, phase), |_| async {}).await;
    assert!(tally.passed(), "{tally:#?}");
    // 3 series of 3 steps, each completion checked once.
    assert!(tally.checked >= 9, "{tally:#?}");
}
