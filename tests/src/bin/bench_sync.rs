//! The sync gateway under many sockets, against the running local stack.
//!
//! Opens `--sockets` WebSockets spread over `--users` users (from
//! `--sources` loopback addresses, 127.0.0.1 and up, so 10,000 sockets do
//! not crowd one address's ports), measures the gateway's RSS per idle
//! socket, then runs two write phases through task-api:
//!
//! - spread: `--writes` creates, round robin over the users, from
//!   `--writers` concurrent writers;
//! - hot: `--hot-writes` creates for one user from `--hot-writers`
//!   concurrent writers, as fast as the API takes them.
//!
//! For each phase: latency from the start of the API call to the `event`
//! frame on every socket of that user (p50/p99/max), deliveries per second,
//! and where the time goes, from the outbox row's timestamps: call start →
//! the API's transaction start (`created_at`), → daprd's answer to the
//! relay's publish (`sent_at`), → the first socket's receive.
//!
//! ```sh
//! ulimit -n 20000; set -a; . .dev/env; set +a
//! target/release/bench_sync --sockets 1000 --users 100 --writes 1000
//! ```
//! (needs `./scripts/dev up`; the gateway's pid is read from the stack's
//! pid file under `TODO_EVENTS_RUN`, default `/var/tmp/todo-events`; the
//! outbox from `DATABASE_URL`.) `--json PATH` also writes the figures as
//! JSON once the run is known clean (`scripts/bench`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use e2e_tests::bench::{
    Dial, dial, event_task_id, now_us, process_exe, rss_kib, socket_addr, stack_pid,
};
use futures::StreamExt;
use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

struct Args {
    sockets: usize,
    users: usize,
    sources: usize,
    writes: usize,
    writers: usize,
    hot_writes: usize,
    hot_writers: usize,
    /// Each writer's pause after a write (0: as fast as the API answers).
    pause: Duration,
    json: Option<String>,
}

fn arg(name: &str, default: usize) -> anyhow::Result<usize> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args.get(i + 1).context(name.to_owned())?.parse()?),
        None => Ok(default),
    }
}

impl Args {
    fn parse() -> anyhow::Result<Self> {
        let args = Self {
            sockets: arg("--sockets", 1000)?,
            users: arg("--users", 100)?,
            sources: arg("--sources", 1)?.clamp(1, 250),
            writes: arg("--writes", 1000)?,
            writers: arg("--writers", 2)?.max(1),
            hot_writes: arg("--hot-writes", 1000)?,
            hot_writers: arg("--hot-writers", 4)?.max(1),
            pause: Duration::from_millis(arg("--pause-ms", 0)? as u64),
            json: std::env::args().skip_while(|a| a != "--json").nth(1),
        };
        if args.users == 0 || args.users > args.sockets {
            bail!("--users must be 1 to --sockets");
        }
        Ok(args)
    }
}

/// Which binary (debug or release build) a process of the stack runs.
fn binary(name: &str) -> String {
    stack_pid(name)
        .map(|pid| process_exe(&pid))
        .unwrap_or_else(|e| format!("unknown ({e:#})"))
}

fn gateway_rss_kib() -> anyhow::Result<u64> {
    rss_kib(&stack_pid("app-sync-gateway")?)
}

/// Sockets that ended during the run (a gateway restart, a kick): a run
/// with any is not a clean measurement.
static CLOSED: AtomicUsize = AtomicUsize::new(0);

/// One event frame on one socket: (task id, receive time in µs).
type Delivery = (String, i64);

struct Setup {
    ws: String,
    gateway: SocketAddr,
    secret: String,
    run: uuid::Uuid,
    users: usize,
}

impl Setup {
    fn user(&self, i: usize) -> String {
        format!("bench-sync-{}-{}", self.run, i % self.users)
    }
}

/// Opens socket `i` (user `i % users`) from source address `i % sources`
/// and reads it until the process ends, sending every event's task id.
async fn open(
    setup: &Setup,
    i: usize,
    sources: usize,
    tx: mpsc::UnboundedSender<Delivery>,
) -> anyhow::Result<()> {
    let token = e2e_tests::user_token(&setup.user(i), false, &setup.secret);
    let target = Dial {
        server: setup.gateway,
        url: &setup.ws,
        source: i % sources,
    };
    let mut socket = dial(&target, Some(&token)).await?;
    match socket.next().await {
        Some(Ok(Message::Text(t))) if t.contains("\"hello\"") => {}
        other => bail!("socket {i}: no hello: {other:?}"),
    }
    tokio::spawn(async move {
        while let Some(Ok(frame)) = socket.next().await {
            let at = now_us();
            let Message::Text(text) = frame else { continue };
            if let Some(task) = event_task_id(&text) {
                let _ = tx.send((task, at));
            }
        }
        CLOSED.fetch_add(1, Ordering::Relaxed);
    });
    Ok(())
}

/// A write: the created task's id, its user, when the call started.
struct Write {
    task: String,
    user: String,
    started: i64,
}

/// `count` creates for `user_of(n)`, from `writers` concurrent writers.
async fn write(
    setup: &Arc<Setup>,
    (count, writers, pause): (usize, usize, Duration),
    user_of: fn(&Setup, usize) -> String,
) -> anyhow::Result<Vec<Write>> {
    let api = std::env::var("TASK_API_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (setup, http, api, next) = (setup.clone(), http.clone(), api.clone(), next.clone());
            tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        return anyhow::Ok(done);
                    }
                    let user = user_of(&setup, n);
                    let token = e2e_tests::user_token(&user, false, &setup.secret);
                    let started = now_us();
                    let body: serde_json::Value = http
                        .post(format!("{api}/api/tasks"))
                        .bearer_auth(token)
                        .json(&serde_json::json!({"title": format!("bench {n}")}))
                        .send()
                        .await?
                        .error_for_status()?
                        .json()
                        .await?;
                    let task = body["id"].as_str().context("created task id")?.to_owned();
                    done.push(Write {
                        task,
                        user,
                        started,
                    });
                    tokio::time::sleep(pause).await;
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(count);
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}

/// The outbox's timestamps of the tasks' `task-updates` rows, in µs:
/// task id → (transaction start, marked sent).
async fn outbox_times(users: &[String]) -> anyhow::Result<HashMap<String, (i64, i64)>> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://todo:todo@127.0.0.1:5432/todo".into());
    let (db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let rows = db
        .query(
            "SELECT payload->'data'->>'task_id',
                    (extract(epoch FROM created_at) * 1e6)::bigint,
                    (extract(epoch FROM sent_at) * 1e6)::bigint
             FROM outbox WHERE topic = 'task-updates' AND partition_key = ANY($1)
               AND sent_at IS NOT NULL",
            &[&users],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect())
}

fn histogram() -> Histogram<u64> {
    Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits are valid"))
}

/// p50/p99/max of a histogram of µs, in ms, for `--json`.
fn ms_json(h: &Histogram<u64>) -> serde_json::Value {
    let q = |q| h.value_at_quantile(q) as f64 / 1000.0;
    serde_json::json!({"p50": q(0.5), "p99": q(0.99), "max": h.max() as f64 / 1000.0})
}

fn ms(h: &Histogram<u64>) -> String {
    let q = |q| h.value_at_quantile(q) as f64 / 1000.0;
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        q(0.5),
        q(0.99),
        h.max() as f64 / 1000.0
    )
}

/// Waits for `expected` deliveries of `writes`, then prints the phase and
/// returns its figures (for `--json`).
async fn report(
    phase: &str,
    writes: &[Write],
    rx: &mut mpsc::UnboundedReceiver<Delivery>,
    sockets_of: &HashMap<String, usize>,
) -> anyhow::Result<serde_json::Value> {
    let by_task: HashMap<&str, &Write> = writes.iter().map(|w| (w.task.as_str(), w)).collect();
    let expected: usize = writes.iter().map(|w| sockets_of[&w.user]).sum();
    let (mut latency, mut first_receive) = (histogram(), HashMap::new());
    let (mut got, mut last) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < expected {
        let Ok(Some((task, at))) = tokio::time::timeout_at(deadline.into(), rx.recv()).await else {
            break;
        };
        let Some(w) = by_task.get(task.as_str()) else {
            continue;
        };
        got += 1;
        last = last.max(at);
        latency.record((at - w.started).max(0) as u64)?;
        let first = first_receive.entry(task).or_insert(at);
        *first = (*first).min(at);
    }
    let start = writes.iter().map(|w| w.started).min().unwrap_or_default();
    let seconds = (last - start).max(1) as f64 / 1e6;
    println!(
        "{phase}: {} writes, {got} of {expected} deliveries in {seconds:.1} s ({:.0} deliveries/s, {:.0} writes/s)",
        writes.len(),
        got as f64 / seconds,
        writes.len() as f64 / seconds
    );
    println!("  write → receive: {}", ms(&latency));
    let users: Vec<String> = sockets_of.keys().cloned().collect();
    let times = outbox_times(&users).await?;
    let (mut to_tx, mut to_sent, mut to_socket) = (histogram(), histogram(), histogram());
    for w in writes {
        let (Some(&(created, sent)), Some(&received)) =
            (times.get(&w.task), first_receive.get(&w.task))
        else {
            continue;
        };
        to_tx.record((created - w.started).max(0) as u64)?;
        to_sent.record((sent - created).max(0) as u64)?;
        to_socket.record((received - sent).max(0) as u64)?;
    }
    println!("  call start → transaction start: {}", ms(&to_tx));
    println!(
        "  transaction start → publish answered (commit, relay, daprd, Kafka ack): {}",
        ms(&to_sent)
    );
    println!(
        "  publish answered → first socket (Kafka fetch, daprd push, fan-out): {}",
        ms(&to_socket)
    );
    Ok(serde_json::json!({
        "name": phase, "writes": writes.len(), "expected": expected, "delivered": got,
        "seconds": seconds, "writes_per_s": writes.len() as f64 / seconds,
        "deliveries_per_s": got as f64 / seconds, "latency_ms": ms_json(&latency),
        "breakdown_ms": {"call_to_transaction": ms_json(&to_tx),
                         "transaction_to_published": ms_json(&to_sent),
                         "published_to_first_socket": ms_json(&to_socket)},
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    let base = std::env::var("SYNC_GATEWAY_URL").unwrap_or_else(|_| "http://127.0.0.1:8090".into());
    let gateway = socket_addr(&base).context("SYNC_GATEWAY_URL")?;
    let setup = Arc::new(Setup {
        ws: base.replacen("http", "ws", 1) + "/ws/tasks",
        gateway,
        secret: std::env::var("JWT_HS256_SECRET").context("JWT_HS256_SECRET (source .dev/env)")?,
        run: uuid::Uuid::now_v7(),
        users: args.users,
    });
    let mut sockets_of: HashMap<String, usize> = HashMap::new();
    for i in 0..args.sockets {
        *sockets_of.entry(setup.user(i)).or_default() += 1;
    }

    println!(
        "gateway: {}; task-api: {}",
        binary("app-sync-gateway"),
        binary("app-task-api")
    );
    let gateway_pid = stack_pid("app-sync-gateway")?;
    let before = gateway_rss_kib()?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let opened = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..args.sockets)
        .map(|i| {
            let (setup, tx) = (setup.clone(), tx.clone());
            async move { open(&setup, i, args.sources, tx).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    println!(
        "{} sockets open in {:.1} s",
        args.sockets,
        opened.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = gateway_rss_kib()?;
    println!(
        "idle: gateway RSS {before} KiB -> {idle} KiB, {:.1} KiB per socket",
        idle.saturating_sub(before) as f64 / args.sockets as f64
    );

    let spread = write(&setup, (args.writes, args.writers, args.pause), |s, n| {
        s.user(n)
    })
    .await?;
    let spread = report(
        &format!("spread over {} users, {} writers", args.users, args.writers),
        &spread,
        &mut rx,
        &sockets_of,
    )
    .await?;
    let hot = write(
        &setup,
        (args.hot_writes, args.hot_writers, args.pause),
        |s, _| s.user(0),
    )
    .await?;
    let hot = report(
        &format!(
            "one hot user ({} sockets), {} writers",
            sockets_of[&setup.user(0)],
            args.hot_writers
        ),
        &hot,
        &mut rx,
        &sockets_of,
    )
    .await?;
    let after = gateway_rss_kib()?;
    println!("gateway RSS after: {after} KiB");
    if stack_pid("app-sync-gateway")? != gateway_pid {
        bail!("the gateway restarted during the run: not a clean measurement");
    }
    let closed = CLOSED.load(Ordering::Relaxed);
    if closed > 0 {
        bail!(
            "{closed} sockets ended during the run (the gateway restarted?): not a clean measurement"
        );
    }
    if let Some(path) = &args.json {
        let report = serde_json::json!({
            "tool": "bench_sync",
            "settings": {"sockets": args.sockets, "users": args.users, "sources": args.sources,
                         "writes": args.writes, "writers": args.writers,
                         "hot_writes": args.hot_writes, "hot_writers": args.hot_writers,
                         "pause_ms": args.pause.as_millis() as u64},
            "binaries": {"sync-gateway": binary("app-sync-gateway"),
                         "task-api": binary("app-task-api")},
            "idle": {"rss_before_kib": before, "rss_idle_kib": idle, "rss_after_kib": after,
                     "kib_per_socket": idle.saturating_sub(before) as f64 / args.sockets as f64},
            "phases": [spread, hot],
        });
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}
