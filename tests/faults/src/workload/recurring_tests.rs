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
fn a_completion_answered_200_that_the_database_does_not_show_is_lost() {
    // The client was told 1, 2 and 3 completed; the database shows 2
    // pending and no row of 3 at all.
    let rows = series(&[(1, true), (2, false)]);
    let answered = BTreeSet::from([1, 2, 3]);
    let mut verdict = check_series(&rows, &[2], &BTreeSet::new());
    assert_eq!(verdict.lost, 0, "the database alone sees nothing wrong");
    let checked = check_answered(&mut verdict, &rows, &answered, &BTreeSet::new());
    assert_eq!((checked, verdict.lost), (3, 2), "{verdict:?}");
    // Occurrence 2 reopened by the client since: not completed is right.
    let mut verdict = check_series(&rows, &[2], &BTreeSet::from([2]));
    check_answered(&mut verdict, &rows, &answered, &BTreeSet::from([2]));
    assert_eq!(verdict.lost, 1, "{verdict:?}");
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

/// Plants a successor nobody completed the way to (a copy of the
/// series' pending occurrence one further) in a real series: the check
/// must count exactly that one duplicate.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn on_the_stack_a_planted_extra_successor_is_caught_as_duplicated() {
    let run_id = format!("t{}", &Uuid::new_v4().simple().to_string()[..10]);
    let env = Env::from_env(&run_id, 1).expect("the stack's environment");
    let logs = [drive(&env, 0, 1, 1, Rng::new(1)).await];
    assert!(logs[0].problems.is_empty(), "{:?}", logs[0]);
    let db = env.db().await.expect("database");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut verdicts = read_all(&db, &logs).await.expect("read");
    while verdicts[0].lost > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        verdicts = read_all(&db, &logs).await.expect("read");
    }
    assert_eq!(
        verdicts[0],
        Verdict {
            completions: 1,
            ..Verdict::default()
        }
    );
    let planted = db
        .execute(
            "INSERT INTO tasks (id, user_id, title, status, priority, due_at, time_zone,
                                recurrence, created_at, updated_at, series_id, occurrence)
             SELECT gen_random_uuid(), user_id, title, 'pending', priority, due_at, time_zone,
                    recurrence, now(), now(), series_id, 3
             FROM tasks WHERE user_id = $1 AND title = $2 AND occurrence = 2",
            &[&logs[0].user, &logs[0].title],
        )
        .await
        .expect("planted");
    assert_eq!(planted, 1);
    let verdicts = read_all(&db, &logs).await.expect("read");
    assert_eq!(
        (verdicts[0].duplicated, verdicts[0].lost),
        (1, 0),
        "{verdicts:?}"
    );
}
