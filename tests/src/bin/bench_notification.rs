//! Reminder lateness on the local stack: creates tasks whose reminders are
//! all due within one minute, then reads each delivery's record from
//! notification (`GET /api/notifications`) and reports sent minus due,
//! p50/p99/max. The path is the whole one: task-api's outbox, Kafka,
//! notification's view in the state store, the Dapr scheduler's job, the
//! trigger and the SMTP send to mailpit (`updated_at` of a `sent` record is
//! taken after the server accepted the message).
//!
//! ```text
//! cargo run -p e2e-tests --bin bench_notification -- --reminders 1000 --users 50 --lead 45
//! ```
//! Needs the environment `./scripts/test` sets (`TODO_EVENTS_STACK=1`,
//! `JWT_HS256_SECRET`, `TASK_API_URL`, `NOTIFICATION_URL`). Prints a
//! Markdown report. `--window SECONDS` (60) spreads the due times over a
//! shorter or longer span (a smoke-sized run); `--json PATH` also writes the
//! figures as JSON (`scripts/bench`).

use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use e2e_tests::notify::env;
use futures::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

struct Args {
    reminders: usize,
    users: usize,
    /// Seconds from start to the first due time: the creates must be done.
    lead: i64,
    /// Seconds over which the due times are spread.
    window: i64,
    json: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        reminders: 1000,
        users: 50,
        lead: 45,
        window: 60,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let raw = it.next().with_context(|| format!("{flag} needs a value"))?;
        if flag == "--json" {
            args.json = Some(raw);
            continue;
        }
        let value: usize = raw
            .parse()
            .with_context(|| format!("{flag} needs a number"))?;
        match flag.as_str() {
            "--reminders" => args.reminders = value.max(1),
            "--users" => args.users = value.clamp(1, 1000),
            "--lead" => args.lead = value as i64,
            "--window" => args.window = value.clamp(1, 3600) as i64,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let env = env();
    let run = Uuid::new_v4().simple().to_string();
    let users: Vec<String> = (0..args.users)
        .map(|i| format!("bench-notify-{run}-{i}"))
        .collect();
    for user in &users {
        env.email_for(user).await;
    }
    let start = Utc::now() + chrono::Duration::seconds(args.lead);
    let spread_ms = args.window * 1000 / args.reminders as i64;
    let created = futures::stream::iter(0..args.reminders)
        .map(|i| {
            let (env, user) = (&env, &users[i % users.len()]);
            let at = start + chrono::Duration::milliseconds(spread_ms * i as i64);
            async move {
                let body = json!({"title": format!("bench {i}"), "reminders": [{"at": at, "channels": ["email"]}]});
                env.stack.create_task(user, &body).await;
            }
        })
        .buffer_unordered(8)
        .count()
        .await;
    let ready = Utc::now();
    if ready > start {
        bail!("creating {created} tasks took past the first due time; raise --lead");
    }
    eprintln!(
        "{created} reminders due from {start} over {} s; waiting",
        args.window
    );
    tokio::time::sleep(Duration::from_secs((args.lead + args.window) as u64 + 20)).await;

    let mut lateness = Lateness::new();
    let mut missing = 0usize;
    for user in &users {
        let (_, body) = env
            .call(reqwest::Method::GET, user, "/api/notifications", None)
            .await;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        let sent: Vec<&Value> = items.iter().filter(|i| i["status"] == "sent").collect();
        missing += (args.reminders / users.len()).saturating_sub(sent.len());
        for item in sent {
            let due: DateTime<Utc> = serde_json::from_value(item["fire_at"].clone())?;
            let at: DateTime<Utc> = serde_json::from_value(item["updated_at"].clone())?;
            lateness.record((at - due).num_milliseconds());
        }
    }
    lateness.sort();
    println!("| reminders | sent | not sent | sent early | min | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {missing} | {} | {} | {} | {} | {} |",
        args.reminders,
        lateness.len(),
        lateness.early,
        ms(lateness.quantile(0.0)),
        ms(lateness.quantile(0.5)),
        ms(lateness.quantile(0.99)),
        ms(lateness.quantile(1.0)),
    );
    if let Some(path) = &args.json {
        let report = json!({
            "tool": "bench_notification",
            "settings": {"reminders": args.reminders, "users": args.users,
                         "lead_s": args.lead, "window_s": args.window},
            "sent": lateness.len(),
            "not_sent": missing,
            "sent_early": lateness.early,
            "lateness_ms": {"min": lateness.quantile(0.0), "p50": lateness.quantile(0.5),
                            "p99": lateness.quantile(0.99), "max": lateness.quantile(1.0)},
        });
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}

/// Signed lateness in milliseconds, every value kept. A send before its
/// due time is a defect to show, not to clamp to zero; hdrhistogram holds
/// only unsigned values, and shifting them by an offset would cost its
/// precision (at an offset of an hour its buckets are seconds wide), so
/// the quantiles are exact nearest-rank over the sorted values.
struct Lateness {
    values: Vec<i64>,
    early: usize,
}

impl Lateness {
    fn new() -> Self {
        Self {
            values: Vec::new(),
            early: 0,
        }
    }

    fn record(&mut self, ms: i64) {
        if ms < 0 {
            self.early += 1;
        }
        self.values.push(ms);
    }

    fn sort(&mut self) {
        self.values.sort_unstable();
    }

    fn len(&self) -> usize {
        self.values.len()
    }

    /// The nearest-rank `q`-quantile; `None` when nothing was recorded.
    fn quantile(&self, q: f64) -> Option<i64> {
        if self.values.is_empty() {
            return None;
        }
        debug_assert!(self.values.is_sorted(), "quantile before sort");
        let rank = ((q * self.values.len() as f64).ceil() as usize).clamp(1, self.values.len());
        Some(self.values[rank - 1])
    }
}

fn ms(value: Option<i64>) -> String {
    value.map_or_else(|| "—".to_owned(), |v| format!("{v} ms"))
}
