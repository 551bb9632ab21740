//! Serving a router until SIGTERM or Ctrl-C, then draining in-flight
//! requests for at most a grace period (shorter than the pod's termination
//! grace period, so Kubernetes never has to kill us mid-write).

use std::future::Future;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

/// Resolves when the process is asked to stop (SIGTERM or Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}

/// Serves `app` on `listener` until `shutdown` resolves, then waits at most
/// `grace` for open requests to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stopping_tx.send(());
    });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = &mut server => return result,
        _ = stopping_rx => {}
    }
    match tokio::time::timeout(grace, server).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "grace period over; closing open connections"
            );
            Ok(())
        }
    }
}

/// Binds `0.0.0.0:port` and serves `app` until SIGTERM or Ctrl-C.
pub async fn bind_and_serve(
    service: &'static str,
    port: u16,
    app: Router,
    grace: Duration,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", port)).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("{service} cannot listen on port {port}: {e}"),
        )
    })?;
    tracing::info!(service, port, "listening");
    serve(listener, app, shutdown_signal(), grace).await
}
