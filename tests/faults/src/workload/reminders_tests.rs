//! Tests of [`super`]: the pure checker on hand-made inputs, and the
//! workload alone on the stack.

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
