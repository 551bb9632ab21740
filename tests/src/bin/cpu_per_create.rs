//! CPU per task create across the whole local stack, per process.
//!
//! Samples utime+stime of every stack process (`e2e_tests::cpu`: functions,
//! daprds, Kafka, the scheduler, mailpit, PostgreSQL's postmaster, its
//! background processes and each stack process's backends), sends N creates
//! at a steady rate, waits until every event is delivered (the tool's
//! users' outbox rows sent, one audit row per created task) plus a quiet
//! tail, and samples again. Then it samples an idle window of the same
//! length, so daprd's and Kafka's idle work can be subtracted: it reports
//! raw, idle and net CPU ms, per process and per create.
//!
//! ```text
//! cargo run --release -p e2e-tests --bin cpu_per_create -- --creates 1000 --rate 50
//! ```
//! Flags: `--creates N` (1000), `--rate PER_S` (50; steady, not
//! saturation), `--users N` (50), `--tail SECONDS` (3; after delivery,
//! consumers commit offsets), `--no-idle` (skip the idle window),
//! `--pidstat` (run Debian's `pidstat` over the same window and print its
//! per-process figures beside the tool's), `--json PATH`, `--url`
//! (`TASK_API_URL`, loopback only). Needs `JWT_HS256_SECRET` and
//! `DATABASE_URL` (the local stack's by default). Linux only (`/proc`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use e2e_tests::cpu::{self, Sample, Window};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
struct Args {
    url: String,
    creates: usize,
    rate: f64,
    users: usize,
    tail: Duration,
    idle: bool,
    pidstat: bool,
    json: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        url: std::env::var("TASK_API_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into()),
        creates: 1000,
        rate: 50.0,
        users: 50,
        tail: Duration::from_secs(3),
        idle: true,
        pidstat: false,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--no-idle" => a.idle = false,
            "--pidstat" => a.pidstat = true,
            _ => {
                let v = it.next().with_context(|| format!("{flag} needs a value"))?;
                match flag.as_str() {
                    "--url" => a.url = v,
                    "--creates" => a.creates = v.parse()?,
                    "--rate" => a.rate = v.parse()?,
                    "--users" => a.users = v.parse()?,
                    "--tail" => a.tail = Duration::from_secs(v.parse()?),
                    "--json" => a.json = Some(v),
                    other => bail!("unknown flag {other}"),
                }
            }
        }
    }
    let host = reqwest::Url::parse(&a.url)?
        .host_str()
        .unwrap_or_default()
        .to_owned();
    if !matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]") {
        bail!("--url must be a loopback address, not {host}");
    }
    if a.creates == 0 || a.users == 0 || !a.rate.is_finite() || a.rate <= 0.0 {
        bail!("--creates, --users and --rate must be positive");
    }
    Ok(a)
}

/// The PostgreSQL port in `DATABASE_URL` (backends are told apart by it).
fn pg_port(database_url: &str) -> u16 {
    reqwest::Url::parse(database_url)
        .ok()
        .and_then(|u| u.port())
        .unwrap_or(5432)
}

/// Sends `creates` creates at `rate` per second, round-robin over the
/// users; returns the created task ids. Each create is its own task, so a
/// slow answer never lowers the rate.
async fn send_creates(args: &Args, users: &[(String, String)]) -> anyhow::Result<Vec<uuid::Uuid>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut handles = Vec::with_capacity(args.creates);
    for i in 0..args.creates {
        tick.tick().await;
        let (user, token) = users[i % users.len()].clone();
        let request = http
            .post(format!("{}/api/tasks", args.url))
            .bearer_auth(token)
            .json(&json!({"title": format!("cpu probe {i} of {user}")}));
        handles.push(tokio::spawn(async move {
            let response = request.send().await.ok()?;
            if response.status() != reqwest::StatusCode::CREATED {
                return None;
            }
            let body: Value = response.json().await.ok()?;
            body["id"].as_str()?.parse::<uuid::Uuid>().ok()
        }));
    }
    let mut ids = Vec::new();
    for h in handles {
        if let Some(id) = h.await? {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Waits until the users' outbox is drained and every task has its
/// `created` audit row: the events went through daprd, Kafka and audit.
async fn wait_delivered(
    db: &tokio_postgres::Client,
    users: &[String],
    tasks: &[uuid::Uuid],
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let unsent: i64 = db
            .query_one(
                "SELECT count(*) FROM outbox WHERE partition_key = ANY($1) AND sent_at IS NULL",
                &[&users],
            )
            .await?
            .try_get(0)?;
        let audited: i64 = db
            .query_one(
                "SELECT count(DISTINCT task_id) FROM audit_logs WHERE task_id = ANY($1)",
                &[&tasks],
            )
            .await?
            .try_get(0)?;
        if unsent == 0 && audited == tasks.len() as i64 {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(180) {
            bail!(
                "not delivered after 180 s: {unsent} outbox rows unsent, {audited}/{} tasks audited",
                tasks.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A running `pidstat -u -h -p PIDS 1`, stopped at the window's end.
struct Pidstat {
    child: tokio::process::Child,
}

impl Pidstat {
    fn start(sample: &Sample) -> anyhow::Result<Pidstat> {
        let pids: Vec<String> = sample.procs.keys().map(|id| id.pid.to_string()).collect();
        let child = tokio::process::Command::new("pidstat")
            .args(["-u", "-h", "-p", &pids.join(","), "1"])
            .env("LC_ALL", "C")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("pidstat (Debian's sysstat) is not installed")?;
        Ok(Pidstat { child })
    }

    async fn stop(self) -> anyhow::Result<HashMap<u32, (f64, u32)>> {
        if let Some(pid) = self.child.id() {
            // SIGINT: pidstat prints its last interval and exits.
            let _ = std::process::Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
        }
        let out = self.child.wait_with_output().await?;
        Ok(cpu::pidstat_ms(&String::from_utf8_lossy(&out.stdout), 1.0))
    }
}

/// One row of the report, in ms.
struct Row {
    label: String,
    raw: f64,
    idle: f64,
}

fn rows(load: &Window, idle: Option<&Window>, ms_per_tick: f64) -> Vec<Row> {
    let mut labels: BTreeMap<&str, ()> = load.counted.keys().map(|k| (k.as_str(), ())).collect();
    if let Some(i) = idle {
        labels.extend(i.counted.keys().map(|k| (k.as_str(), ())));
    }
    let ms = |w: Option<&Window>, l: &str| {
        w.and_then(|w| w.counted.get(l)).copied().unwrap_or(0) as f64 * ms_per_tick
    };
    let mut out: Vec<Row> = labels
        .keys()
        .map(|l| Row {
            label: (*l).to_owned(),
            raw: ms(Some(load), l),
            idle: ms(idle, l),
        })
        .collect();
    out.sort_by(|a, b| (b.raw - b.idle).total_cmp(&(a.raw - a.idle)));
    out
}

/// Whether a row's CPU is task-api's own (the app and its backends).
fn is_task_api(label: &str) -> bool {
    label == "app-task-api" || label == "postgres backends ← app-task-api"
}

fn report(
    args: &Args,
    created: usize,
    secs: f64,
    rows: &[Row],
    load: &Window,
    ms_per_tick: f64,
) -> Value {
    let n = created.max(1) as f64;
    println!(
        "\n## CPU per create: {created} creates at {}/s, window {secs:.1} s\n",
        args.rate
    );
    println!("| process | raw ms | idle ms | net ms | net ms/create |\n|---|---:|---:|---:|---:|");
    let (mut raw, mut idle, mut out_raw, mut out_idle) = (0.0, 0.0, 0.0, 0.0);
    for r in rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.3} |",
            r.label,
            r.raw,
            r.idle,
            r.raw - r.idle,
            (r.raw - r.idle) / n
        );
        raw += r.raw;
        idle += r.idle;
        if !is_task_api(&r.label) {
            out_raw += r.raw;
            out_idle += r.idle;
        }
    }
    println!(
        "| **total** | {raw:.0} | {idle:.0} | {:.0} | **{:.2}** |",
        raw - idle,
        (raw - idle) / n
    );
    println!(
        "| outside task-api | {out_raw:.0} | {out_idle:.0} | {:.0} | {:.2} |",
        out_raw - out_idle,
        (out_raw - out_idle) / n
    );
    println!(
        "\nraw ms/create {:.2} (outside task-api {:.2})",
        raw / n,
        out_raw / n
    );
    for (label, ticks) in &load.excluded {
        println!(
            "not counted: {label}: {:.0} ms",
            *ticks as f64 * ms_per_tick
        );
    }
    if !load.restarted.is_empty() {
        println!(
            "WARNING: restarted during the window, figures incomplete: {:?}",
            load.restarted
        );
    }
    json!({
        "creates": created, "rate_per_s": args.rate, "window_s": secs,
        "processes": rows.iter().map(|r| json!({
            "name": r.label, "raw_ms": r.raw, "idle_ms": r.idle, "net_ms": r.raw - r.idle,
            "net_ms_per_create": (r.raw - r.idle) / n, "task_api": is_task_api(&r.label),
        })).collect::<Vec<_>>(),
        "total": {"raw_ms": raw, "idle_ms": idle, "raw_ms_per_create": raw / n, "net_ms_per_create": (raw - idle) / n},
        "outside_task_api": {"raw_ms_per_create": out_raw / n, "net_ms_per_create": (out_raw - out_idle) / n},
        "restarted": load.restarted,
    })
}

/// The tool's and pidstat's figures for each long-lived process, as CPU
/// ms per second (pidstat covers whole seconds of the window only).
fn print_pidstat(
    before: &Sample,
    load: &Window,
    window_s: f64,
    pidstat: &HashMap<u32, (f64, u32)>,
    ms_per_tick: f64,
) -> Value {
    println!("\n### Cross-check with pidstat (same window; CPU ms per second)\n");
    println!("| process | pid | /proc ms/s | pidstat ms/s |\n|---|---:|---:|---:|");
    let mut out = Vec::new();
    for p in before.procs.values() {
        // Backends are summed per client in /proc rows: compare single
        // processes only.
        if p.label.starts_with("postgres backends") {
            continue;
        }
        let Some((ms, intervals)) = pidstat.get(&p.id.pid) else {
            continue;
        };
        let own = load.counted.get(&p.label).copied().unwrap_or(0) as f64 * ms_per_tick / window_s;
        let theirs = ms / f64::from((*intervals).max(1));
        println!("| {} | {} | {own:.1} | {theirs:.1} |", p.label, p.id.pid);
        out.push(json!({"name": p.label, "pid": p.id.pid, "proc_ms_per_s": own, "pidstat_ms_per_s": theirs}));
    }
    Value::Array(out)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let secret = std::env::var("JWT_HS256_SECRET").context("JWT_HS256_SECRET must be set")?;
    let database_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://todo:todo@127.0.0.1:5432/todo".into());
    let (db, connection) = tokio_postgres::connect(&database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let run_dir = cpu::run_dir();
    let port = pg_port(&database_url);
    let ms_per_tick = 1000.0 / cpu::clock_ticks() as f64;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let users: Arc<Vec<(String, String)>> = Arc::new(
        (0..args.users)
            .map(|i| {
                let user = format!("cpu-{run}-{i}");
                let token = e2e_tests::user_token(&user, false, &secret);
                (user, token)
            })
            .collect(),
    );
    let names: Vec<String> = users.iter().map(|(u, _)| u.clone()).collect();
    for (label, pid) in cpu::named_pids(&run_dir) {
        let profile = cpu::profile_of(pid);
        if !profile.is_empty() {
            println!("{label}: {profile} build (pid {pid})");
        }
    }

    let before = cpu::sample(&run_dir, port);
    if before.procs.is_empty() {
        bail!(
            "no stack process found under {}; is ./scripts/dev up running?",
            run_dir.display()
        );
    }
    let pidstat = if args.pidstat {
        Some(Pidstat::start(&before)?)
    } else {
        None
    };
    let started = Instant::now();
    let tasks = send_creates(&args, &users).await?;
    let send_s = started.elapsed().as_secs_f64();
    let delivery = wait_delivered(&db, &names, &tasks).await?;
    tokio::time::sleep(args.tail).await;
    let after = cpu::sample(&run_dir, port);
    let pidstat = match pidstat {
        Some(p) => Some(p.stop().await?),
        None => None,
    };
    let length = started.elapsed();
    let load = cpu::window(&before, &after);
    println!(
        "sent {} of {} creates in {send_s:.1} s; delivered {:.1} s after the last",
        tasks.len(),
        args.creates,
        delivery.as_secs_f64()
    );

    let idle = if args.idle {
        println!(
            "idle window of {:.1} s for the baseline…",
            length.as_secs_f64()
        );
        let b = cpu::sample(&run_dir, port);
        tokio::time::sleep(length).await;
        Some(cpu::window(&b, &cpu::sample(&run_dir, port)))
    } else {
        None
    };
    let table = rows(&load, idle.as_ref(), ms_per_tick);
    let mut out = report(
        &args,
        tasks.len(),
        length.as_secs_f64(),
        &table,
        &load,
        ms_per_tick,
    );
    if let Some(ps) = &pidstat {
        out["pidstat"] = print_pidstat(&before, &load, length.as_secs_f64(), ps, ms_per_tick);
    }
    out["profiles"] = json!(
        cpu::named_pids(&run_dir)
            .iter()
            .map(|(l, p)| (l.clone(), json!(cpu::profile_of(*p))))
            .collect::<serde_json::Map<_, _>>()
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&out)?)
            .with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}
