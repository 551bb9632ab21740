//! Wires audit: configuration, telemetry, the database, the retention job
//! and the server.

use std::sync::Arc;

use anyhow::Context;
use audit::config::Config;
use audit::ingest::IngestMetrics;
use audit::store::AuditStore;
use audit::{AppState, app};
use auth::Authenticator;
use dapr_http::DaprClient;
use service::db::{self, PostgresCheck};
use settings::{ProcessEnv, Settings};
use telemetry::metrics::Metrics;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_settings(&Settings::new(&ProcessEnv)).context("configuration")?;
    let common = &config.common;
    telemetry::init("audit", &common.log_filter, common.log_format);
    config.callbacks.log_posture();

    let pool = db::connect_and_migrate(common, audit::migrations(), audit::MIGRATION_TABLE).await?;

    let metrics = Metrics::new("todo_audit");
    let ingest = IngestMetrics::default();
    ingest.register(&metrics);

    let dapr = DaprClient::new(
        common.dapr_http_endpoint.clone(),
        common.dapr_api_token.clone(),
        common.dapr_timeout,
    );
    tokio::spawn(audit::retention::register_job(
        dapr,
        config.retention.schedule.clone(),
    ));

    let state = AppState {
        store: AuditStore::new(pool.clone()),
        pubsub: common.pubsub_name.clone(),
        metrics: ingest,
        authenticator: Arc::new(Authenticator::new(&config.auth)),
        retention: config.retention.clone(),
        gaps_running: audit::gaps_running(),
    };
    let checks: Vec<Box<dyn service::health::ReadinessCheck>> = vec![Box::new(PostgresCheck(pool))];

    service::server::bind_and_serve(
        "audit",
        common.port,
        common.cors.apply(app(
            state,
            config.callbacks.clone(),
            checks,
            metrics,
            common.request_timeout,
        )),
        common.shutdown_grace,
    )
    .await?;
    Ok(())
}
