//! A load tool for task-api on the local stack: create and update throughput
//! with p50/p99 latency at a fixed concurrency, and how fast the outbox
//! relay publishes the events they cause, read from the outbox rows of the
//! tool's own users (any relay may publish them: task-api's, recurring's).
//!
//! ```text
//! cargo run --release -p e2e-tests --bin load -- --concurrency 16 --duration 20
//! ```
//! Flags: `--url` (default `TASK_API_URL` or http://127.0.0.1:8080; loopback
//! only), `--concurrency N` (16), `--duration SECONDS` per phase (20),
//! `--requests N` (bound per phase; default unbounded), `--users N` (50),
//! `--json PATH` (also write the figures as JSON, for `scripts/bench`).
//! Needs `JWT_HS256_SECRET` (and `JWT_AUDIENCE`/`JWT_ISSUER` if task-api
//! checks them) and `DATABASE_URL` (default the local stack's). Prints a
//! Markdown report.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Mutex;

#[derive(Debug, Clone)]
struct Args {
    url: String,
    concurrency: usize,
    duration: Duration,
    requests: Option<u64>,
    users: usize,
    json: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        url: std::env::var("TASK_API_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into()),
        concurrency: 16,
        duration: Duration::from_secs(20),
        requests: None,
        users: 50,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => args.url = value,
            "--concurrency" => args.concurrency = value.parse()?,
            "--duration" => args.duration = Duration::from_secs(value.parse()?),
            "--requests" => args.requests = Some(value.parse()?),
            "--users" => args.users = value.parse()?,
            "--json" => args.json = Some(value),
            other => bail!("unknown flag {other}"),
        }
    }
    let host = reqwest::Url::parse(&args.url)?
        .host_str()
        .unwrap_or_default()
        .to_owned();
    if !matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]") {
        bail!("--url must be a loopback address, not {host}");
    }
    if args.concurrency == 0 || args.users == 0 {
        bail!("--concurrency and --users must be at least 1");
    }
    Ok(args)
}

fn token(user: &str) -> anyhow::Result<String> {
    let secret = std::env::var("JWT_HS256_SECRET").context("JWT_HS256_SECRET must be set")?;
    Ok(e2e_tests::user_token(user, false, &secret))
}

/// What one phase measured.
struct Phase {
    ok: u64,
    failed: u64,
    elapsed: Duration,
    latency_us: Histogram<u64>,
}

impl Phase {
    fn row(&self, name: &str) -> String {
        let q = |p: f64| self.latency_us.value_at_quantile(p) as f64 / 1000.0;
        format!(
            "| {name} | {} | {} | {:.0} | {:.1} | {:.1} | {:.1} |",
            self.ok,
            self.failed,
            self.ok as f64 / self.elapsed.as_secs_f64(),
            q(0.50),
            q(0.99),
            self.latency_us.max() as f64 / 1000.0
        )
    }

    fn json(&self, name: &str) -> Value {
        let q = |p: f64| self.latency_us.value_at_quantile(p) as f64 / 1000.0;
        json!({
            "name": name,
            "ok": self.ok,
            "failed": self.failed,
            "seconds": self.elapsed.as_secs_f64(),
            "per_s": self.ok as f64 / self.elapsed.as_secs_f64(),
            "latency_ms": {"p50": q(0.50), "p99": q(0.99), "max": self.latency_us.max() as f64 / 1000.0},
        })
    }
}

/// Runs `request(i)` from `concurrency` workers until the duration or the
/// request bound is reached.
async fn run_phase<F, Fut>(args: &Args, request: F) -> anyhow::Result<Phase>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let started = Instant::now();
    let deadline = started + args.duration;
    let bound = args.requests.unwrap_or(u64::MAX);
    let locals = (0..args.concurrency)
        .map(|_| Histogram::<u64>::new(3))
        .collect::<Result<Vec<_>, _>>()?;
    let workers: Vec<_> = locals
        .into_iter()
        .map(|mut local| {
            let (next, failed, histogram, request) = (
                next.clone(),
                failed.clone(),
                histogram.clone(),
                request.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= bound || Instant::now() >= deadline {
                        break;
                    }
                    let t = Instant::now();
                    if request(i).await {
                        let _ = local.record(t.elapsed().as_micros() as u64);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let _ = histogram.lock().await.add(&local);
            })
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    let latency_us = Arc::try_unwrap(histogram)
        .map_err(|_| anyhow::anyhow!("workers still hold the histogram"))?
        .into_inner();
    Ok(Phase {
        ok: latency_us.len(),
        failed: failed.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        latency_us,
    })
}

/// The tool's users' outbox rows: (all, sent, seconds from the last
/// commit to the last send).
async fn outbox_of(
    db: &tokio_postgres::Client,
    users: &[String],
) -> anyhow::Result<(i64, i64, f64)> {
    let row = db
        .query_one(
            "SELECT count(*), count(sent_at),
                    coalesce(extract(epoch FROM max(sent_at) - max(created_at))::float8, 0)
             FROM outbox WHERE partition_key = ANY($1)",
            &[&users],
        )
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let users: Arc<Vec<(String, String)>> = Arc::new(
        (0..args.users)
            .map(|i| {
                let user = format!("load-{run}-{i}");
                token(&user).map(|t| (user, t))
            })
            .collect::<anyhow::Result<_>>()?,
    );
    let database_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://todo:todo@127.0.0.1:5432/todo".into());
    let (db, connection) = tokio_postgres::connect(&database_url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("PostgreSQL at {database_url}"))?;
    tokio::spawn(connection);
    let user_ids: Vec<String> = users.iter().map(|(u, _)| u.clone()).collect();
    let ids = Arc::new(Mutex::new(Vec::<(usize, String)>::new()));

    let create = {
        let (http, url, users, ids) = (http.clone(), args.url.clone(), users.clone(), ids.clone());
        move |i: u64| {
            let (http, url, users, ids) = (http.clone(), url.clone(), users.clone(), ids.clone());
            async move {
                let u = (i as usize) % users.len();
                let body =
                    json!({"title": format!("load {i}"), "tags": ["load"], "priority": "low"});
                let response = http
                    .post(format!("{url}/api/tasks"))
                    .bearer_auth(&users[u].1)
                    .json(&body)
                    .send()
                    .await;
                let Ok(response) = response.and_then(|r| r.error_for_status()) else {
                    return false;
                };
                match response.json::<Value>().await {
                    Ok(task) => {
                        let id = task["id"].as_str().unwrap_or_default().to_owned();
                        ids.lock().await.push((u, id));
                        true
                    }
                    Err(_) => false,
                }
            }
        }
    };
    let creates = run_phase(&args, create).await?;
    let tasks = Arc::new(ids.lock().await.clone());
    if tasks.is_empty() {
        bail!("no task was created; is task-api up at {}?", args.url);
    }
    let update = {
        let (http, url, users, tasks) =
            (http.clone(), args.url.clone(), users.clone(), tasks.clone());
        move |i: u64| {
            let (http, url, users, tasks) =
                (http.clone(), url.clone(), users.clone(), tasks.clone());
            async move {
                // A stride through the tasks spreads updates over users.
                let (u, id) = &tasks[(i as usize * 7919) % tasks.len()];
                http.patch(format!("{url}/api/tasks/{id}"))
                    .bearer_auth(&users[*u].1)
                    .json(&json!({"title": format!("load update {i}")}))
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .is_ok()
            }
        }
    };
    let load_started = Instant::now() - creates.elapsed;
    let updates = run_phase(&args, update).await?;

    // Every successful change enqueues two events (task-events and
    // task-updates); wait until the relay has published them all.
    let expected = 2 * (creates.ok + updates.ok);
    let load_ended = Instant::now();
    let (mut rows, mut published, mut lag) = outbox_of(&db, &user_ids).await?;
    while (published < rows || (rows as u64) < expected)
        && load_ended.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        (rows, published, lag) = outbox_of(&db, &user_ids).await?;
    }
    let drained = load_started.elapsed();
    let published = published as u64;
    let drained_after = drained.saturating_sub(load_ended.duration_since(load_started));

    println!("| phase | ok | failed | req/s | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|---|");
    println!("{}", creates.row("create (POST /api/tasks)"));
    println!("{}", updates.row("update (PATCH /api/tasks/{id})"));
    println!();
    println!(
        "events published: {published} of {expected} expected in {:.1} s from the first request: {:.0} events/s; outbox drained {:.1} s after the last request (the last event sent {lag:.2} s after the last commit)",
        drained.as_secs_f64(),
        published as f64 / drained.as_secs_f64(),
        drained_after.as_secs_f64()
    );
    println!(
        "settings: concurrency {}, {} users, {} s per phase{}",
        args.concurrency,
        args.users,
        args.duration.as_secs(),
        args.requests
            .map(|n| format!(", at most {n} requests per phase"))
            .unwrap_or_default()
    );
    if let Some(path) = &args.json {
        let report = json!({
            "tool": "load",
            "settings": {"concurrency": args.concurrency, "users": args.users,
                         "duration_s": args.duration.as_secs(), "requests": args.requests},
            "phases": [creates.json("create"), updates.json("update")],
            "events": {"published": published, "expected": expected,
                       "seconds": drained.as_secs_f64(),
                       "per_s": published as f64 / drained.as_secs_f64(),
                       "drained_after_s": drained_after.as_secs_f64(),
                       "last_sent_after_commit_s": lag},
        });
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}
