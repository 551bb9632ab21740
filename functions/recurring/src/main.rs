//! Wires recurring: configuration, telemetry, the database, the outbox
//! relay and the server.

use anyhow::Context;
use dapr_http::DaprClient;
use recurring::config::Config;
use recurring::ingest::IngestMetrics;
use recurring::{AppState, app};
use service::db::{self, PostgresCheck};
use settings::{ProcessEnv, Settings};
use task_domain::relay::RelayMetrics;
use task_domain::{Relay, TaskRepository};
use telemetry::metrics::Metrics;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_settings(&Settings::new(&ProcessEnv)).context("configuration")?;
    let common = &config.common;
    telemetry::init("recurring", &common.log_filter, common.log_format);
    config.callbacks.log_posture();

    // The task domain's migrations, under their advisory lock: whichever
    // of task-api and recurring starts first brings the schema up.
    let pool = db::connect_and_migrate(
        common,
        task_domain::migrations(),
        task_domain::MIGRATION_TABLE,
    )
    .await?;

    let metrics = Metrics::new("todo_recurring");
    let ingest = IngestMetrics::default();
    ingest.register(&metrics);
    let relay_metrics = RelayMetrics::default();
    for (name, help, counter) in relay_metrics.counters() {
        metrics.register(name, help, counter);
    }

    let dapr = DaprClient::new(
        &common.dapr_http_endpoint,
        common.dapr_api_token.clone(),
        common.dapr_timeout,
    );
    let relay = Relay::new(pool.clone(), dapr, config.relay.clone(), relay_metrics)
        .with_backoff(config.relay_backoff);
    let state = AppState {
        repo: TaskRepository::new(pool.clone()),
        relay: relay.clone(),
        pubsub: common.pubsub_name.clone(),
        metrics: ingest,
    };
    let checks: Vec<Box<dyn service::health::ReadinessCheck>> = vec![Box::new(PostgresCheck(pool))];

    // As in task-api: a pass in flight gets the grace period at shutdown;
    // rows it did not mark are re-published under the same event ids on
    // the next start.
    let relay_task = relay.spawn();

    service::server::bind_and_serve(
        "recurring",
        common.port,
        app(state, config.callbacks.clone(), checks, metrics),
        common.shutdown_grace,
    )
    .await?;

    relay_task.stop(common.shutdown_grace).await;
    Ok(())
}
