//! Two sync-gateway replicas against the real stack: the stack's gateway
//! (port 8090) and a second one that this test starts with
//! `./scripts/dev replica start sync-gateway` (port 8091, its own daprd and
//! its own Kafka consumer group, as a second pod gets in the cluster) and
//! stops at the end. Every replica must receive every `task-updates` event
//! and hand each only to its own sockets of that event's user.
//!
//! Its own test binary, so the restart test in `sync_gateway.rs` never
//! restarts the stack's gateway under it (cargo runs test binaries one at a
//! time).

use std::time::Duration;

use e2e_tests::Stack;
use e2e_tests::ws::{Follower, Socket, gateway_url, hello, next, say};
use serde_json::json;
use uuid::Uuid;

const LIVE: Duration = Duration::from_secs(30);

/// The second replica, stopped when the test ends (also on a panic).
struct Replica {
    dev_script: std::path::PathBuf,
}

impl Replica {
    /// Starts it; the guard exists first, so a failed start stops what
    /// did start.
    async fn start(stack: &Stack) -> Self {
        let replica = Self {
            dev_script: stack.dev_script.clone(),
        };
        stack.dev(&["replica", "start", "sync-gateway"]).await;
        replica
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let stopped = std::process::Command::new(&self.dev_script)
            .args(["replica", "stop", "sync-gateway"])
            .status();
        if !matches!(stopped, Ok(status) if status.success()) {
            eprintln!("could not stop the sync-gateway replica: {stopped:?}");
        }
    }
}

/// A gateway's count of `task-updates` events pushed to it.
async fn received(stack: &Stack, ws_url: &str) -> u64 {
    let url = ws_url
        .replacen("ws", "http", 1)
        .replace("/ws/tasks", "/metrics");
    let text = stack
        .http
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("todo_sync_gateway_events_received_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the received counter")
}

/// Reads `n` events that must come exactly as 1..=n: no gap, no
/// duplicate, nothing of another user (`Follower::apply` checks the user).
async fn exactly(socket: &mut Socket, user: &str, n: i64) -> Follower {
    let mut f = Follower::new(user);
    while f.last() < n {
        let frame = next(socket, LIVE)
            .await
            .unwrap_or_else(|| panic!("{user}: stuck at {} of {n}", f.last()));
        assert_eq!(frame["type"], "event", "{user}: {frame}");
        assert!(f.apply(&frame), "{user}: a gap before {frame}");
        assert!(f.duplicates.is_empty(), "{user}: sent twice: {frame}");
    }
    // Nothing else is queued: a late duplicate or another user's event
    // would arrive before the pong.
    say(socket, json!({"type": "ping"})).await;
    assert_eq!(next(socket, LIVE).await, Some(json!({"type": "pong"})));
    f
}

#[tokio::test]
#[ignore = "needs the local stack: ./scripts/test runs it"]
async fn two_gateway_replicas_on_different_ports_each_deliver_to_their_own_sockets() {
    let stack = Stack::from_env();
    let _replica = Replica::start(&stack).await;
    let one = gateway_url("SYNC_GATEWAY_URL", "http://127.0.0.1:8090");
    let two = gateway_url("SYNC_GATEWAY_REPLICA_URL", "http://127.0.0.1:8091");
    let run = Uuid::now_v7();
    let (alice, bob) = (format!("ws-rep-a-{run}"), format!("ws-rep-b-{run}"));

    // alice and bob each have a socket on both replicas.
    let mut sockets = Vec::new();
    for (url, user) in [(&one, &alice), (&two, &alice), (&one, &bob), (&two, &bob)] {
        let token = stack.token(user, false);
        let mut socket = e2e_tests::ws::connect(url, &token, true).await.unwrap();
        assert_eq!(hello(&mut socket).await["offset"], 0, "{url} {user}");
        sockets.push((url.clone(), user.clone(), socket));
    }
    let before = (received(&stack, &one).await, received(&stack, &two).await);

    // Both users write at the same time, so their events interleave on the
    // topic (and may share a partition).
    const ALICE: i64 = 20;
    const BOB: i64 = 12;
    let writers = [(alice.clone(), ALICE), (bob.clone(), BOB)].map(|(user, n)| {
        let stack = stack.clone();
        tokio::spawn(async move {
            for i in 0..n {
                stack
                    .create_task(&user, &json!({"title": format!("r{i}")}))
                    .await;
            }
        })
    });
    for writer in writers {
        writer.await.unwrap();
    }

    for (url, user, mut socket) in sockets {
        let n = if user == alice { ALICE } else { BOB };
        let f = exactly(&mut socket, &user, n).await;
        assert_eq!(f.applied, (1..=n).collect::<Vec<_>>(), "{url} {user}");
    }
    // Each replica was pushed every one of these events itself (its own
    // consumer group), not a share of the partitions.
    let after = (received(&stack, &one).await, received(&stack, &two).await);
    for (name, from, to) in [("8090", before.0, after.0), ("replica", before.1, after.1)] {
        assert!(
            to - from >= (ALICE + BOB) as u64,
            "{name} received {} of {} events",
            to - from,
            ALICE + BOB
        );
    }
}
