//! Reading what went through Kafka: a topic's records from the beginning,
//! with `scripts/dev topic` (Kafka's console consumer). A key's records
//! share a partition, and the console consumer prints each partition in
//! its order, so one key's records come out in the order Kafka holds them.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::Stack;

/// How long one read of a topic may take. The topics hold every earlier
/// test's events and are read from the beginning by a JVM competing with the
/// rest of the suite for two cores: CI once needed more than the console
/// consumer's default 50 s cap for 1,000 of them.
pub const READ_WAIT: Duration = Duration::from_secs(300);
const READ_CAP: Duration = Duration::from_secs(330);

/// The records of `topic` that `keep` accepts, in each partition's order,
/// read until `expected` distinct event ids are seen (or [`READ_WAIT`]).
/// The console consumer only exits after 10 s without a record, which never
/// comes while other tests keep publishing, so the read stops itself; if
/// the consumer ends early (the shared stack restarted under it), it reads
/// again.
pub async fn read(
    stack: &Stack,
    topic: &str,
    keep: impl Fn(&Value) -> bool,
    expected: usize,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + READ_WAIT;
    loop {
        let (records, seen) = read_once(stack, topic, &keep, expected, deadline).await;
        if seen >= expected || tokio::time::Instant::now() >= deadline {
            return records;
        }
        eprintln!(
            "{topic}: the console consumer ended after {seen} of {expected} events; reading again"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn read_once(
    stack: &Stack,
    topic: &str,
    keep: &impl Fn(&Value) -> bool,
    expected: usize,
    deadline: tokio::time::Instant,
) -> (Vec<Value>, usize) {
    let mut child = tokio::process::Command::new(&stack.dev_script)
        .args(["topic", topic, "20", &READ_CAP.as_secs().to_string()])
        .stdout(std::process::Stdio::piped())
        // Its own process group, so the JVM under the script stops with it.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run scripts/dev topic: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let (mut records, mut ids) = (Vec::new(), HashSet::new());
    while ids.len() < expected {
        let Ok(Ok(Some(line))) = tokio::time::timeout_at(deadline, lines.next_line()).await else {
            break;
        };
        let Ok(record) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if keep(&record) {
            ids.insert(record["id"].as_str().unwrap_or_default().to_owned());
            records.push(record);
        }
    }
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", "--", &format!("-{pid}")])
            .status()
            .await;
    }
    let _ = child.wait().await;
    (records, ids.len())
}

/// The event ids of `records` in order, each once, at its first copy: the
/// order a consumer that deduplicates by event id sees.
pub fn first_copies(records: &[Value]) -> Vec<String> {
    let mut seen = HashSet::new();
    records
        .iter()
        .filter_map(|r| r["id"].as_str())
        .filter(|id| seen.insert(id.to_string()))
        .map(str::to_owned)
        .collect()
}
