//! CPU per task create across the whole local stack, per process.
//!
//! Samples utime+stime of every stack process (`e2e_tests::cpu`: functions,
//! daprds, Kafka, the scheduler, mailpit, PostgreSQL's postmaster, its
//! background processes and each stack process's backends) over an idle
//! window first, so daprd's and Kafka's idle work can be subtracted; then
//! sends N creates at a steady rate and samples until every event is
//! delivered (the tool's users' outbox rows sent, one audit row per created
//! task) and every consumer group has committed every record the creates
//! produced (lag 0, [`lag`]), plus a quiet tail. The idle window comes
//! before the load and ends before it, so nothing the creates caused (a
//! consumer's spillover, autovacuum of the rows they wrote) is counted as
//! idle and subtracted. It reports raw, idle (scaled to the load window's
//! length) and net CPU ms, per process and per create.
//!
//! ```text
//! cargo run --release -p e2e-tests --bin cpu_per_create -- --creates 1000 --rate 50
//! ```
//! Flags: `--creates N` (1000), `--rate PER_S` (50; steady, not
//! saturation), `--users N` (50), `--tail SECONDS` (3; after the lag is
//! 0), `--idle SECONDS` (the idle window; default the load's expected
//! length, creates / rate + 10 s), `--no-idle` (skip it), `--pidstat` (run
//! Debian's `pidstat` over the load window and print its per-process
//! figures beside the tool's), `--json PATH`, `--url` (`TASK_API_URL`,
//! loopback only), `--dev PATH` (`TODO_EVENTS_DEV`, else this repository's
//! scripts/dev: its `groups` command reads the lag). Needs
//! `JWT_HS256_SECRET` and `DATABASE_URL` (the local stack's by default).
//! Linux only (`/proc`).

mod lag;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
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
    /// The idle window's length; `None` with `--no-idle`.
    idle: Option<Duration>,
    pidstat: bool,
    json: Option<String>,
    dev: PathBuf,
}

/// How long the idle window runs by default: the load's expected length
/// (the creates at their rate, plus 10 s for delivery and the tail).
fn default_idle(creates: usize, rate: f64) -> Duration {
    Duration::from_secs_f64(creates as f64 / rate + 10.0)
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        url: std::env::var("TASK_API_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into()),
        creates: 1000,
        rate: 50.0,
        users: 50,
        tail: Duration::from_secs(3),
        idle: None,
        pidstat: false,
        json: None,
        dev: std::env::var_os("TODO_EVENTS_DEV").map_or_else(
            || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/dev")),
            PathBuf::from,
        ),
    };
    let (mut idle, mut no_idle) = (None, false);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--no-idle" => no_idle = true,
            "--pidstat" => a.pidstat = true,
            _ => {
                let v = it.next().with_context(|| format!("{flag} needs a value"))?;
                match flag.as_str() {
                    "--url" => a.url = v,
                    "--creates" => a.creates = v.parse()?,
                    "--rate" => a.rate = v.parse()?,
                    "--users" => a.users = v.parse()?,
                    "--tail" => a.tail = Duration::from_secs(v.parse()?),
                    "--idle" => idle = Some(Duration::from_secs(v.parse()?)),
                    "--dev" => a.dev = PathBuf::from(v),
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
    if idle == Some(Duration::ZERO) {
        bail!("--idle must be positive (or --no-idle)");
    }
    a.idle = (!no_idle).then(|| idle.unwrap_or_else(|| default_idle(a.creates, a.rate)));
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

/// Waits until no consumer group has a record the load produced left to
/// commit ([`lag::pending`] against the positions read before the load).
async fn wait_consumed(dev: &std::path::Path, before: &lag::Positions) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let pending = lag::pending(before, &lag::read(dev).await?);
        if pending.is_empty() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(180) {
            bail!("consumers still behind after 180 s: {}", pending.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
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
#[derive(Debug, PartialEq)]
struct Row {
    label: String,
    raw: f64,
    /// The idle window's CPU scaled to the load window's length.
    idle: f64,
}

/// The idle window taken before the load, with how much of it one load
/// window is: its CPU is scaled by `load_s / idle_s`.
struct Idle {
    window: Window,
    scale: f64,
}

impl Idle {
    fn new(window: Window, idle_s: f64, load_s: f64) -> Idle {
        let scale = if idle_s > 0.0 { load_s / idle_s } else { 0.0 };
        Idle { window, scale }
    }
}

fn rows(load: &Window, idle: Option<&Idle>, ms_per_tick: f64) -> Vec<Row> {
    let mut labels: BTreeMap<&str, ()> = load.counted.keys().map(|k| (k.as_str(), ())).collect();
    if let Some(i) = idle {
        labels.extend(i.window.counted.keys().map(|k| (k.as_str(), ())));
    }
    let ms = |w: &Window, l: &str| w.counted.get(l).copied().unwrap_or(0) as f64 * ms_per_tick;
    let mut out: Vec<Row> = labels
        .keys()
        .map(|l| Row {
            label: (*l).to_owned(),
            raw: ms(load, l),
            idle: idle.map_or(0.0, |i| ms(&i.window, l) * i.scale),
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

    if cpu::sample(&run_dir, port).procs.is_empty() {
        bail!(
            "no stack process found under {}; is ./scripts/dev up running?",
            run_dir.display()
        );
    }
    // The idle window first: after the load, the creates' spillover would
    // be counted as idle and subtracted.
    let idle = match args.idle {
        Some(length) => {
            println!(
                "idle window of {:.1} s for the baseline…",
                length.as_secs_f64()
            );
            let (b, started) = (cpu::sample(&run_dir, port), Instant::now());
            tokio::time::sleep(length).await;
            let window = cpu::window(&b, &cpu::sample(&run_dir, port));
            Some((window, started.elapsed().as_secs_f64()))
        }
        None => None,
    };
    let positions = lag::read(&args.dev).await?;

    let before = cpu::sample(&run_dir, port);
    let pidstat = if args.pidstat {
        Some(Pidstat::start(&before)?)
    } else {
        None
    };
    let started = Instant::now();
    let tasks = send_creates(&args, &users).await?;
    let send_s = started.elapsed().as_secs_f64();
    let delivery = wait_delivered(&db, &names, &tasks).await?;
    let consumed = wait_consumed(&args.dev, &positions).await?;
    tokio::time::sleep(args.tail).await;
    let after = cpu::sample(&run_dir, port);
    let pidstat = match pidstat {
        Some(p) => Some(p.stop().await?),
        None => None,
    };
    let length = started.elapsed();
    let load = cpu::window(&before, &after);
    println!(
        "sent {} of {} creates in {send_s:.1} s; delivered {:.1} s after the last, \
         every consumer group caught up {:.1} s after that",
        tasks.len(),
        args.creates,
        delivery.as_secs_f64(),
        consumed.as_secs_f64()
    );

    let idle =
        idle.map(|(window, idle_s)| (Idle::new(window, idle_s, length.as_secs_f64()), idle_s));
    let table = rows(&load, idle.as_ref().map(|(i, _)| i), ms_per_tick);
    let mut out = report(
        &args,
        tasks.len(),
        length.as_secs_f64(),
        &table,
        &load,
        ms_per_tick,
    );
    if let Some((i, idle_s)) = &idle {
        out["idle_window_s"] = json!(idle_s);
        out["idle_scale"] = json!(i.scale);
        out["idle_restarted"] = json!(i.window.restarted);
        if !i.window.restarted.is_empty() {
            println!(
                "WARNING: restarted during the idle window, baseline incomplete: {:?}",
                i.window.restarted
            );
        }
    }
    out["consumed_after_s"] = json!(consumed.as_secs_f64());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn window(counted: &[(&str, u64)]) -> Window {
        Window {
            counted: counted.iter().map(|(l, t)| ((*l).to_owned(), *t)).collect(),
            ..Window::default()
        }
    }

    #[test]
    fn the_idle_window_is_scaled_to_the_load_windows_length() {
        // 10 ms per tick; idle 20 s, load 30 s: the idle CPU counts 1.5 times.
        let load = window(&[("kafka", 300), ("app-task-api", 500)]);
        let idle = Idle::new(window(&[("kafka", 40), ("scheduler", 10)]), 20.0, 30.0);
        let got = rows(&load, Some(&idle), 10.0);
        let row = |l: &str| got.iter().find(|r| r.label == l).map(|r| (r.raw, r.idle));
        assert_eq!(row("app-task-api"), Some((5000.0, 0.0)));
        assert_eq!(row("kafka"), Some((3000.0, 600.0)));
        // A process busy only while idle still has its row (net negative).
        assert_eq!(row("scheduler"), Some((0.0, 150.0)));
        // Largest net first.
        assert_eq!(got[0].label, "app-task-api");
    }

    #[test]
    fn without_an_idle_window_nothing_is_subtracted() {
        let got = rows(&window(&[("kafka", 7)]), None, 10.0);
        assert_eq!(
            got,
            [Row {
                label: "kafka".into(),
                raw: 70.0,
                idle: 0.0
            }]
        );
    }

    #[test]
    fn an_empty_idle_window_scales_to_nothing() {
        assert_eq!(Idle::new(Window::default(), 0.0, 30.0).scale, 0.0);
        assert_eq!(Idle::new(Window::default(), 30.0, 30.0).scale, 1.0);
    }

    #[test]
    fn the_default_idle_window_is_the_loads_expected_length() {
        assert_eq!(default_idle(1000, 50.0), Duration::from_secs(30));
        assert_eq!(default_idle(100, 50.0), Duration::from_secs(12));
    }

    #[test]
    fn task_apis_own_rows_are_told_apart() {
        assert!(is_task_api("app-task-api"));
        assert!(is_task_api("postgres backends ← app-task-api"));
        assert!(!is_task_api("daprd-task-api"));
    }
}
