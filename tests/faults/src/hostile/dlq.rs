//! The dead-letter invariant: from the run's start to its end, the -dlq
//! topics hold only the poison the hostile workload published on purpose,
//! and every piece of it. Kafka is read with the broker's own tools (as
//! `scripts/dlq` does: java on the cached Kafka jars, through
//! scripts/lib/kafka.sh's `kafka_java`): the end offsets at the start, then
//! each partition from there to its end offsets at the end.
//!
//! Each subscriber of a topic dead-letters its own copy of a poison event
//! (audit and recurring both read task-events), so one id may stand there
//! more than once; the right id on another -dlq topic is a finding, not
//! another run's poison. notification publishes a report of each failed
//! delivery to reminders-dlq (`com.todo.notification.failed`,
//! functions/notification/src/history.rs, id `<delivery key>|<attempts>`,
//! data the delivery record): one of this run's users must be a delivery
//! this run recorded failed or unknown ([`Run::failed`]), one of another
//! user belongs to another run; anything else is a finding.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

/// The dead-letter topics (scripts/lib/kafka.sh's KAFKA_TOPICS).
pub const TOPICS: [&str; 3] = ["task-events-dlq", "reminders-dlq", "task-updates-dlq"];
/// The `source` of the poison the hostile workload makes.
pub const SOURCE: &str = "/todo-events/faults-hostile";
/// The failed-delivery report notification puts on reminders-dlq.
pub const FAILED_REPORT: &str = "com.todo.notification.failed";

/// `(topic, partition) → offset`.
pub type Offsets = BTreeMap<(String, u32), u64>;

/// One record read from a dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    /// The CloudEvent's id and type, if the value is one.
    pub id: Option<String>,
    pub event_type: Option<String>,
    pub source: Option<String>,
    /// `data.user_id`: whose delivery a failure report is.
    pub user: Option<String>,
}

/// What the judge knows of this run besides its poison.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Run {
    /// The prefix of every user of the run (`faults-<run id>-`).
    pub user_prefix: String,
    /// The keys (`delivery|<reminder>|<fire ms>|<target>`) of this run's
    /// deliveries notification holds failed or unknown.
    pub failed: BTreeSet<String>,
}

impl Run {
    fn owns(&self, user: Option<&str>) -> bool {
        user.is_some_and(|u| u.starts_with(&self.user_prefix))
    }
}

/// The delivery key a failure report stands for: its id less the attempt
/// count.
pub fn report_key(id: &str) -> Option<&str> {
    id.rsplit_once('|').map(|(key, _)| key)
}

/// What the dead-letter topics held after the run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Records of poison injected on purpose (copies included).
    pub poison: usize,
    /// Failed-delivery reports (the reminders workload's).
    pub reports: usize,
    /// Poison another hostile run injected (two runs on one stack), and
    /// failure reports of other runs' users.
    pub other_runs: usize,
    /// Injected poison ids never seen on their topic's -dlq.
    pub missing: Vec<String>,
    /// Records nobody injected: a finding each.
    pub foreign: Vec<String>,
}

/// Poison sent on purpose: id → (the -dlq topic it goes to, whether it
/// must be there: daprd took the publish; a publish whose answer was lost
/// may or may not have reached the topic).
pub type Injected = BTreeMap<String, (String, bool)>;

/// Compares the records with the poison injected and this run's failed
/// deliveries.
pub fn judge(records: &[Record], expected: &Injected, run: &Run) -> Verdict {
    let mut v = Verdict::default();
    let mut seen: BTreeSet<(&str, &str)> = BTreeSet::new();
    for r in records {
        let id = r.id.as_deref().unwrap_or("");
        let report = r.topic == "reminders-dlq" && r.event_type.as_deref() == Some(FAILED_REPORT);
        if let Some((topic, _)) = expected.get(id) {
            if *topic == r.topic {
                v.poison += 1;
                seen.insert((id, r.topic.as_str()));
            } else {
                v.foreign.push(format!(
                    "{}: {id} (this run's poison, due on {topic})",
                    r.topic
                ));
            }
        } else if report && run.owns(r.user.as_deref()) {
            if report_key(id).is_some_and(|key| run.failed.contains(key)) {
                v.reports += 1;
            } else {
                v.foreign.push(format!(
                    "{}: {id} (a failure report of a delivery this run has not failed)",
                    r.topic
                ));
            }
        } else if report || r.source.as_deref() == Some(SOURCE) {
            v.other_runs += 1;
        } else {
            let what = r.event_type.as_deref().unwrap_or("not a CloudEvent");
            v.foreign.push(format!(
                "{}: {} ({what})",
                r.topic,
                r.id.as_deref().unwrap_or("-")
            ));
        }
    }
    v.missing = expected
        .iter()
        .filter(|(id, (topic, must))| *must && !seen.contains(&(id.as_str(), topic.as_str())))
        .map(|(id, (topic, _))| format!("{topic}: {id}"))
        .collect();
    v
}

/// Parses GetOffsetShell's `topic:partition:offset` lines.
pub fn parse_offsets(out: &str) -> Offsets {
    let mut found = Offsets::new();
    for line in out.lines() {
        let mut parts = line.trim().rsplitn(3, ':');
        let (Some(offset), Some(partition), Some(topic)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if let (Ok(offset), Ok(partition)) = (offset.parse(), partition.parse()) {
            found.insert((topic.to_owned(), partition), offset);
        }
    }
    found
}

/// One record's value (a line of ConsoleConsumer's output).
pub fn parse_record(topic: &str, line: &str) -> Record {
    let event: Option<Value> = serde_json::from_str(line).ok();
    let field = |k: &str| {
        event
            .as_ref()
            .and_then(|e| e[k].as_str())
            .map(str::to_owned)
    };
    Record {
        topic: topic.to_owned(),
        id: field("id"),
        event_type: field("type"),
        source: field("source"),
        user: event
            .as_ref()
            .and_then(|e| e["data"]["user_id"].as_str())
            .map(str::to_owned),
    }
}

/// Runs a Kafka tool class with `args` through scripts/lib/kafka.sh.
async fn kafka(repo: &Path, args: &[String]) -> anyhow::Result<String> {
    let script = "source scripts/lib/common.sh && source scripts/lib/kafka.sh \
                  && mkdir -p \"$KAFKA_DATA\" && kafka_write_log_config \
                  && kafka_java \"$@\" --bootstrap-server \"$KAFKA_BOOTSTRAP\"";
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("kafka")
        .args(args)
        .current_dir(repo)
        .output()
        .await
        .context("running a Kafka tool")?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            args.first().map(String::as_str).unwrap_or("kafka"),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The end offsets of every dead-letter topic now.
pub async fn end_offsets(repo: &Path) -> anyhow::Result<Offsets> {
    let mut all = Offsets::new();
    for topic in TOPICS {
        let args = [
            "org.apache.kafka.tools.GetOffsetShell",
            "--topic",
            topic,
            "--time",
            "-1",
        ]
        .map(str::to_owned);
        all.extend(parse_offsets(&kafka(repo, &args).await?));
    }
    if all.is_empty() {
        bail!("no offsets for {TOPICS:?}: is Kafka up?");
    }
    Ok(all)
}

/// Every record written to the dead-letter topics since `start`.
pub async fn records_since(repo: &Path, start: &Offsets) -> anyhow::Result<Vec<Record>> {
    let end = end_offsets(repo).await?;
    let mut records = Vec::new();
    for ((topic, partition), last) in &end {
        let from = start
            .get(&(topic.clone(), *partition))
            .copied()
            .unwrap_or(0);
        let count = last.saturating_sub(from);
        if count == 0 {
            continue;
        }
        let args = [
            "org.apache.kafka.tools.consumer.ConsoleConsumer".to_owned(),
            "--topic".into(),
            topic.clone(),
            "--partition".into(),
            partition.to_string(),
            "--offset".into(),
            from.to_string(),
            "--max-messages".into(),
            count.to_string(),
            "--timeout-ms".into(),
            "20000".into(),
        ];
        let out = kafka(repo, &args).await?;
        let lines: Vec<&str> = out.lines().take(count as usize).collect();
        if (lines.len() as u64) < count {
            bail!(
                "{topic}:{partition}: read {} of {count} records",
                lines.len()
            );
        }
        records.extend(lines.into_iter().map(|l| parse_record(topic, l)));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(topic: &str, id: &str, kind: &str) -> Record {
        Record {
            topic: topic.into(),
            id: Some(id.into()),
            event_type: Some(kind.into()),
            source: Some("/todo-events/e2e".into()),
            user: None,
        }
    }

    fn run() -> Run {
        Run {
            user_prefix: "faults-r1-".into(),
            failed: BTreeSet::from(["delivery|rem|1000|email".to_owned()]),
        }
    }

    fn report(id: &str, user: &str) -> Record {
        Record {
            user: Some(user.into()),
            ..record("reminders-dlq", id, FAILED_REPORT)
        }
    }

    proptest::proptest! {
        /// Records made only of injected poison (any number of copies) and
        /// reports are never foreign; what is missing is exactly the
        /// must-arrive poison with no copy.
        #[test]
        fn injected_poison_is_never_foreign(
            injected in proptest::collection::vec((0usize..3, proptest::bool::ANY, 0usize..3), 0..12),
            reports in 0usize..3,
        ) {
            let mut expected = Injected::new();
            let mut records = Vec::new();
            let mut want_missing = Vec::new();
            for (n, (topic, must, copies)) in injected.iter().enumerate() {
                let (id, topic) = (format!("p{n}"), TOPICS[*topic].to_owned());
                expected.insert(id.clone(), (topic.clone(), *must));
                for _ in 0..*copies {
                    records.push(record(&topic, &id, "com.todo.task.sync"));
                }
                if *must && *copies == 0 {
                    want_missing.push(format!("{topic}: {id}"));
                }
            }
            for n in 0..reports {
                records.push(report(&format!("delivery|rem|1000|email|{n}"), "faults-r1-0"));
            }
            let v = judge(&records, &expected, &run());
            want_missing.sort();
            let mut missing = v.missing.clone();
            missing.sort();
            proptest::prop_assert!(v.foreign.is_empty());
            proptest::prop_assert_eq!(missing, want_missing);
            proptest::prop_assert_eq!(v.reports, reports);
            proptest::prop_assert_eq!(v.poison + v.reports, records.len());
        }
    }

    #[test]
    fn offsets_are_read_from_the_tool_output() {
        let out = "task-events-dlq:0:12\ntask-events-dlq:2:7\n\nnoise\n";
        let o = parse_offsets(out);
        assert_eq!(o.len(), 2);
        assert_eq!(o[&("task-events-dlq".to_owned(), 2)], 7);
    }

    #[test]
    fn a_record_is_its_event_id_and_type_or_nothing() {
        let r = parse_record("reminders-dlq", r#"{"id":"x","type":"t","data":{}}"#);
        assert_eq!(
            (r.id.as_deref(), r.event_type.as_deref()),
            (Some("x"), Some("t"))
        );
        assert_eq!(parse_record("t", "{not json").id, None);
    }

    #[test]
    fn only_injected_poison_and_reports_pass() {
        let expected = Injected::from([
            ("p1".to_owned(), ("task-events-dlq".to_owned(), true)),
            ("p2".to_owned(), ("task-updates-dlq".to_owned(), true)),
            // A publish whose answer was lost, never arrived: fine.
            ("p3".to_owned(), ("reminders-dlq".to_owned(), false)),
        ]);
        let records = [
            record("task-events-dlq", "p1", "com.todo.task.completed"),
            // audit's and recurring's copies of one poison event.
            record("task-events-dlq", "p1", "com.todo.task.completed"),
            record("task-updates-dlq", "p2", "com.todo.task.sync"),
            report("delivery|rem|1000|email|3", "faults-r1-4"),
            // Another run's user's report.
            report("delivery|x|1|push-d|1", "someone"),
        ];
        let v = judge(&records, &expected, &run());
        assert_eq!((v.poison, v.reports, v.other_runs), (3, 1, 1));
        assert!(v.missing.is_empty() && v.foreign.is_empty(), "{v:?}");
    }

    #[test]
    fn a_stray_record_and_a_missing_poison_are_findings() {
        let expected = Injected::from([("p1".to_owned(), ("task-events-dlq".to_owned(), true))]);
        let records = [
            // The right id on the wrong topic is not it.
            record("reminders-dlq", "p1", "com.todo.task.completed"),
            record("task-events-dlq", "someone-else", "com.todo.task.created"),
            Record {
                topic: "task-updates-dlq".into(),
                id: None,
                event_type: None,
                source: None,
                user: None,
            },
            // Another hostile run's poison is poison on purpose too.
            Record {
                source: Some(SOURCE.into()),
                ..record("task-events-dlq", "p9", "com.todo.task.completed")
            },
        ];
        let v = judge(&records, &expected, &run());
        assert_eq!(v.missing, ["task-events-dlq: p1"]);
        assert_eq!(v.foreign.len(), 3, "{v:?}");
        assert_eq!(v.other_runs, 1, "{v:?}");
    }

    #[test]
    fn this_runs_poison_on_the_wrong_topic_is_a_finding() {
        let expected = Injected::from([("p1".to_owned(), ("task-events-dlq".to_owned(), true))]);
        let records = [
            record("task-events-dlq", "p1", "com.todo.task.completed"),
            Record {
                source: Some(SOURCE.into()),
                ..record("task-updates-dlq", "p1", "com.todo.task.completed")
            },
        ];
        let v = judge(&records, &expected, &run());
        assert_eq!((v.poison, v.other_runs), (1, 0), "{v:?}");
        assert_eq!(v.foreign.len(), 1, "{v:?}");
    }

    #[test]
    fn a_report_of_this_run_must_be_a_failed_or_unknown_delivery() {
        let records = [
            report("delivery|rem|1000|email|2", "faults-r1-0"),
            // The same user, a delivery notification holds as sent.
            report("delivery|rem|1000|push-d|1", "faults-r1-0"),
            // No user: not this run's, but a report is no poison either.
            record("reminders-dlq", "delivery|q|1|email|1", FAILED_REPORT),
        ];
        let v = judge(&records, &Injected::new(), &run());
        assert_eq!((v.reports, v.other_runs), (1, 1), "{v:?}");
        assert_eq!(v.foreign.len(), 1, "{v:?}");
        assert_eq!(
            report_key("delivery|a|1|email|3"),
            Some("delivery|a|1|email")
        );
    }
}
