//! Consumer lag, read with Kafka's own tool: `scripts/dev groups` runs
//! `kafka-consumer-groups --describe --all-groups` (ConsumerGroupCommand),
//! which prints per group, topic and partition the group's committed
//! offset, the partition's end offset and their difference (LAG).
//!
//! The CPU window of a create ends only when every consumer has committed
//! past every record the creates produced: work the creates caused
//! (recurring, notification, the gateway, audit) then falls inside it, not
//! into the idle baseline. daprd commits a record's offset after its app
//! answered, so a committed offset at the end offset means the work is done.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};

/// One partition as a consumer group sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The group's committed offset; `None` when it has committed nothing.
    pub committed: Option<i64>,
    /// The partition's end offset (`None` when the tool could not read it).
    pub end: Option<i64>,
    /// Whether a consumer of the group is connected (CONSUMER-ID not `-`).
    pub active: bool,
}

/// (group, topic, partition) → position.
pub type Positions = BTreeMap<(String, String, u32), Position>;

/// The rows of `--describe` output: a header line starting with `GROUP`
/// names the columns of the rows under it (one block per group); other
/// lines (blank, "Consumer group 'x' has no active members.") are skipped.
pub fn parse(output: &str) -> Positions {
    let mut columns: Vec<&str> = Vec::new();
    let mut out = Positions::new();
    for line in output.lines() {
        let cells: Vec<&str> = line.split_whitespace().collect();
        if cells.first() == Some(&"GROUP") {
            columns = cells;
            continue;
        }
        let cell = |name: &str| {
            columns
                .iter()
                .position(|c| *c == name)
                .and_then(|i| cells.get(i).copied())
        };
        let (Some(group), Some(topic), Some(partition)) =
            (cell("GROUP"), cell("TOPIC"), cell("PARTITION"))
        else {
            continue;
        };
        let Ok(partition) = partition.parse() else {
            continue;
        };
        let offset = |name: &str| cell(name).and_then(|v| v.parse::<i64>().ok());
        out.insert(
            (group.to_owned(), topic.to_owned(), partition),
            Position {
                committed: offset("CURRENT-OFFSET"),
                end: offset("LOG-END-OFFSET"),
                active: cell("CONSUMER-ID").is_some_and(|c| c != "-"),
            },
        );
    }
    out
}

/// What still holds the window open: each active group's partition that
/// received records since `before` and whose committed offset is not yet at
/// its end. A partition no record reached is never waited for (a group
/// that joined at the newest offset may have committed nothing there, and
/// a lag it had before the load is not the creates' work); groups with no
/// connected consumer (old benchmark or replica groups) are left out.
pub fn pending(before: &Positions, now: &Positions) -> Vec<String> {
    let mut out = Vec::new();
    for ((group, topic, partition), p) in now {
        if !p.active {
            continue;
        }
        let was = before.get(&(group.clone(), topic.clone(), *partition));
        let grew = match (was.and_then(|w| w.end), p.end) {
            (Some(then), Some(end)) => end > then,
            // A partition or group new since the first read, or an end
            // the tool could not read: wait unless it is caught up.
            _ => true,
        };
        let caught_up = matches!((p.committed, p.end), (Some(c), Some(e)) if c >= e);
        if grew && !caught_up {
            let lag = match (p.committed, p.end) {
                (Some(c), Some(e)) => (e - c).to_string(),
                _ => "unknown (nothing committed)".to_owned(),
            };
            out.push(format!("{group} {topic}/{partition} lag {lag}"));
        }
    }
    out
}

/// Reads every group's positions with `<dev> groups`.
pub async fn read(dev: &Path) -> anyhow::Result<Positions> {
    let out = tokio::process::Command::new(dev)
        .arg("groups")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {} groups", dev.display()))?;
    if !out.status.success() {
        bail!(
            "{} groups failed ({}): {}",
            dev.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let positions = parse(&String::from_utf8_lossy(&out.stdout));
    if positions.is_empty() {
        bail!("{} groups printed no consumer group", dev.display());
    }
    Ok(positions)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shape Kafka 3.9's ConsumerGroupCommand prints.
    const BEFORE: &str = "
Consumer group 'bench-centrifugo-1-2' has no active members.

GROUP              TOPIC        PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  CONSUMER-ID  HOST  CLIENT-ID
bench-centrifugo-1-2 task-updates 0        10              90              80   -            -     -

GROUP   TOPIC        PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  CONSUMER-ID          HOST        CLIENT-ID
audit   task-events  0          100             100             0    sarama-1-abc         /127.0.0.1  sarama
audit   task-events  1          -               7               -    sarama-1-abc         /127.0.0.1  sarama
audit   task-events  2          50              55              5    sarama-1-abc         /127.0.0.1  sarama
";

    fn now(audit0: (&str, &str), audit1: (&str, &str), audit2: (&str, &str)) -> String {
        format!(
            "GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID\n\
             bench-centrifugo-1-2 task-updates 0 10 120 110 - - -\n\
             audit task-events 0 {} {} x sarama-1-abc /127.0.0.1 sarama\n\
             audit task-events 1 {} {} x sarama-1-abc /127.0.0.1 sarama\n\
             audit task-events 2 {} {} x sarama-1-abc /127.0.0.1 sarama\n",
            audit0.0, audit0.1, audit1.0, audit1.1, audit2.0, audit2.1
        )
    }

    #[test]
    fn parses_every_block_by_its_header() {
        let p = parse(BEFORE);
        assert_eq!(p.len(), 4);
        let key = |g: &str, t: &str, n| (g.to_owned(), t.to_owned(), n);
        assert_eq!(
            p[&key("bench-centrifugo-1-2", "task-updates", 0)],
            Position {
                committed: Some(10),
                end: Some(90),
                active: false
            }
        );
        assert_eq!(
            p[&key("audit", "task-events", 1)],
            Position {
                committed: None,
                end: Some(7),
                active: true
            }
        );
        assert!(parse("no groups\n").is_empty());
    }

    #[test]
    fn a_partition_the_creates_reached_holds_until_committed_to_its_end() {
        let before = parse(BEFORE);
        // Partition 0 got 20 records, 5 of them not yet committed.
        let behind = parse(&now(("115", "120"), ("-", "7"), ("50", "55")));
        assert_eq!(pending(&before, &behind), ["audit task-events/0 lag 5"]);
        let done = parse(&now(("120", "120"), ("-", "7"), ("50", "55")));
        assert!(
            pending(&before, &done).is_empty(),
            "{:?}",
            pending(&before, &done)
        );
    }

    #[test]
    fn an_old_lag_or_an_inactive_group_never_holds_the_window() {
        let before = parse(BEFORE);
        // Partition 2 keeps the lag it had before; no record reached it.
        let same = parse(&now(("100", "100"), ("-", "7"), ("50", "55")));
        assert!(pending(&before, &same).is_empty());
        // But once records reach it, all of it must be committed.
        let reached = parse(&now(("100", "100"), ("-", "7"), ("56", "57")));
        assert_eq!(pending(&before, &reached), ["audit task-events/2 lag 1"]);
    }

    #[test]
    fn nothing_committed_where_records_arrived_is_pending() {
        let before = parse(BEFORE);
        let p = parse(&now(("100", "100"), ("-", "9"), ("55", "55")));
        assert_eq!(
            pending(&before, &p),
            ["audit task-events/1 lag unknown (nothing committed)"]
        );
    }

    #[test]
    fn a_group_new_since_the_first_read_is_waited_for() {
        let before = parse(BEFORE);
        let mut p = parse(&now(("100", "100"), ("-", "7"), ("55", "55")));
        p.insert(
            ("recurring".into(), "task-events".into(), 0),
            Position {
                committed: Some(3),
                end: Some(4),
                active: true,
            },
        );
        assert_eq!(pending(&before, &p), ["recurring task-events/0 lag 1"]);
    }
}
