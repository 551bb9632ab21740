//! Serving a router until SIGTERM or Ctrl-C, then draining in-flight
//! requests for at most a grace period (shorter than the pod's termination
//! grace period, so Kubernetes never has to kill us mid-write).
//!
//! Every function is served through [`serve`], which wraps its router in
//! tower-http's `CatchPanicLayer`: a handler that panics despite the rule
//! (no unwrap on input) answers a problem+json 500 instead of dropping the
//! connection, and the process keeps serving.
//!
//! Connections are served by hyper-util's builder with a timer rather than
//! `axum::serve`: axum 0.8.9 builds its hyper connection without a timer
//! (`axum/src/serve/mod.rs`), and hyper only enforces
//! `header_read_timeout` when one is set (`hyper/src/server/conn/http1.rs`),
//! so a client that opens a connection and never finishes its request head
//! held it (and a task) forever. hyper starts that timer whenever it waits
//! for a request head (`proto/h1/conn.rs poll_read_head`), so it also closes
//! keep-alive connections idle for longer than [`HEADER_READ_TIMEOUT`].

use std::any::Any;
use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
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

/// How long a client may take to send a request head (and how long an idle
/// keep-alive connection is kept). hyper's own default, made effective.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `shutdown` resolves, then waits at most
/// `grace` for open requests to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    serve_with(listener, app, shutdown, grace, HEADER_READ_TIMEOUT).await
}

async fn serve_with(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    header_read_timeout: Duration,
) -> std::io::Result<()> {
    let app = catch_panics(app);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let connections = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "grace period over; closing open connections"
        );
    }
    Ok(())
}

/// A failed accept is never fatal. A per-connection error (the peer reset
/// before we accepted) is simply skipped; anything else (out of file
/// descriptors) is backed off for a second so the loop does not spin, as
/// `axum::serve` does.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
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

    #[tokio::test]
    async fn a_client_that_never_finishes_its_request_head_is_disconnected() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new().route("/ok", get(|| async { "fine" }));
        let server = tokio::spawn(serve_with(
            listener,
            app,
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(1),
            Duration::from_millis(300),
        ));
        let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        slow.write_all(b"GET /ok HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
        assert!(
            read.is_ok(),
            "the half-sent request was still held after 5 s"
        );
        // A complete request on a fresh connection is still served.
        let after = get_raw(port, "/ok").await;
        assert!(after.starts_with("HTTP/1.1 200"), "{after}");
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }
}
