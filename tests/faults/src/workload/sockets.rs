//! WebSocket clients through the faults: every client that stayed or
//! resumed saw all of its user's events, exactly once, in offset order.
//!
//! [`Scale::sockets`] clients on the gateway's `/ws/tasks`, spread over
//! the run's users (so each sees the events every workload causes for its
//! user). Each starts at the head of its user's stream's epoch with
//! offset 0 (`GET /api/changes`), and authenticates with that position in
//! its `auth` message, so the gateway replays the whole stream before any
//! live event (functions/sync-gateway/src/protocol.rs `ClientMessage::Auth`,
//! session.rs `session`). A third stay connected; the others cut their
//! socket at seeded random times (a close frame, or the connection just
//! dropped) and reconnect with `resume` from their last offset, as a
//! socket cut by a gateway kill does. A client applies an offset only
//! when it is its own plus one and asks for a resume on a gap (the
//! protocol's rule), but records every frame as it came.
//!
//! Once the run is quiet, the workload waits (bounded) until every client
//! has applied its user's head (`user_streams.last_offset`, stable for two
//! reads), stops them, and checks each client's record against the user's
//! stream in the database (task-domain's outbox rows of `task-updates`,
//! by `stream_offset`, of the current epoch): every offset up to the head
//! received once (a second copy is duplicated; none is lost), in order,
//! with the task id and sequence the database has. A `reset` is the
//! protocol's catch-up for a history the client cannot resume from
//! (session.rs `reset`: another epoch, or the offsets pruned; the client
//! reloads its list): it covers the offsets it skips only when that was
//! so; a reset while the database still holds the next offset of the
//! same epoch is counted as the loss it is.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context;
use e2e_tests::retry::UserApi;
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::{Env, Phase, Rng, Scale, Tally};

/// After quiet, how long the clients may take to reach their heads.
const CATCH_UP: Duration = Duration::from_secs(180);
const REQUEST_WAIT: Duration = Duration::from_secs(150);

/// One frame as a client received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Event {
        epoch: String,
        offset: i64,
        task_id: String,
        sequence: i64,
    },
    /// A `reset` at the client's position `from` (epoch, offset), moving
    /// it to `to_offset` of `to_epoch`.
    Reset {
        from_epoch: String,
        from_offset: i64,
        to_epoch: String,
        to_offset: i64,
    },
}

/// The user's stream as the database holds it at the check.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    pub epoch: String,
    /// The head the clients were waited for.
    pub head: i64,
    /// (task id, sequence) per offset, of the current epoch.
    pub entries: BTreeMap<i64, (String, i64)>,
}

/// What the check found for one client.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub checked: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub problems: Vec<String>,
}

/// Checks one client's frames against its user's stream.
pub fn check_client(frames: &[Frame], stream: &Stream) -> Verdict {
    let mut verdict = Verdict::default();
    let mut seen = BTreeSet::new();
    let mut covered = BTreeSet::new();
    let mut last = 0;
    for frame in frames {
        match frame {
            Frame::Event {
                epoch,
                offset,
                task_id,
                sequence,
            } => {
                if *epoch != stream.epoch {
                    verdict
                        .problems
                        .push(format!("offset {offset} of another epoch {epoch}"));
                    continue;
                }
                if !seen.insert(*offset) {
                    verdict.duplicated += 1;
                    verdict.problems.push(format!("offset {offset} twice"));
                    continue;
                }
                if *offset != last + 1 {
                    verdict
                        .problems
                        .push(format!("offset {offset} came after {last}"));
                }
                last = *offset;
                match stream.entries.get(offset) {
                    Some((id, seq)) if id == task_id && seq == sequence => {}
                    // Committed after the head the clients were waited for.
                    None if *offset > stream.head => {}
                    found => verdict.problems.push(format!(
                        "offset {offset}: task {task_id} sequence {sequence}, the database has {found:?}"
                    )),
                }
            }
            Frame::Reset {
                from_epoch,
                from_offset,
                to_epoch,
                to_offset,
            } => {
                // Another epoch: the reload shows the new history up to
                // the reset's offset. The same epoch: only what is gone.
                let new_epoch = *from_epoch != stream.epoch;
                let lawful = new_epoch || !stream.entries.contains_key(&(from_offset + 1));
                if lawful && *to_epoch == stream.epoch {
                    let first = if new_epoch { 1 } else { from_offset + 1 };
                    covered.extend(first..=*to_offset);
                } else {
                    verdict.problems.push(format!(
                        "a reset at {from_offset} although the history reaches it"
                    ));
                }
                last = *to_offset;
            }
        }
    }
    for offset in 1..=stream.head {
        verdict.checked += 1;
        if !seen.contains(&offset) && !covered.contains(&offset) {
            verdict.lost += 1;
        }
    }
    if verdict.lost > 0 {
        verdict.problems.push(format!(
            "{} of {} offsets never came",
            verdict.lost, stream.head
        ));
    }
    verdict
}

/// What a client shares while it runs.
struct Progress {
    /// The last offset applied.
    applied: AtomicI64,
}

/// One client's record, handed back when it stops.
#[derive(Debug, Default)]
struct ClientLog {
    stays: bool,
    frames: Vec<Frame>,
    connects: u32,
    refused_connects: u32,
}

pub async fn run(env: Arc<Env>, scale: Scale, seed: u64, phase: Phase) -> anyhow::Result<Tally> {
    anyhow::ensure!(!env.users.is_empty(), "the run has no users");
    let (stop, stopped) = watch::channel(false);
    let mut clients = Vec::with_capacity(scale.sockets);
    for c in 0..scale.sockets {
        let user = env.users[c % env.users.len()].clone();
        let epoch = head_epoch(&env, &user).await?;
        let progress = Arc::new(Progress {
            applied: AtomicI64::new(0),
        });
        let rng = Rng::derive(seed, &format!("socket-{c}"));
        let client = Client::new(&env, user.clone(), epoch, c % 3 == 0, rng, progress.clone());
        let task = tokio::spawn(client.run(stopped.clone()));
        clients.push((user, progress, task));
    }
    phase.driving_done();
    phase.wait_quiet().await;
    let db = env.db().await?;
    let heads = wait_caught_up(&db, &clients).await?;
    let _ = stop.send(true);
    let mut tally = Tally::new("sockets");
    let mut streams: BTreeMap<String, Stream> = BTreeMap::new();
    for (user, _, task) in clients {
        let log = task.await.context("a socket client panicked")?;
        if !streams.contains_key(&user) {
            let head = heads.get(&user).copied().unwrap_or_default();
            streams.insert(user.clone(), read_stream(&db, &user, head).await?);
        }
        let verdict = check_client(&log.frames, &streams[&user]);
        tally.checked += verdict.checked;
        tally.lost += verdict.lost;
        tally.duplicated += verdict.duplicated;
        let kind = if log.stays { "stayed" } else { "resumed" };
        for problem in verdict.problems {
            tally.problems.push(format!(
                "{user} ({kind}, {} connects, {} refused): {problem}",
                log.connects, log.refused_connects
            ));
        }
    }
    Ok(tally)
}

/// The epoch of the user's stream (`GET /api/changes`: the head).
async fn head_epoch(env: &Env, user: &str) -> anyhow::Result<String> {
    let api = UserApi {
        http: env.http.clone(),
        base: env.task_api.clone(),
        token: env.token(user, false),
    };
    let answer = api
        .call(
            Method::GET,
            "/api/changes",
            None,
            &[],
            Instant::now() + REQUEST_WAIT,
        )
        .await;
    answer.body()["epoch"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("the head of {user}'s stream: {answer:?}"))
}

type Clients = Vec<(String, Arc<Progress>, tokio::task::JoinHandle<ClientLog>)>;

/// Waits until every client applied its user's head, the heads unchanged
/// over two reads; returns the heads (as they were then, whether or not
/// every client got there in time).
async fn wait_caught_up(
    db: &tokio_postgres::Client,
    clients: &Clients,
) -> anyhow::Result<BTreeMap<String, i64>> {
    let users: Vec<String> = clients
        .iter()
        .map(|c| c.0.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let until = Instant::now() + CATCH_UP;
    let mut previous = BTreeMap::new();
    loop {
        let rows = db
            .query(
                "SELECT user_id, last_offset FROM user_streams WHERE user_id = ANY($1)",
                &[&users],
            )
            .await
            .context("reading the users' stream heads")?;
        let heads: BTreeMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let behind = clients.iter().any(|(user, progress, _)| {
            progress.applied.load(Ordering::Relaxed) < heads.get(user).copied().unwrap_or(0)
        });
        if (!behind && heads == previous) || Instant::now() >= until {
            return Ok(heads);
        }
        previous = heads;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn read_stream(db: &tokio_postgres::Client, user: &str, head: i64) -> anyhow::Result<Stream> {
    let row = db
        .query_one(
            "SELECT epoch::text FROM user_streams WHERE user_id = $1",
            &[&user],
        )
        .await
        .context("reading a user's epoch")?;
    let epoch: String = row.get(0);
    let rows = db
        .query(
            "SELECT stream_offset, payload->'data'->>'task_id',
                    (payload->'data'->>'sequence')::bigint
             FROM outbox WHERE partition_key = $1 AND topic = 'task-updates'
               AND stream_offset IS NOT NULL AND payload->'data'->>'epoch' = $2",
            &[&user, &epoch],
        )
        .await
        .context("reading a user's stream")?;
    let entries = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                (
                    r.get::<_, Option<String>>(1).unwrap_or_default(),
                    r.get::<_, Option<i64>>(2).unwrap_or_default(),
                ),
            )
        })
        .collect();
    Ok(Stream {
        epoch,
        head,
        entries,
    })
}

/// One WebSocket client following its user's stream.
struct Client {
    url: String,
    token_of: Box<dyn Fn() -> String + Send>,
    reload: UserApi,
    log: ClientLog,
    epoch: String,
    applied: i64,
    rng: Rng,
    progress: Arc<Progress>,
}

/// How one connection ended.
enum Ended {
    Stop,
    Reconnect,
}

impl Client {
    fn new(
        env: &Env,
        user: String,
        epoch: String,
        stays: bool,
        rng: Rng,
        progress: Arc<Progress>,
    ) -> Client {
        let (secret, who) = (env.jwt_secret.clone(), user.clone());
        Client {
            url: env.gateway_ws(),
            token_of: Box::new(move || e2e_tests::user_token(&who, false, &secret)),
            reload: UserApi {
                http: env.http.clone(),
                base: env.task_api.clone(),
                token: env.token(&user, false),
            },
            log: ClientLog {
                stays,
                ..ClientLog::default()
            },
            epoch,
            applied: 0,
            rng,
            progress,
        }
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) -> ClientLog {
        let mut failures = 0;
        while !*stop.borrow() {
            match self.connection(&mut stop).await {
                Ok(Ended::Stop) => break,
                Ok(Ended::Reconnect) => failures = 0,
                Err(_) => {
                    self.log.refused_connects += 1;
                    failures += 1;
                }
            }
            let wait = e2e_tests::retry::backoff(failures).min(Duration::from_secs(2));
            let jitter = Duration::from_millis(self.rng.next_u64() % 500);
            tokio::select! {
                _ = stop.changed() => {}
                () = tokio::time::sleep(wait + jitter) => {}
            }
        }
        self.log
    }

    /// One connection: authenticate with the position, read until it ends,
    /// is cut on purpose, or the run stops.
    async fn connection(&mut self, stop: &mut watch::Receiver<bool>) -> anyhow::Result<Ended> {
        let (mut socket, _) = tokio_tungstenite::connect_async(self.url.as_str()).await?;
        self.log.connects += 1;
        let auth = json!({"type": "auth", "token": (self.token_of)(),
                          "resume": {"epoch": self.epoch, "offset": self.applied}});
        socket.send(Message::Text(auth.to_string().into())).await?;
        let cut_after = Duration::from_millis(3_000 + self.rng.next_u64() % 22_000);
        let cut = tokio::time::sleep(if self.log.stays {
            Duration::from_secs(86_400)
        } else {
            cut_after
        });
        tokio::pin!(cut);
        loop {
            tokio::select! {
                _ = stop.changed() => {
                    let _ = socket.close(None).await;
                    return Ok(Ended::Stop);
                }
                () = &mut cut => {
                    if self.rng.below(2) == 0 {
                        let _ = socket.close(None).await;
                    }
                    return Ok(Ended::Reconnect);
                }
                frame = socket.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(Ended::Reconnect),
                        Some(Ok(_)) => continue,
                    };
                    let message: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if let Some(resume) = self.on_message(&message).await {
                        socket.send(Message::Text(resume.to_string().into())).await?;
                    }
                }
            }
        }
    }

    /// Records a message and applies it by the protocol's rule; returns a
    /// `resume` to send after a gap.
    async fn on_message(&mut self, message: &Value) -> Option<Value> {
        match message["type"].as_str() {
            Some("event") => {
                let offset = message["offset"].as_i64().unwrap_or(-1);
                let epoch = message["epoch"].as_str().unwrap_or_default().to_owned();
                self.log.frames.push(Frame::Event {
                    epoch: epoch.clone(),
                    offset,
                    task_id: message["data"]["task_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    sequence: message["data"]["sequence"].as_i64().unwrap_or(-1),
                });
                if epoch == self.epoch && offset == self.applied + 1 {
                    self.applied = offset;
                    self.progress.applied.store(offset, Ordering::Relaxed);
                } else if epoch == self.epoch && offset > self.applied + 1 {
                    return Some(
                        json!({"type": "resume", "epoch": self.epoch, "offset": self.applied}),
                    );
                }
                None
            }
            Some("reset") => {
                let to_epoch = message["epoch"].as_str().unwrap_or_default().to_owned();
                let to_offset = message["offset"].as_i64().unwrap_or_default();
                self.log.frames.push(Frame::Reset {
                    from_epoch: self.epoch.clone(),
                    from_offset: self.applied,
                    to_epoch: to_epoch.clone(),
                    to_offset,
                });
                // The protocol's catch-up: reload the list, then follow.
                let _ = self
                    .reload
                    .call(
                        Method::GET,
                        "/api/tasks",
                        None,
                        &[],
                        Instant::now() + REQUEST_WAIT,
                    )
                    .await;
                (self.epoch, self.applied) = (to_epoch, to_offset);
                self.progress.applied.store(to_offset, Ordering::Relaxed);
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
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
            let api = UserApi {
                http: env.http.clone(),
                base: env.task_api.clone(),
                token: env.token(user, false),
            };
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
}
