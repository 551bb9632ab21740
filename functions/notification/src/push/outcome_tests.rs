//! Whether a failed push may have reached the push service, against real
//! TCP peers: a connection never made sent nothing (retry); a request
//! that got no answer, or whose connection broke after it was written,
//! may have been taken (unknown outcome, not retried by itself).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use super::{PushError, deliver};

fn request(addr: SocketAddr) -> (reqwest::Url, http::Request<Vec<u8>>) {
    let url = format!("http://{addr}/push/1");
    let request = http::Request::post(&url)
        .body(b"encrypted".to_vec())
        .unwrap();
    (reqwest::Url::parse(&url).unwrap(), request)
}

/// A peer that reads the request, then stays silent or hangs up.
async fn peer(hang_up: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = socket.read(&mut buf).await;
        if !hang_up {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    });
    addr
}

#[tokio::test]
async fn a_refused_connection_sent_nothing_and_is_retried() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let (url, req) = request(addr);
    let result = deliver(url, &[addr], req).await;
    assert!(matches!(result, Err(PushError::Failed(_))), "{result:?}");
}

#[tokio::test]
async fn a_connection_closed_after_the_request_is_an_unknown_outcome() {
    let addr = peer(true).await;
    let (url, req) = request(addr);
    let result = deliver(url, &[addr], req).await;
    assert!(matches!(result, Err(PushError::Unknown(_))), "{result:?}");
}

#[tokio::test]
async fn no_answer_to_a_sent_request_is_an_unknown_outcome() {
    let addr = peer(false).await;
    let (url, req) = request(addr);
    let result = deliver(url, &[addr], req).await;
    assert!(matches!(result, Err(PushError::Unknown(_))), "{result:?}");
}
