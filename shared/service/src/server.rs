//! Serving a router until SIGTERM or Ctrl-C, then draining in-flight
//! requests for at most a grace period (shorter than the pod's termination
//! grace period, so Kubernetes never has to kill us mid-write).
//!
//! Every function is served through [`serve`], which wraps its router in
//! tower-http's `CatchPanicLayer`: a handler that panics despite the rule
//! (no unwrap on input) answers a problem+json 500 instead of dropping the
//! connection, and the process keeps serving.

use std::any::Any;
use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

use crate::Problem;

/// `app` with panics in its handlers answered as a problem+json 500.
pub fn catch_panics(app: Router) -> Router {
    app.layer(CatchPanicLayer::custom(panic_response))
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "a request handler panicked");
    Problem::internal().into_response()
}

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
    let server = axum::serve(listener, catch_panics(app)).with_graceful_shutdown(async move {
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn boom() -> &'static str {
        panic!("a handler bug")
    }

    async fn get_raw(port: u16, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_problem_json_500_and_the_server_lives_on() {
        let app = Router::new()
            .route("/boom", get(boom))
            .route("/ok", get(|| async { "fine" }));
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            app,
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(1),
        ));
        let response = get_raw(port, "/boom").await;
        assert!(response.starts_with("HTTP/1.1 500"), "{response}");
        assert!(
            response
                .to_ascii_lowercase()
                .contains("content-type: application/problem+json"),
            "{response}"
        );
        assert!(response.contains(r#""status":500"#), "{response}");
        assert!(
            !response.contains("a handler bug"),
            "the panic stays in the log"
        );
        let after = get_raw(port, "/ok").await;
        assert!(
            after.starts_with("HTTP/1.1 200") && after.ends_with("fine"),
            "{after}"
        );
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }
}
