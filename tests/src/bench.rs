//! What the socket benches (`bench_sync`, `bench_fanout`) share: the clock
//! they and PostgreSQL both read, the stack's processes as the pid files
//! name them, and a WebSocket dialled from one of many loopback source
//! addresses, so thousands of sockets do not crowd one address's ephemeral
//! ports.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client WebSocket over plain TCP.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Microseconds since the epoch: the benches and PostgreSQL share the
/// clock, so an outbox row's timestamps compare with a receive time.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

/// The pid of a process of the stack (`app-sync-gateway`, `app-task-api`),
/// from its pid file under `TODO_EVENTS_RUN` (default
/// `/var/tmp/todo-events`).
pub fn stack_pid(name: &str) -> anyhow::Result<String> {
    let run = std::env::var("TODO_EVENTS_RUN").unwrap_or_else(|_| "/var/tmp/todo-events".into());
    let file = format!("{run}/pids/{name}.pid");
    let pid = std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
    Ok(pid.trim().to_owned())
}

/// Which executable (a debug or a release build) process `pid` runs.
pub fn process_exe(pid: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|exe| exe.display().to_string())
        .unwrap_or_else(|e| format!("unknown ({e:#})"))
}

/// The resident memory of process `pid`, in KiB.
pub fn rss_kib(pid: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")
}

/// Where and how one socket connects.
pub struct Dial<'a> {
    pub server: SocketAddr,
    pub url: &'a str,
    /// Loopback source address index: the socket binds 127.0.0.1 + n.
    pub source: usize,
}

/// Opens a WebSocket as `dial` says, with `bearer` (if any) on the upgrade.
pub async fn dial(dial: &Dial<'_>, bearer: Option<&str>) -> anyhow::Result<Socket> {
    let source = Ipv4Addr::new(127, 0, 0, 1 + dial.source as u8);
    let tcp = TcpSocket::new_v4()?;
    tcp.bind((source, 0).into())?;
    let stream = tcp.connect(dial.server).await?;
    let mut request = dial.url.into_client_request()?;
    if let Some(token) = bearer {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    let (socket, _) =
        tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await?;
    Ok(socket)
}

/// The task id a gateway `event` frame carries, if `text` is one.
pub fn event_task_id(text: &str) -> Option<String> {
    let value = serde_json::from_str::<Value>(text).ok()?;
    value["data"]["task_id"].as_str().map(str::to_owned)
}

/// A stack URL, `http://IP:PORT`, as a socket address.
pub fn socket_addr(url: &str) -> anyhow::Result<SocketAddr> {
    url.trim_start_matches("http://")
        .parse()
        .with_context(|| format!("{url} as http://IP:PORT"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_frame_yields_its_task_id() {
        let frame = r#"{"type":"event","data":{"task_id":"t-1"}}"#;
        assert_eq!(event_task_id(frame).as_deref(), Some("t-1"));
    }

    #[test]
    fn other_frames_and_junk_yield_nothing() {
        assert_eq!(event_task_id(r#"{"type":"hello"}"#), None);
        assert_eq!(event_task_id("not json"), None);
    }

    #[test]
    fn a_stack_url_is_a_socket_address() {
        let addr = socket_addr("http://127.0.0.1:8090").unwrap();
        assert_eq!(addr, "127.0.0.1:8090".parse().unwrap());
        assert!(socket_addr("http://localhost:8090").is_err());
        assert!(socket_addr("http://127.0.0.1:8090/").is_err());
    }
}
