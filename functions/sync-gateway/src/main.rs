//! Wires sync-gateway: configuration, telemetry, the hub, the change-feed
//! client and the server; on SIGTERM, tells every socket to go away.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use auth::Authenticator;
use settings::{ProcessEnv, Settings};
use sync_gateway::config::Config;
use sync_gateway::feed::TaskApiFeed;
use sync_gateway::hub::Hub;
use sync_gateway::session::Context;
use sync_gateway::ws::Sessions;
use sync_gateway::{AppState, GatewayMetrics, router};
use telemetry::metrics::Metrics;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_settings(&Settings::new(&ProcessEnv)).context("configuration")?;
    let common = &config.common;
    telemetry::init("sync-gateway", &common.log_filter, common.log_format);
    config.callbacks.log_posture();
    match &config.web.dir {
        Some(dir) => {
            tracing::info!(dir = %dir.display(), api = %config.web.api_url, "serving the page at /")
        }
        None => tracing::info!("no page directory (WEB_DIR): serving no page at /"),
    }

    let metrics = Metrics::new("todo_sync_gateway");
    let counters = GatewayMetrics::default();
    counters.register(&metrics);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sessions = Sessions::with_limits(config.max_sockets, config.max_pending_auth);
    let state = AppState {
        session: Context {
            feed: TaskApiFeed::new(&config.task_api_url, config.feed_timeout)
                .context("the change-feed client")?,
            hub: Hub::new(config.queue),
            auth: Arc::new(Authenticator::new(&config.auth)),
            config: config.session,
            shutdown: stop_rx,
            replays: Arc::new(tokio::sync::Semaphore::new(config.max_replays)),
        },
        buffers: config.buffers,
        sessions: sessions.clone(),
        pubsub: common.pubsub_name.clone(),
        metrics: counters,
    };

    let listener = TcpListener::bind(("0.0.0.0", common.port))
        .await
        .with_context(|| format!("sync-gateway cannot listen on port {}", common.port))?;
    tracing::info!(port = common.port, "listening");
    let shutdown = async move {
        service::server::shutdown_signal().await;
        // Every session sends 1001 going away and ends.
        let _ = stop_tx.send(true);
    };
    let grace = common.shutdown_grace;
    let router = common.cors.apply(router(
        state,
        config.callbacks.clone(),
        metrics,
        &config.web,
    ));
    service::server::serve(listener, router, shutdown, grace).await?;
    // Upgraded sockets are no longer the HTTP server's: wait for their
    // close frames ourselves, within the same grace.
    let deadline = tokio::time::Instant::now() + grace;
    while sessions.open() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::info!(open = sessions.open(), "sockets closed; stopping");
    Ok(())
}
