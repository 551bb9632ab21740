//! Wires notification: configuration, telemetry, the database, the
//! channels and the server.

use std::sync::Arc;

use anyhow::Context;
use auth::Authenticator;
use dapr_http::DaprClient;
use notification::config::Config;
use notification::email::EmailSender;
use notification::push::PushSender;
use notification::state::StateClient;
use notification::store::Store;
use notification::{AppState, app};
use service::db::{self, PostgresCheck};
use settings::{ProcessEnv, Settings};
use telemetry::metrics::Metrics;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_settings(&Settings::new(&ProcessEnv)).context("configuration")?;
    let common = &config.common;
    telemetry::init("notification", &common.log_filter, common.log_format);
    config.callbacks.log_posture();
    if config.push.allow_private {
        tracing::warn!(
            "NOTIFICATION_PUSH_ALLOW_PRIVATE_ENDPOINTS is on: test setting, never in production"
        );
    }

    let pool = db::connect_and_migrate(
        common,
        notification::migrations(),
        notification::MIGRATION_TABLE,
    )
    .await?;
    let dapr = DaprClient::new(
        common.dapr_http_endpoint.clone(),
        common.dapr_api_token.clone(),
        common.dapr_timeout,
    );
    let state = StateClient::new(
        &common.dapr_http_endpoint,
        common.dapr_api_token.clone(),
        &config.state_store,
        common.dapr_timeout,
    );
    let credentials = notification::email::credentials(&config.smtp, &state).await?;
    let email =
        EmailSender::new(&config.smtp, credentials, &config.link_base).context("SMTP settings")?;
    let push = match &config.push.vapid_private_key {
        Some(key) => Some(
            PushSender::new(
                key,
                &config.push.subject,
                config.push.ttl,
                config.push.allow_private,
            )
            .map_err(|e| anyhow::anyhow!("VAPID_PRIVATE_KEY: {e}"))?,
        ),
        None => {
            tracing::warn!(
                "VAPID_PRIVATE_KEY is not set: push deliveries will be recorded as failed"
            );
            None
        }
    };
    if let Some(push) = &push {
        tracing::info!(application_server_key = %push.public_key(), "web push ready");
    }

    let metrics = Metrics::new("todo_notification");
    let tasks = tokio_util::task::TaskTracker::new();
    let app_state = AppState {
        store: Store::new(pool.clone()),
        state,
        dapr,
        pubsub: common.pubsub_name.clone(),
        email: Some(email),
        push,
        authenticator: Arc::new(Authenticator::new(&config.auth)),
        retry_delays: config.retry_delays.clone(),
        late_limit: config.late_limit,
        record_ttl: config.record_ttl,
        link_base: config.link_base.clone(),
        allow_private_endpoints: config.push.allow_private,
        tasks: tasks.clone(),
    };
    let checks: Vec<Box<dyn service::health::ReadinessCheck>> = vec![Box::new(PostgresCheck(pool))];
    // When SIGTERM came: the deliveries' wait below gets what is left of
    // the one grace period, so the whole stop stays inside the pod's
    // termination grace (Knative derives it from timeoutSeconds, 30 s).
    let stop_requested = tokio::spawn(async {
        service::server::shutdown_signal().await;
        tokio::time::Instant::now()
    });
    service::server::bind_and_serve(
        "notification",
        common.port,
        common.cors.apply(app(
            app_state,
            config.callbacks.clone(),
            checks,
            metrics,
            common.request_timeout,
        )),
        common.shutdown_grace,
    )
    .await?;
    // Requests are over (answered, or cut at the grace); the deliveries
    // they started still run to their recorded outcome for the rest of the
    // grace (a send is bounded by its own deadline).
    tasks.close();
    let deadline = match stop_requested.is_finished() {
        true => stop_requested
            .await
            .unwrap_or_else(|_| tokio::time::Instant::now()),
        false => tokio::time::Instant::now(),
    } + common.shutdown_grace;
    if tokio::time::timeout_at(deadline, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            in_flight = tasks.len(),
            "deliveries still running at shutdown; their records age into unknown"
        );
    }
    Ok(())
}
