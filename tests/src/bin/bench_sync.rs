//! The sync gateway under many sockets, against the running local stack:
//! opens `--sockets` WebSockets spread over `--users` users, measures the
//! gateway's RSS per idle socket, then writes `--writes` tasks through the
//! API (round robin over the users) and measures API write → client
//! receive latency on every socket of the written user.
//!
//! `cargo run --release -p e2e-tests --bin bench_sync -- --sockets 1000 --users 100 --writes 500`
//! (needs `./scripts/dev up`; the gateway's pid is read from the stack's
//! pid file, `TODO_EVENTS_PIDS`, default `/var/tmp/todo-events/pids`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn arg(name: &str, default: usize) -> anyhow::Result<usize> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args.get(i + 1).context(name.to_owned())?.parse()?),
        None => Ok(default),
    }
}

fn gateway_rss_kib() -> anyhow::Result<u64> {
    let dir =
        std::env::var("TODO_EVENTS_PIDS").unwrap_or_else(|_| "/var/tmp/todo-events/pids".into());
    let pid = std::fs::read_to_string(format!("{dir}/app-sync-gateway.pid"))?;
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim()))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")
}

/// task id → when its create was sent.
type Sent = Arc<Mutex<HashMap<String, Instant>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (sockets, users, writes) = (
        arg("--sockets", 1000)?,
        arg("--users", 100)?,
        arg("--writes", 500)?,
    );
    let secret = std::env::var("JWT_HS256_SECRET").context("JWT_HS256_SECRET (source .dev/env)")?;
    let api = std::env::var("TASK_API_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let ws = std::env::var("SYNC_GATEWAY_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8090".into())
        .replacen("http", "ws", 1)
        + "/ws/tasks";
    let run = uuid::Uuid::now_v7();
    let user = |i: usize| format!("bench-sync-{run}-{}", i % users);

    let before = gateway_rss_kib()?;
    let sent: Sent = Arc::default();
    let latencies = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let mut readers = Vec::with_capacity(sockets);
    for i in 0..sockets {
        let mut request = ws.as_str().into_client_request()?;
        let token = e2e_tests::user_token(&user(i), false, &secret);
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
        match socket.next().await {
            Some(Ok(Message::Text(t))) if t.contains("\"hello\"") => {}
            other => bail!("socket {i}: no hello: {other:?}"),
        }
        let (sent, latencies) = (sent.clone(), latencies.clone());
        readers.push(tokio::spawn(async move {
            while let Some(Ok(frame)) = socket.next().await {
                let Message::Text(text) = frame else { continue };
                let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
                    continue;
                };
                let Some(task) = value["data"]["task_id"].as_str() else {
                    continue;
                };
                let at = sent.lock().ok().and_then(|s| s.get(task).copied());
                if let (Some(at), Ok(mut h)) = (at, latencies.lock()) {
                    let _ = h.record(at.elapsed().as_micros() as u64);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = gateway_rss_kib()?;
    println!(
        "{sockets} idle sockets: gateway RSS {before} KiB -> {idle} KiB, {:.1} KiB per socket",
        (idle.saturating_sub(before)) as f64 / sockets as f64
    );

    let http = reqwest::Client::new();
    let started = Instant::now();
    for i in 0..writes {
        let token = e2e_tests::user_token(&user(i), false, &secret);
        let at = Instant::now();
        let response = http
            .post(format!("{api}/api/tasks"))
            .bearer_auth(token)
            .json(&serde_json::json!({"title": format!("bench {i}")}))
            .send()
            .await?;
        let body: serde_json::Value = response.json().await?;
        let id = body["id"].as_str().context("created task id")?.to_owned();
        if let Ok(mut s) = sent.lock() {
            s.insert(id, at);
        }
    }
    let elapsed = started.elapsed();
    let expected = (writes * sockets / users) as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while latencies.lock().map(|h| h.len()).unwrap_or(0) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let h = latencies
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    println!(
        "{writes} writes in {:.1} s ({:.0}/s); {} of {expected} deliveries; write→receive p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        elapsed.as_secs_f64(),
        writes as f64 / elapsed.as_secs_f64(),
        h.len(),
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
    );
    println!("gateway RSS after: {} KiB", gateway_rss_kib()?);
    for reader in readers {
        reader.abort();
    }
    Ok(())
}
