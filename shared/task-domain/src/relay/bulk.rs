//! What one daprd call of the relay carries, and what its answer settles.
//! Pure functions: the relay's I/O is in `relay.rs` and `pending.rs`.
//!
//! A call carries rows of one key and one topic (bulk publish is per
//! topic), taken in id order from the key's next unsent rows: the first
//! row's topic, skipping rows of other topics (they go in the next call;
//! per topic they stay in order, and no consumer reads two topics as one
//! sequence), and stopping at the first row that backs off, so nothing
//! overtakes it. A row that failed before (`attempts > 0`: refused, the
//! first failure of a partly failed call, or the head of a failed call)
//! goes out in a call of its own: should it fail again, nothing after it
//! was in that call, so the rows behind a failing row are written ahead
//! of it at most once (see [`settle`]). What a call leaves (`rest`, still
//! in id order) is planned again for the next call of the same read, so
//! one read of a key serves a call per topic.

use dapr_http::{BulkEntry, BulkReport};
use serde_json::Value;

use super::pending::PendingRow;
use crate::repo::{RepoError, corrupt};

/// What to do with a key's next rows.
#[derive(Debug)]
pub(super) enum Plan {
    /// Nothing unsent.
    Empty,
    /// The first unsent row backs off: the key waits.
    Blocked,
    /// Publish these rows (one topic, id order) in one call.
    Publish {
        topic: String,
        rows: Vec<PendingRow>,
        /// The rows this call leaves, in id order (other topics, rows past
        /// the byte budget, a row that backs off and all after it).
        rest: Vec<PendingRow>,
    },
}

/// The rows of the next call: at most `max_bytes` of events (at least one
/// row), so a call stays well under daprd's request-body limit (4 MiB by
/// default, `DefaultMaxRequestBodySize` in dapr `pkg/runtime/config.go`).
pub(super) fn plan(rows: Vec<PendingRow>, max_bytes: usize) -> Plan {
    let Some(first) = rows.first() else {
        return Plan::Empty;
    };
    if first.blocked {
        return Plan::Blocked;
    }
    let topic = first.topic.clone();
    if first.attempts > 0 {
        let mut rows = rows;
        let rest = rows.split_off(1);
        return Plan::Publish { topic, rows, rest };
    }
    let mut bytes = 0;
    let mut chosen = Vec::new();
    let mut rest = Vec::new();
    // Once a row backs off or the budget is spent, every later row stays.
    let mut closed = false;
    for row in rows {
        closed = closed || row.blocked;
        if closed || row.topic != topic {
            rest.push(row);
            continue;
        }
        bytes += row.payload.len();
        if bytes > max_bytes && !chosen.is_empty() {
            closed = true;
            rest.push(row);
            continue;
        }
        chosen.push(row);
    }
    Plan::Publish {
        topic,
        rows: chosen,
        rest,
    }
}

/// The bulk entries for `rows`: each row's stored CloudEvent, with its
/// outbox id as the entry id.
///
/// A single publish takes the trace from the request's `traceparent`
/// header; a bulk call has one header for many events, so each event
/// carries its own change's trace instead: daprd keeps a `traceid` the
/// event already has (components-contrib `pubsub/envelope.go`
/// `FromCloudEvent`), and consumers read `traceparent`.
pub(super) fn entries(rows: &[PendingRow]) -> Result<Vec<BulkEntry>, RepoError> {
    rows.iter()
        .map(|row| {
            let mut event: Value = serde_json::from_str(&row.payload).map_err(corrupt)?;
            if let (Some(tp), Some(fields)) = (&row.traceparent, event.as_object_mut())
                && !fields.contains_key("traceid")
            {
                fields.insert("traceid".into(), Value::String(tp.clone()));
                fields.insert("traceparent".into(), Value::String(tp.clone()));
            }
            Ok(BulkEntry::cloud_event(row.id.to_string(), event))
        })
        .collect()
}

/// How daprd's report splits a call's rows.
///
/// daprd 1.18.2 answers a partly failed bulk publish with 500 and
/// `failedEntries` (`pkg/api/http/http.go` `onBulkPublish`), which
/// components-contrib 1.18.3 fills with exactly the entries sarama failed
/// (`common/component/kafka/producer.go` `mapKafkaProducerErrors`); the
/// others were written. sarama (1.48.1) writes one partition's messages in
/// order, one batch in flight (`async_producer.go` `partitionMuter`), so
/// every entry before the first failed one is on the topic, in order. An
/// entry after it may be written too: a message failed on its own (larger
/// than `Producer.MaxMessageBytes`, the dispatcher's `returnError`), or a
/// batch failed by the broker without retry or out of retries
/// (`returnErrors`), unmutes the partition and the later batches go on.
///
/// So only the rows before the first failed one are marked sent. The
/// first failed row and every row after it stay pending, to go out again
/// in id order after it: an entry after the failure that daprd did write
/// is published twice, the stray copy ahead of the failed row, and
/// consumers deduplicate by event id. A report naming an entry that is not
/// in the call holds the whole call (nothing is known).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Settled {
    /// Written in order before any failure: mark them sent.
    pub sent: Vec<i64>,
    /// The first failed row and daprd's reason: it backs off and holds its
    /// key, as a refusal does.
    pub failed: Option<(i64, String)>,
    /// Rows after the failed one, left pending (to go out after it).
    pub held: usize,
    /// Of those, the ones daprd reports written: copies now on the topic
    /// ahead of the failed row.
    pub overtaken: usize,
}

/// Splits `ids` (the call's rows, in order) by `report`.
pub(super) fn settle(ids: &[i64], report: &BulkReport) -> Settled {
    if ids.is_empty() {
        return Settled::default();
    }
    let position = |entry: &str| ids.iter().position(|id| id.to_string() == entry);
    // An entry id the call does not have: hold everything from the start.
    let first = report
        .failed
        .iter()
        .map(|f| (position(&f.entry_id).unwrap_or(0), f))
        .min_by_key(|(at, _)| *at);
    let Some((at, failure)) = first else {
        return Settled {
            sent: ids.to_vec(),
            ..Settled::default()
        };
    };
    let after = &ids[at + 1..];
    let failed_after = after
        .iter()
        .filter(|id| report.failed.iter().any(|f| f.entry_id == id.to_string()))
        .count();
    Settled {
        sent: ids[..at].to_vec(),
        failed: Some((ids[at], failure.error.clone())),
        held: after.len(),
        overtaken: after.len() - failed_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dapr_http::FailedEntry;
    use proptest::prelude::*;
    use serde_json::json;

    fn row(id: i64, topic: &str, blocked: bool) -> PendingRow {
        PendingRow {
            id,
            topic: topic.into(),
            payload: format!("{{\"id\":\"e{id}\"}}"),
            traceparent: None,
            attempts: 0,
            blocked,
        }
    }

    fn ids(plan: &Plan) -> Vec<i64> {
        match plan {
            Plan::Publish { rows, .. } => rows.iter().map(|r| r.id).collect(),
            _ => Vec::new(),
        }
    }

    fn rest(plan: Plan) -> Vec<PendingRow> {
        match plan {
            Plan::Publish { rest, .. } => rest,
            _ => Vec::new(),
        }
    }

    /// Plans calls from one read until nothing is publishable: the topic
    /// and ids of each call.
    fn calls(mut rows: Vec<PendingRow>, max_bytes: usize) -> Vec<(String, Vec<i64>)> {
        let mut out = Vec::new();
        while let p @ Plan::Publish { .. } = plan(rows, max_bytes) {
            if let Plan::Publish { topic, .. } = &p {
                out.push((topic.clone(), ids(&p)));
            }
            rows = rest(p);
        }
        out
    }

    /// Topics a and b interleaved; row 4 backs off.
    fn two_topics_with_a_blocked_row() -> Vec<PendingRow> {
        vec![
            row(1, "a", false),
            row(2, "b", false),
            row(3, "a", false),
            row(4, "b", true),
            row(5, "a", false),
        ]
    }

    #[test]
    fn one_topic_per_call_up_to_the_first_blocked_row() {
        let plan = plan(two_topics_with_a_blocked_row(), 1 << 20);
        assert!(matches!(&plan, Plan::Publish { topic, .. } if topic == "a"));
        assert_eq!(ids(&plan), [1, 3], "row 5 must not overtake blocked row 4");
        assert!(matches!(
            super::plan(vec![row(1, "a", true), row(2, "a", false)], 1 << 20),
            Plan::Blocked
        ));
        assert!(matches!(super::plan(Vec::new(), 1 << 20), Plan::Empty));
    }

    #[test]
    fn one_read_serves_a_call_per_topic_and_stops_at_a_blocked_row() {
        assert_eq!(
            calls(two_topics_with_a_blocked_row(), 1 << 20),
            [("a".to_owned(), vec![1, 3]), ("b".to_owned(), vec![2])]
        );
    }

    proptest! {
        /// However the rows of a read are split into calls, each topic's
        /// rows go out in id order, none twice, and none at or after the
        /// first row that backs off: the same calls as reading the key
        /// again before each call.
        #[test]
        fn calls_from_one_read_keep_each_topic_in_order(
            spec in proptest::collection::vec((0u8..3, proptest::bool::weighted(0.1)), 0..40),
            budget_rows in 1usize..6,
        ) {
            let rows: Vec<PendingRow> = spec.iter().enumerate()
                .map(|(i, (t, b))| row(i as i64 + 1, &format!("t{t}"), *b))
                .collect();
            let size = rows.first().map_or(1, |r| r.payload.len());
            let planned = calls(rows.clone(), budget_rows * size);
            let first_blocked = rows.iter().position(|r| r.blocked).unwrap_or(rows.len());
            let mut published: Vec<i64> = planned.iter().flat_map(|(_, ids)| ids.clone()).collect();
            for (topic, ids) in &planned {
                prop_assert!(ids.windows(2).all(|w| w[0] < w[1]));
                prop_assert!(ids.iter().all(|id| rows[*id as usize - 1].topic == *topic));
            }
            published.sort_unstable();
            let expected: Vec<i64> = (1..=first_blocked as i64).collect();
            prop_assert_eq!(published, expected);
            // Per topic, calls follow each other in id order.
            for t in 0..3 {
                let topic = format!("t{t}");
                let seq: Vec<i64> = planned.iter().filter(|(x, _)| *x == topic)
                    .flat_map(|(_, ids)| ids.clone()).collect();
                prop_assert!(seq.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }

    #[test]
    fn a_call_stays_within_the_byte_budget_but_always_carries_a_row() {
        let rows: Vec<PendingRow> = (1..=10).map(|i| row(i, "a", false)).collect();
        let size = rows[0].payload.len();
        assert_eq!(ids(&plan(rows.clone(), 3 * size)), [1, 2, 3]);
        assert_eq!(ids(&plan(rows, 1)), [1]);
    }

    #[test]
    fn each_event_carries_its_own_trace() {
        let mut traced = row(7, "a", false);
        traced.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
        let mut kept = row(8, "a", false);
        kept.payload = r#"{"id":"e8","traceid":"t"}"#.into();
        kept.traceparent = Some("00-ffffffffffffffffffffffffffffffff-00f067aa0ba902b7-01".into());
        let entries = entries(&[traced, kept, row(9, "a", false)]).unwrap();
        let events: Vec<Value> = entries.iter().map(|e| e.event.clone()).collect();
        assert_eq!(
            events[0]["traceid"],
            json!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        assert_eq!(events[0]["traceparent"], events[0]["traceid"]);
        assert_eq!(
            events[1],
            json!({"id": "e8", "traceid": "t"}),
            "an event's own trace wins"
        );
        assert_eq!(events[2], json!({"id": "e9"}));
        assert_eq!(entries[0].entry_id, "7");
    }

    fn report(failed: &[&str]) -> BulkReport {
        BulkReport {
            failed: failed
                .iter()
                .map(|id| FailedEntry {
                    entry_id: (*id).into(),
                    error: format!("kafka: {id}"),
                })
                .collect(),
        }
    }

    #[test]
    fn nothing_after_the_first_failed_row_is_marked_sent() {
        // Entry 12 failed, 13 and 15 were written, 14 failed too.
        let settled = settle(&[10, 11, 12, 13, 14, 15], &report(&["14", "12"]));
        assert_eq!(
            settled,
            Settled {
                sent: vec![10, 11],
                failed: Some((12, "kafka: 12".into())),
                held: 3,
                overtaken: 2,
            }
        );
        assert_eq!(
            settle(&[1, 2], &report(&[])),
            Settled {
                sent: vec![1, 2],
                ..Settled::default()
            }
        );
    }

    #[test]
    fn a_report_naming_an_unknown_entry_holds_the_whole_call() {
        let settled = settle(&[1, 2, 3], &report(&["3", "99"]));
        assert!(settled.sent.is_empty());
        assert_eq!(settled.failed.map(|f| f.0), Some(1));
        assert_eq!((settled.held, settled.overtaken), (2, 1));
        assert_eq!(settle(&[], &report(&["1"])), Settled::default());
    }

    #[test]
    fn a_row_that_failed_before_goes_out_alone() {
        let mut failed = row(1, "a", false);
        failed.attempts = 2;
        let plan = plan(
            vec![failed, row(2, "a", false), row(3, "b", false)],
            1 << 20,
        );
        assert_eq!(ids(&plan), [1]);
        assert_eq!(rest(plan).iter().map(|r| r.id).collect::<Vec<_>>(), [2, 3]);
    }

    proptest! {
        /// Whatever daprd reports, a row is marked sent only if every row
        /// before it in the call was written: the sent rows are a prefix,
        /// the first failed row follows it, and the rest is held.
        #[test]
        fn only_a_written_prefix_is_marked_sent(failed in proptest::collection::vec(any::<bool>(), 1..50)) {
            let ids: Vec<i64> = (1..=failed.len() as i64).collect();
            let names: Vec<String> = ids.iter().zip(&failed).filter(|(_, f)| **f)
                .map(|(id, _)| id.to_string()).collect();
            let s = settle(&ids, &report(&names.iter().map(String::as_str).collect::<Vec<_>>()));
            let first_failed = failed.iter().position(|f| *f);
            let prefix = first_failed.unwrap_or(ids.len());
            prop_assert_eq!(&s.sent[..], &ids[..prefix]);
            prop_assert_eq!(s.failed.as_ref().map(|f| f.0), first_failed.map(|i| ids[i]));
            prop_assert_eq!(s.held, ids.len().saturating_sub(prefix + 1));
            let written_after = first_failed
                .map_or(0, |i| failed[i + 1..].iter().filter(|f| !**f).count());
            prop_assert_eq!(s.overtaken, written_after);
        }
    }
}
