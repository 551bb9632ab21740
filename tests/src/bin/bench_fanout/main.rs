//! The sync gateway and Centrifugo side by side, in one run, from the same
//! writes (issue 13). Run it through `scripts/bench-centrifugo`, which
//! builds and starts Centrifugo and sets its environment.
//!
//! Opens `--sockets` WebSockets over `--users` users on each server, reads
//! each server's RSS before and after (idle), then creates `--writes` tasks
//! through task-api at `--rate` per second, round robin over the users. Each
//! create becomes one task-updates record that both servers consume: the
//! gateway through its daprd, Centrifugo through its own Kafka consumer
//! (scripts/lib/centrifugo.sh says how). Latency runs from the start of the
//! API call to the receive on each socket of the user, on each server;
//! memory is the RSS growth with the sockets open and idle, per socket.
//! Prints absolute figures and gateway/Centrifugo ratios; `--json PATH`
//! writes them for scripts/bench.
//!
//! Environment: `SYNC_GATEWAY_URL`, `TASK_API_URL`, `JWT_HS256_SECRET`
//! (`.dev/env`), `TODO_EVENTS_RUN` (the gateway's pid file), and from the
//! script `CENTRIFUGO_URL`, `CENTRIFUGO_HMAC_SECRET`, `CENTRIFUGO_PID`.

mod clients;
mod report;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use e2e_tests::bench::{self, now_us, process_exe, rss_kib, socket_addr, stack_pid};
use futures::StreamExt;
use tokio::sync::mpsc;

use clients::{CLOSED, Delivery, Dial, Server};
use report::{Side, Workload};

struct Args {
    sockets: usize,
    users: usize,
    writes: usize,
    rate: f64,
    sources: usize,
    json: Option<String>,
}

fn flag(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

fn num<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    flag(name).map_or(Ok(default), |v| {
        v.parse().ok().with_context(|| format!("{name} {v}"))
    })
}

impl Args {
    fn parse() -> anyhow::Result<Self> {
        let args = Self {
            sockets: num("--sockets", 1000)?,
            users: num("--users", 100)?,
            writes: num("--writes", 500)?,
            rate: num("--rate", 50.0)?,
            sources: num("--sources", 1usize)?.clamp(1, 250),
            json: flag("--json"),
        };
        if args.users == 0 || args.users > args.sockets {
            bail!("--users must be 1 to --sockets");
        }
        if !args.rate.is_finite() || args.rate <= 0.0 {
            bail!("--rate must be above 0");
        }
        Ok(args)
    }
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} (run through scripts/bench-centrifugo)"))
}

fn gateway_pid() -> anyhow::Result<String> {
    stack_pid("app-sync-gateway")
}

struct Setup {
    run: uuid::Uuid,
    users: usize,
    sources: usize,
    gateway: SocketAddr,
    centrifugo: SocketAddr,
    jwt_secret: String,
    centrifugo_secret: String,
}

impl Setup {
    fn user(&self, i: usize) -> String {
        format!("bench-fanout-{}-{}", self.run, i % self.users)
    }
}

/// Opens socket `i` on `server` (user `i % users`).
async fn open(
    setup: &Setup,
    server: Server,
    i: usize,
    tx: mpsc::UnboundedSender<Delivery>,
) -> anyhow::Result<()> {
    let user = setup.user(i);
    let (server_addr, path) = match server {
        Server::Gateway => (setup.gateway, "/ws/tasks"),
        Server::Centrifugo => (setup.centrifugo, "/connection/websocket"),
    };
    let url = format!("ws://{server_addr}{path}");
    let dial = Dial {
        to: bench::Dial {
            server: server_addr,
            url: &url,
            source: i % setup.sources,
        },
        socket: i,
    };
    match server {
        Server::Gateway => {
            let token = e2e_tests::user_token(&user, false, &setup.jwt_secret);
            clients::gateway(dial, &token, tx).await
        }
        Server::Centrifugo => {
            let claims = clients::centrifugo_claims(&user, (now_us() / 1_000_000) as u64);
            let token = auth::testing::sign(&claims, &setup.centrifugo_secret);
            clients::centrifugo(dial, &token, &user, tx).await
        }
    }
}

/// Opens `sockets` sockets on `server`, 64 handshakes at a time, and
/// returns the server's RSS before and three idle seconds after.
async fn open_all(
    setup: &Arc<Setup>,
    server: Server,
    (sockets, pid): (usize, &str),
    tx: &mpsc::UnboundedSender<Delivery>,
) -> anyhow::Result<(u64, u64)> {
    let before = rss_kib(pid)?;
    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..sockets)
        .map(|i| {
            let (setup, tx) = (setup.clone(), tx.clone());
            async move { open(&setup, server, i, tx).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    println!(
        "{server:?}: {sockets} sockets open in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok((before, rss_kib(pid)?))
}

/// A create: its task id, user and call start (µs).
struct Write {
    task: String,
    user: String,
    started: i64,
}

/// `count` creates at `rate` per second, open loop (a slow answer does not
/// delay the next call), round robin over the users.
async fn write(setup: &Arc<Setup>, count: usize, rate: f64) -> anyhow::Result<Vec<Write>> {
    let api = std::env::var("TASK_API_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let http = reqwest::Client::new();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let mut calls = Vec::with_capacity(count);
    for n in 0..count {
        ticks.tick().await;
        let (setup, http, api) = (setup.clone(), http.clone(), api.clone());
        calls.push(tokio::spawn(async move {
            let user = setup.user(n);
            let token = e2e_tests::user_token(&user, false, &setup.jwt_secret);
            let started = now_us();
            let body: serde_json::Value = http
                .post(format!("{api}/api/tasks"))
                .bearer_auth(token)
                .json(&serde_json::json!({"title": format!("fanout {n}")}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let task = body["id"].as_str().context("created task id")?.to_owned();
            anyhow::Ok(Write {
                task,
                user,
                started,
            })
        }));
    }
    let mut done = Vec::with_capacity(count);
    for call in calls {
        done.push(call.await??);
    }
    Ok(done)
}

/// Reads deliveries of `writes` into each side until every socket of each
/// write's user got it on both servers, or `wait` passes.
async fn collect(
    writes: &[Write],
    rx: &mut mpsc::UnboundedReceiver<Delivery>,
    sockets_of: &HashMap<String, usize>,
    (gateway, centrifugo): (&mut Side, &mut Side),
    wait: Duration,
) -> anyhow::Result<(usize, Vec<i64>)> {
    let by_task: HashMap<&str, &Write> = writes.iter().map(|w| (w.task.as_str(), w)).collect();
    let expected: usize = writes.iter().map(|w| sockets_of[&w.user]).sum();
    let mut seen = HashSet::new();
    let mut last: HashMap<(Server, &str), i64> = HashMap::new();
    let deadline = Instant::now() + wait;
    while gateway.delivered < expected || centrifugo.delivered < expected {
        let Ok(Some(d)) = tokio::time::timeout_at(deadline.into(), rx.recv()).await else {
            break;
        };
        let Some(w) = by_task.get(d.task.as_str()) else {
            continue;
        };
        let side = match d.server {
            Server::Gateway => &mut *gateway,
            Server::Centrifugo => &mut *centrifugo,
        };
        if !seen.insert((d.server, d.socket, d.task.clone())) {
            side.duplicates += 1;
            continue;
        }
        side.delivered += 1;
        side.latency.record((d.at - w.started).max(0) as u64)?;
        let at = last.entry((d.server, w.task.as_str())).or_insert(d.at);
        *at = (*at).max(d.at);
    }
    Ok((expected, paired(writes, &last)))
}

/// Per write received on both servers: when the gateway's last socket of
/// the user got it minus when Centrifugo's did (µs; a run that missed any
/// delivery is refused by `check`, so "last" is the whole fan-out). Both
/// read the same Kafka record, so this is the difference between the two
/// consume-and-fan-out paths alone, free of the shared write path's noise.
fn paired(writes: &[Write], last: &HashMap<(Server, &str), i64>) -> Vec<i64> {
    writes
        .iter()
        .filter_map(|w| {
            let g = last.get(&(Server::Gateway, w.task.as_str()))?;
            let c = last.get(&(Server::Centrifugo, w.task.as_str()))?;
            Some(g - c)
        })
        .collect()
}

fn sides(args: &Args, gateway: String, centrifugo: String) -> (Side, Side) {
    (
        Side::new(gateway, args.sockets),
        Side::new(centrifugo, args.sockets),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    let setup = Arc::new(Setup {
        run: uuid::Uuid::now_v7(),
        users: args.users,
        sources: args.sources,
        gateway: socket_addr(
            &std::env::var("SYNC_GATEWAY_URL").unwrap_or_else(|_| "http://127.0.0.1:8090".into()),
        )?,
        centrifugo: socket_addr(&env("CENTRIFUGO_URL")?)?,
        jwt_secret: env("JWT_HS256_SECRET")?,
        centrifugo_secret: env("CENTRIFUGO_HMAC_SECRET")?,
    });
    let (g_pid, c_pid) = (gateway_pid()?, env("CENTRIFUGO_PID")?);
    let (g_label, c_label) = (process_exe(&g_pid), process_exe(&c_pid));
    let mut sockets_of: HashMap<String, usize> = HashMap::new();
    for i in 0..args.sockets {
        *sockets_of.entry(setup.user(i)).or_default() += 1;
    }

    let (tx, mut rx) = mpsc::unbounded_channel();
    let (mut gateway, mut centrifugo) = sides(&args, g_label.clone(), c_label.clone());
    (gateway.rss_before_kib, gateway.rss_idle_kib) =
        open_all(&setup, Server::Gateway, (args.sockets, &g_pid), &tx).await?;
    (centrifugo.rss_before_kib, centrifugo.rss_idle_kib) =
        open_all(&setup, Server::Centrifugo, (args.sockets, &c_pid), &tx).await?;

    // A warm-up round (one write per user, at most 20), not counted: it
    // proves both feeds work before the measured writes start.
    let warm = write(&setup, args.users.min(20), args.rate).await?;
    let (mut wg, mut wc) = sides(&args, g_label, c_label);
    let (expected, _) = collect(
        &warm,
        &mut rx,
        &sockets_of,
        (&mut wg, &mut wc),
        Duration::from_secs(30),
    )
    .await?;
    if wg.delivered < expected || wc.delivered < expected {
        bail!(
            "warm-up: gateway got {} and Centrifugo {} of {expected} deliveries \
             (Centrifugo's log: $TODO_EVENTS_RUN/logs/bench-centrifugo-<pid>.log)",
            wg.delivered,
            wc.delivered
        );
    }

    let started = Instant::now();
    let writes = write(&setup, args.writes, args.rate).await?;
    let (expected, paired) = collect(
        &writes,
        &mut rx,
        &sockets_of,
        (&mut gateway, &mut centrifugo),
        Duration::from_secs(60),
    )
    .await?;
    let workload = Workload {
        sockets: args.sockets,
        users: args.users,
        writes: args.writes,
        rate: args.rate,
        expected,
        seconds: started.elapsed().as_secs_f64(),
        paired_us: paired,
    };
    report::print(&workload, &gateway, &centrifugo);
    // No JSON from a run that is not clean: scripts/bench must not print it.
    check((&gateway, &centrifugo), expected, &g_pid)?;
    if let Some(path) = &args.json {
        let json = report::to_json(&workload, &gateway, &centrifugo);
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
        println!("wrote {path}");
    }
    Ok(())
}

/// Refuses a run that is not a clean measurement.
fn check((g, c): (&Side, &Side), expected: usize, g_pid: &str) -> anyhow::Result<()> {
    if gateway_pid()? != g_pid {
        bail!("the gateway restarted during the run: not a clean measurement");
    }
    let closed = CLOSED.load(std::sync::atomic::Ordering::Relaxed);
    if closed > 0 {
        bail!("{closed} sockets ended during the run: not a clean measurement");
    }
    if g.delivered < expected || c.delivered < expected {
        bail!(
            "missing deliveries: gateway {} and Centrifugo {} of {expected}",
            g.delivered,
            c.delivered
        );
    }
    Ok(())
}
