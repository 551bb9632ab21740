//! Wires task-api: configuration, telemetry, the database, the outbox relay
//! and the HTTP server.

use std::sync::Arc;

use anyhow::Context;
use auth::Authenticator;
use dapr_http::DaprClient;
use service::db::{self, PostgresCheck};
use settings::{ProcessEnv, Settings};
use task_api::config::Config;
use task_api::{AppState, Limits, router};
use task_domain::relay::RelayMetrics;
use task_domain::{Relay, TaskRepository};
use telemetry::metrics::Metrics;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_settings(&Settings::new(&ProcessEnv)).context("configuration")?;
    let common = &config.common;
    telemetry::init("task-api", &common.log_filter, common.log_format);

    let pool = db::connect_and_migrate(
        common,
        task_domain::migrations(),
        task_domain::MIGRATION_TABLE,
    )
    .await?;

    let metrics = Metrics::new("todo_task_api");
    let relay_metrics = RelayMetrics::default();
    for (name, help, counter) in relay_metrics.counters() {
        metrics.register(name, help, counter);
    }

    let dapr = DaprClient::new(
        &common.dapr_http_endpoint,
        common.dapr_api_token.clone(),
        common.dapr_timeout,
    );
    let dapr_jobs = dapr.clone();
    let relay = Relay::new(pool.clone(), dapr, config.relay.clone(), relay_metrics)
        .with_backoff(config.relay_backoff);
    config.callback_token.log_posture();
    let state = AppState {
        repo: TaskRepository::new(pool.clone()),
        relay: relay.clone(),
        authenticator: Arc::new(Authenticator::new(&config.auth)),
    };
    // daprd is deliberately not a readiness gate: with the outbox, writes
    // succeed while it is down and are published when it is back.
    let checks: Vec<Box<dyn service::health::ReadinessCheck>> = vec![Box::new(PostgresCheck(pool))];
    let limits = Limits {
        max_body_bytes: common.max_body_bytes,
        request_timeout: common.request_timeout,
    };

    let relay_task = relay.spawn();

    tokio::spawn(task_api::retention::register_job(
        dapr_jobs,
        config.retention.schedule.clone(),
    ));
    // Every route, the retention job's included, under one CORS policy.
    let router = common.cors.apply(router(
        state,
        config.callback_token.clone(),
        checks,
        metrics,
        limits,
        config.retention.clone(),
    ));
    service::server::bind_and_serve("task-api", common.port, router, common.shutdown_grace).await?;

    relay_task.stop(common.shutdown_grace).await;
    Ok(())
}
