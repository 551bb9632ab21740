//! Ingest throughput through the real path: daprd publish → Kafka → audit's
//! daprd → `POST /events/task-events` → PostgreSQL.
//!
//! Publishes `BENCH_EVENTS` task events through task-api's daprd (as the
//! outbox relay does: structured CloudEvents, keyed by user), from
//! `BENCH_CONCURRENCY` publishers, and times until `audit_logs` holds them
//! all. The rows are deleted afterwards. Needs the local stack
//! (`./scripts/dev up`) and its env (`set -a; . .dev/env`):
//!
//! `cargo bench -p audit --bench ingest_throughput`

use std::time::{Duration, Instant};

use contracts::EventKind;
use contracts::testing::task_event;
use futures::StreamExt;
use uuid::Uuid;

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events: usize = env_or("BENCH_EVENTS", "5000").parse()?;
    let concurrency: usize = env_or("BENCH_CONCURRENCY", "32").parse()?;
    let users = 64;
    let dapr = env_or("TASK_API_DAPR_URL", "http://127.0.0.1:3500");
    let token = std::env::var("DAPR_API_TOKEN").ok();
    let url = env_or("DATABASE_URL", service::config::DEFAULT_DATABASE_URL);
    let prefix = format!("bench-ingest-{}-", Uuid::now_v7());

    let (db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(concurrency)
        .build()?;

    let bodies: Vec<(String, String)> = (0..events)
        .map(|i| {
            let user = format!("{prefix}{}", i % users);
            let event = task_event(EventKind::TaskCreated, &user);
            (user, event.to_json().to_string())
        })
        .collect();

    let began = Instant::now();
    let failures = futures::stream::iter(bodies)
        .map(|(user, body)| {
            let mut request = http
                .post(format!("{dapr}/v1.0/publish/pubsub/task-events"))
                .query(&[("metadata.partitionKey", user.as_str())])
                .header("content-type", "application/cloudevents+json")
                .body(body);
            if let Some(token) = &token {
                request = request.header("dapr-api-token", token);
            }
            async move {
                match request.send().await {
                    Ok(r) if r.status().as_u16() == 204 => 0,
                    _ => 1,
                }
            }
        })
        .buffer_unordered(concurrency)
        .fold(0usize, |acc, failed| async move { acc + failed })
        .await;
    let published = began.elapsed();
    anyhow::ensure!(failures == 0, "{failures} publishes failed");

    let pattern = format!("{prefix}%");
    let deadline = Instant::now() + Duration::from_secs(300);
    let stored = loop {
        let count: i64 = db
            .query_one(
                "SELECT count(*) FROM audit_logs WHERE user_id LIKE $1",
                &[&pattern],
            )
            .await?
            .get(0);
        if count as usize >= events {
            break began.elapsed();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {count} of {events} stored after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    println!(
        "published {events} events with {concurrency} publishers in {:.2}s ({:.0}/s)",
        published.as_secs_f64(),
        events as f64 / published.as_secs_f64()
    );
    println!(
        "all {events} stored in audit_logs after {:.2}s: {:.0} events stored per second end to end",
        stored.as_secs_f64(),
        events as f64 / stored.as_secs_f64()
    );
    db.execute("DELETE FROM audit_logs WHERE user_id LIKE $1", &[&pattern])
        .await?;
    Ok(())
}
