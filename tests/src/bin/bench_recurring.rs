//! Completion to next occurrence committed, on the local stack: completes
//! recurring tasks of many users through task-api at a fixed concurrency
//! and measures, per completion, from just before the request is sent to
//! the successor's insert in recurring's transaction (`tasks.created_at`,
//! set in the transaction that commits it and its events). The path is the
//! whole one: task-api's commit, its outbox relay, daprd, Kafka, recurring's
//! daprd, recurring, PostgreSQL.
//!
//! ```text
//! cargo run -p e2e-tests --bin bench_recurring -- --users 100 --tasks 10 --concurrency 16
//! ```
//! Needs the environment `./scripts/test` sets (`TODO_EVENTS_STACK=1`,
//! `JWT_HS256_SECRET`, `TASK_API_URL`, `DATABASE_URL`). Prints a Markdown
//! report; `--json PATH` also writes the figures as JSON (`scripts/bench`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use e2e_tests::Stack;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use uuid::Uuid;

struct Args {
    users: usize,
    tasks: usize,
    concurrency: usize,
    json: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        users: 100,
        tasks: 10,
        concurrency: 16,
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
            "--users" => args.users = value,
            "--tasks" => args.tasks = value,
            "--concurrency" => args.concurrency = value.max(1),
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

async fn call(stack: &Stack, user: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let mut request = stack
        .http
        .post(format!("{}{path}", stack.task_api))
        .bearer_auth(stack.token(user, false));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    if !status.is_success() {
        bail!("POST {path}: {status}");
    }
    Ok(response.json().await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let stack = Arc::new(Stack::from_env());
    let run = Uuid::new_v4().simple().to_string();
    let due = Utc::now() + chrono::Duration::hours(1);
    // One series per task: daily, so every completion has a successor.
    // Users interleaved (task 0 of every user, then task 1, …), so the
    // requests in flight belong to different users, as with real users.
    let jobs: Vec<(String, usize)> = (0..args.tasks)
        .flat_map(|t| (0..args.users).map(move |u| (u, t)))
        .map(|(u, t)| (format!("bench-recurring-{run}-{u}"), t))
        .collect();
    let created: Vec<anyhow::Result<(String, String, String)>> = futures::stream::iter(jobs)
        .map(|(user, t)| {
            let stack = stack.clone();
            async move {
                let body = json!({"title": format!("bench {t}"), "due_at": due,
                                  "recurrence": {"frequency": "daily"}});
                let task = call(&stack, &user, "/api/tasks", Some(body)).await?;
                let id = task["id"].as_str().context("id")?.to_owned();
                let series = task["series_id"].as_str().context("series_id")?.to_owned();
                Ok((user, id, series))
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let tasks: Vec<(String, String, String)> = created.into_iter().collect::<Result<_, _>>()?;
    // Let the creates drain through recurring before timing completions.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let started = Instant::now();
    let sent: Vec<anyhow::Result<(String, DateTime<Utc>)>> = futures::stream::iter(tasks.clone())
        .map(|(user, id, series)| {
            let stack = stack.clone();
            async move {
                let at = Utc::now();
                call(&stack, &user, &format!("/api/tasks/{id}/complete"), None).await?;
                Ok((series, at))
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let sent: HashMap<String, DateTime<Utc>> = sent.into_iter().collect::<Result<_, _>>()?;
    let completing = started.elapsed();

    let db = stack.db().await;
    let ids: Vec<Uuid> = sent
        .keys()
        .map(|s| Uuid::parse_str(s))
        .collect::<Result<_, _>>()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let rows = loop {
        let rows = db
            .query(
                "SELECT series_id, created_at FROM tasks WHERE series_id = ANY($1) AND occurrence = 2",
                &[&ids],
            )
            .await?;
        if rows.len() == ids.len() || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut histogram = Histogram::<u64>::new(3)?;
    for row in &rows {
        let series: Uuid = row.get(0);
        let created: DateTime<Utc> = row.get(1);
        let sent_at = sent[&series.to_string()];
        let micros = (created - sent_at).num_microseconds().unwrap_or(0).max(0);
        histogram.record(u64::try_from(micros)?)?;
    }
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "| completions | users | concurrency | successors | completion rate | p50 ms | p90 ms | p99 ms | max ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {:.0}/s | {:.1} | {:.1} | {:.1} | {:.1} |",
        sent.len(),
        args.users,
        args.concurrency,
        rows.len(),
        sent.len() as f64 / completing.as_secs_f64(),
        ms(0.5),
        ms(0.9),
        ms(0.99),
        histogram.max() as f64 / 1000.0
    );
    if rows.len() != ids.len() {
        bail!(
            "{} of {} successors missing after 120 s",
            ids.len() - rows.len(),
            ids.len()
        );
    }
    if let Some(path) = &args.json {
        let report = json!({
            "tool": "bench_recurring",
            "settings": {"users": args.users, "tasks": args.tasks, "concurrency": args.concurrency},
            "completions": sent.len(),
            "successors": rows.len(),
            "per_s": sent.len() as f64 / completing.as_secs_f64(),
            "latency_ms": {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99),
                           "max": histogram.max() as f64 / 1000.0},
        });
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}
