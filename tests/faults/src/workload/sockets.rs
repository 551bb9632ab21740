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
//! Once the run is quiet and no workload drives any more, the workload
//! waits (bounded) until every client has applied its user's head
//! (`user_streams.last_offset`, stable for three reads), stops them, and
//! checks each client's record against the user's stream in the database (task-domain's outbox rows of `task-updates`,
//! by `stream_offset`, of the current epoch): every offset up to the head
//! received once (a second copy is duplicated; none is lost), in order,
//! with the task id and sequence the database has. A `reset` is the
//! protocol's catch-up for a history the client cannot resume from
//! (session.rs `reset`: another epoch, or the offsets pruned; the client
//! reloads its list): it covers the offsets it skips only when that was
//! so; a reset while the database still holds the next offset of the
//! same epoch is counted as the loss it is. Sockets the gateway's side
//! cut (a kill, a close frame) and that resumed without a loss are
//! counted as recovered.

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

/// After quiet, how long the other workloads may still drive and the
/// clients then take to reach their heads, together: within the
/// orchestrator's bound on a workload's checks (240 s in a short run).
const CATCH_UP: Duration = Duration::from_secs(200);
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
    /// Connections the gateway's side ended (a kill, a close frame), each
    /// followed by a reconnect and resume.
    cut_by_server: u32,
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
    // The clients follow what the other workloads cause: they stop only
    // once the run is quiet and no workload drives any more (quiet can
    // come first: the orchestrator's fault window is bounded).
    phase.driving_done();
    phase.wait_quiet().await;
    let until = Instant::now() + CATCH_UP;
    if !phase.wait_driving_done(CATCH_UP * 3 / 4).await {
        eprintln!(
            "sockets: still driving {:?} after quiet: {:?}",
            CATCH_UP * 3 / 4,
            phase.still_driving()
        );
    }
    let db = env.db().await?;
    let heads = wait_caught_up(&db, &clients, until).await?;
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
        // Every socket the gateway's side cut, resumed without a loss.
        if verdict.problems.is_empty() {
            tally.recovered += u64::from(log.cut_by_server);
        }
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
    let api = crate::workload::as_user(env, &env.task_api, user);
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
/// over three reads, or `until`; returns the heads (as they were then, whether or not
/// every client got there in time).
async fn wait_caught_up(
    db: &tokio_postgres::Client,
    clients: &Clients,
    until: Instant,
) -> anyhow::Result<BTreeMap<String, i64>> {
    let users: Vec<String> = clients
        .iter()
        .map(|c| c.0.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut previous = BTreeMap::new();
    let mut stable = 0;
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
        // Unchanged for three reads 2 s apart: a successor recurring
        // creates after the last completion has had its moment.
        stable = if heads == previous { stable + 1 } else { 0 };
        if (!behind && stable >= 2) || Instant::now() >= until {
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
            reload: crate::workload::as_user(env, &env.task_api, &user),
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
        // Bounded: a gateway that accepts and then stalls must not hold
        // the client from its next attempt.
        let connect = tokio_tungstenite::connect_async(self.url.as_str());
        let (mut socket, _) = tokio::time::timeout(Duration::from_secs(10), connect).await??;
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
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                            self.log.cut_by_server += 1;
                            return Ok(Ended::Reconnect);
                        }
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
#[path = "sockets_tests.rs"]
mod tests;
