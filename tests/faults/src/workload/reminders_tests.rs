//! Tests of [`super`]: the pure checker on hand-made inputs, and the
//! workload alone on the stack.

use super::check::{judge_all, unsettled};
use super::*;

#[test]
fn one_message_of_a_sent_firing_is_delivered() {
    assert_eq!(judge(Record::Sent, 1, true), Judgement::Delivered);
}

#[test]
fn a_doubled_message_is_duplicated_whatever_the_record() {
    for record in [
        Record::Sent,
        Record::Unknown,
        Record::Failed,
        Record::Absent,
    ] {
        assert_eq!(judge(record, 2, true), Judgement::Duplicated);
        assert_eq!(judge(record, 3, false), Judgement::Duplicated);
    }
}

#[test]
fn a_firing_that_never_arrived_is_lost_unless_recorded_failed_or_unknown() {
    for record in [Record::Sent, Record::Skipped, Record::Open, Record::Absent] {
        assert_eq!(judge(record, 0, true), Judgement::Lost, "{record:?}");
    }
    assert_eq!(judge(Record::Failed, 0, true), Judgement::FailedRecorded);
    assert_eq!(judge(Record::Unknown, 0, true), Judgement::Unknown);
    assert_eq!(judge(Record::Unknown, 1, true), Judgement::Unknown);
}

#[test]
fn a_missed_firing_is_a_problem_not_a_pass() {
    assert!(matches!(
        judge(Record::Missed, 0, true),
        Judgement::Problem(_)
    ));
}

#[test]
fn a_moved_or_cancelled_firing_may_arrive_at_most_once() {
    assert_eq!(judge(Record::Absent, 0, false), Judgement::Superseded);
    assert_eq!(judge(Record::Sent, 1, false), Judgement::Superseded);
    assert_eq!(judge(Record::Sent, 2, false), Judgement::Duplicated);
}

#[test]
fn unsettled_states_are_waited_for() {
    assert!(unsettled(judge(Record::Open, 0, true)));
    assert!(unsettled(judge(Record::Absent, 1, true)));
    assert!(!unsettled(judge(Record::Sent, 1, true)));
    assert!(!unsettled(judge(Record::Sent, 2, true)));
}

#[test]
fn record_states_parse_as_notification_writes_them() {
    assert_eq!(Record::parse("sent"), Record::Sent);
    assert_eq!(Record::parse("missed"), Record::Missed);
    assert_eq!(Record::parse("sending"), Record::Open);
    assert_eq!(Record::parse("retrying"), Record::Open);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn alone_on_the_stack_each_reminder_arrives_once_per_channel_and_device() {
    let scale = Scale {
        ops: 100,
        users: 3,
        sockets: 0,
        recurring: 0,
        reminders: 6,
        hostile: 0,
    };
    let tally = crate::workload::alone(
        3,
        move |env, phase| run(env, scale, 11, phase),
        |_| async {},
    )
    .await;
    assert!(tally.passed(), "{tally:#?}");
    // Email and push of at least the six first firings.
    assert!(tally.checked >= 12, "{tally:#?}");
}

/// One user with an address and a device (`respond`: what its push
/// service answers) and one reminder due in 5 s: the environment, the
/// push service, the receiver, the firing and its title.
async fn one_reminder(
    respond: Option<u16>,
) -> (Env, PushService, [Receiver; 1], [Firing; 1], String) {
    let run_id = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let env = Env::from_env(&run_id, 1).expect("the stack's environment");
    let push = PushService::start().await;
    let receivers = [receiver(&env, &push, &env.users[0], respond)
        .await
        .expect("receiver")];
    let api = crate::workload::as_user(&env, &env.task_api, &env.users[0]);
    let title = format!("faults-{run_id}-rem-one");
    let body = task_body(&title, Utc::now() + chrono::Duration::seconds(5));
    let until = Instant::now() + REQUEST_WAIT;
    let created = api
        .call(Method::POST, "/api/tasks", Some(&body), &[], until)
        .await;
    assert_eq!(created.status(), Some(StatusCode::CREATED), "{created:?}");
    let firings = [firing(0, created.body(), &title)];
    (env, push, receivers, firings, title)
}

/// Plants a second copy of a delivered reminder's mail in mailpit
/// (its send API, `POST /api/v1/send`): the checker must count the
/// email as duplicated and leave the push delivered.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn on_the_stack_a_planted_second_mail_is_caught_as_duplicated() {
    let (env, push, receivers, firings, title) = one_reminder(None).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let judged = loop {
        let judged = judge_all(&env, &push, &receivers, &firings)
            .await
            .expect("judged");
        if judged.iter().all(|(_, j)| *j == Judgement::Delivered) || Instant::now() > deadline {
            break judged;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(
        judged.iter().all(|(_, j)| *j == Judgement::Delivered),
        "{judged:?}"
    );
    let planted = env
        .http
        .post(format!("{}/api/v1/send", env.mailpit))
        .json(&json!({
            "From": {"Email": "planted@example.test"},
            "To": [{"Email": receivers[0].address}],
            "Subject": format!("Reminder: {title}"),
            "Text": "a planted second copy",
        }))
        .send()
        .await
        .expect("mailpit");
    assert!(planted.status().is_success(), "{planted:?}");
    let judged = judge_all(&env, &push, &receivers, &firings)
        .await
        .expect("judged");
    let by_channel: Vec<Judgement> = judged.iter().map(|(_, j)| *j).collect();
    assert_eq!(
        by_channel,
        [Judgement::Duplicated, Judgement::Delivered],
        "{judged:?}"
    );
}

/// A device whose push service answers 500 to every push: notification
/// retries (1 s, 5 s, 25 s), then records the delivery failed. The check
/// must count it as failed and recorded, finding it on the admins' failed
/// list and on `reminders-dlq`, with the email delivered beside it.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn on_the_stack_a_failing_device_is_recorded_failed_and_dead_lettered() {
    let (env, push, receivers, firings, _) = one_reminder(Some(500)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let tally = check(&env, &push, &receivers, &firings, Tally::new("reminders")).await;
    let tally = tally.expect("checked");
    assert_eq!(
        (
            tally.checked,
            tally.failed_recorded,
            tally.lost,
            tally.duplicated
        ),
        (2, 1, 0, 0),
        "{tally:#?}"
    );
    assert!(tally.problems.is_empty(), "{tally:#?}");
}
