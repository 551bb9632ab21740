//! Tests of [`super`]: the pure checker on hand-made inputs, and the
//! workload alone on the stack.

use super::*;

fn stream(head: i64) -> Stream {
    Stream {
        epoch: "e1".into(),
        head,
        entries: (1..=head).map(|o| (o, (format!("t{o}"), o))).collect(),
    }
}

fn event(offset: i64) -> Frame {
    Frame::Event {
        epoch: "e1".into(),
        offset,
        task_id: format!("t{offset}"),
        sequence: offset,
    }
}

fn frames(offsets: &[i64]) -> Vec<Frame> {
    offsets.iter().map(|&o| event(o)).collect()
}

#[test]
fn the_whole_stream_once_in_order_passes() {
    let verdict = check_client(&frames(&[1, 2, 3, 4]), &stream(4));
    assert_eq!(
        verdict,
        Verdict {
            checked: 4,
            ..Verdict::default()
        }
    );
    // Events past the head the clients were waited for are fine.
    assert!(
        check_client(&frames(&[1, 2, 3, 4, 5]), &stream(4))
            .problems
            .is_empty()
    );
}

#[test]
fn a_doubled_event_is_duplicated() {
    let verdict = check_client(&frames(&[1, 2, 2, 3]), &stream(3));
    assert_eq!((verdict.duplicated, verdict.lost), (1, 0));
}

#[test]
fn a_missing_event_is_lost() {
    let verdict = check_client(&frames(&[1, 3]), &stream(3));
    assert_eq!((verdict.duplicated, verdict.lost), (0, 1));
    assert!(
        verdict
            .problems
            .iter()
            .any(|p| p.contains("offset 3 came after 1"))
    );
}

#[test]
fn events_out_of_order_are_a_problem() {
    let verdict = check_client(&frames(&[1, 3, 2]), &stream(3));
    assert_eq!((verdict.duplicated, verdict.lost), (0, 0));
    assert_eq!(verdict.problems.len(), 2, "{verdict:?}");
}

#[test]
fn an_event_unlike_the_database_is_a_problem() {
    let mut received = frames(&[1, 2]);
    received[1] = Frame::Event {
        epoch: "e1".into(),
        offset: 2,
        task_id: "t9".into(),
        sequence: 2,
    };
    assert_eq!(check_client(&received, &stream(2)).problems.len(), 1);
}

#[test]
fn a_reset_covers_only_a_history_that_is_gone() {
    let reset = Frame::Reset {
        from_epoch: "e1".into(),
        from_offset: 1,
        to_epoch: "e1".into(),
        to_offset: 3,
    };
    let received = vec![event(1), reset, event(4)];
    // The database still holds offset 2: the reset skipped it unlawfully.
    let verdict = check_client(&received, &stream(4));
    assert_eq!(verdict.lost, 2, "{verdict:?}");
    // Pruned history: the reset is the protocol's catch-up.
    let mut pruned = stream(4);
    pruned.entries.remove(&2);
    pruned.entries.remove(&3);
    let verdict = check_client(&received, &pruned);
    assert_eq!(
        verdict,
        Verdict {
            checked: 4,
            ..Verdict::default()
        }
    );
}

#[test]
fn a_reset_to_a_new_epoch_is_covered_by_the_reload() {
    let received = vec![
        Frame::Event {
            epoch: "e0".into(),
            offset: 1,
            task_id: "old".into(),
            sequence: 1,
        },
        Frame::Reset {
            from_epoch: "e0".into(),
            from_offset: 1,
            to_epoch: "e1".into(),
            to_offset: 2,
        },
        event(3),
    ];
    let verdict = check_client(&received[1..], &stream(3));
    assert_eq!(
        verdict,
        Verdict {
            checked: 3,
            ..Verdict::default()
        }
    );
    // The old epoch's event itself is a problem: it is not this history.
    assert_eq!(check_client(&received, &stream(3)).problems.len(), 1);
}

proptest::proptest! {
    /// Any stream received whole passes; any doubled offset is one
    /// duplicate; any dropped offset one loss.
    #[test]
    fn planted_faults_are_counted_exactly(head in 1i64..200, pick in 0i64..200) {
        let all: Vec<i64> = (1..=head).collect();
        proptest::prop_assert!(check_client(&frames(&all), &stream(head)).problems.is_empty());
        let k = pick % head + 1;
        let mut doubled = all.clone();
        doubled.insert(k as usize, k);
        let verdict = check_client(&frames(&doubled), &stream(head));
        proptest::prop_assert_eq!((verdict.duplicated, verdict.lost), (1, 0));
        let dropped: Vec<i64> = all.iter().copied().filter(|&o| o != k).collect();
        let verdict = check_client(&frames(&dropped), &stream(head));
        proptest::prop_assert_eq!((verdict.duplicated, verdict.lost), (0, 1));
    }
}

/// Changes for each user while the clients follow: creates, then an
/// update and a completion of each.
async fn changes(env: &Env, per_user: usize) {
    for user in &env.users {
        let api = crate::workload::as_user(env, &env.task_api, user);
        let until = Instant::now() + REQUEST_WAIT;
        for n in 0..per_user {
            let body = json!({"title": format!("sockets {n}")});
            let created = api
                .call(Method::POST, "/api/tasks", Some(&body), &[], until)
                .await;
            let id = created.body()["id"].as_str().expect("created").to_owned();
            let patch = json!({"title": format!("sockets {n} again")});
            let path = format!("/api/tasks/{id}");
            api.call(Method::PATCH, &path, Some(&patch), &[], until)
                .await;
            api.call(Method::POST, &format!("{path}/complete"), None, &[], until)
                .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn alone_on_the_stack_every_client_sees_its_stream_once_in_order() {
    let scale = Scale {
        ops: 100,
        users: 2,
        sockets: 6,
        recurring: 0,
        reminders: 0,
        hostile: 0,
    };
    let tally = crate::workload::alone(
        2,
        move |env, phase| run(env, scale, 3, phase),
        |env| async move {
            // Long enough for the resuming clients to cut and resume.
            changes(&env, 12).await;
            // The checker, fed the real stream with one event doubled
            // and one left out, counts exactly that.
            let db = env.db().await.expect("database");
            let user = &env.users[0];
            let head: i64 = db
                .query_one(
                    "SELECT last_offset FROM user_streams WHERE user_id = $1",
                    &[user],
                )
                .await
                .expect("head")
                .get(0);
            let stream = read_stream(&db, user, head).await.expect("stream");
            assert_eq!(
                stream.entries.len() as i64,
                head,
                "12 creates, updates and completions"
            );
            let whole: Vec<Frame> = stream
                .entries
                .iter()
                .map(|(&offset, (task_id, sequence))| Frame::Event {
                    epoch: stream.epoch.clone(),
                    offset,
                    task_id: task_id.clone(),
                    sequence: *sequence,
                })
                .collect();
            assert!(check_client(&whole, &stream).problems.is_empty());
            let mut doubled = whole.clone();
            doubled.insert(5, whole[4].clone());
            assert_eq!(check_client(&doubled, &stream).duplicated, 1);
            let mut dropped = whole.clone();
            dropped.remove(7);
            assert_eq!(check_client(&dropped, &stream).lost, 1);
        },
    )
    .await;
    assert!(tally.passed(), "{tally:#?}");
    // 6 clients of 2 users, 36 offsets per user.
    assert!(tally.checked >= 6 * 36, "{tally:#?}");
}
