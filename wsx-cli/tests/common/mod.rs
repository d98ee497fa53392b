//! What the integration tests of the binary share: a `wsx serve` on a free loopback port,
//! stopped by its process id, and small client helpers.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsx::Message;

pub(crate) const WSX: &str = env!("CARGO_BIN_EXE_wsx");

/// A running `wsx serve`, killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: String,
}

impl Server {
    pub(crate) fn start(extra: &[&str]) -> Self {
        let child = Command::new(WSX)
            .args(["serve", "--listen", "127.0.0.1:0", "--log"])
            .arg(std::env::var("WSX_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("WSX_TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("the wsx binary starts");
        Self::from_child(child)
    }

    /// A `wsx serve` started by the caller (stdout piped): waits for its banner and reads its
    /// address from it.
    pub(crate) fn from_child(mut child: Child) -> Self {
        let mut first = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut first).unwrap();
        // Keep reading, so the server never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        // "wsx serve: listening on http://127.0.0.1:PORT/ (open it in a browser)"
        let addr = first
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string();
        Self { child, addr }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub(crate) fn signal(&self, signal: &str) {
        let status =
            Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    pub(crate) async fn http_get(&self, path: &str) -> String {
        let mut tcp = tokio::net::TcpStream::connect(&self.addr).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.addr);
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut reply = String::new();
        tcp.read_to_string(&mut reply).await.unwrap();
        reply
    }

    pub(crate) async fn metric(&self, name: &str) -> u64 {
        let metrics = self.http_get("/metrics").await;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connection to `addr` that has been used for a plain request already (`GET /healthz`, its
/// whole response read): an upgrade sent on it next goes through hyper's path, not the first
/// request's.
pub(crate) async fn kept_alive(addr: &str) -> tokio::net::TcpStream {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut reply = Vec::new();
    within("the /healthz response", async {
        loop {
            let text = String::from_utf8_lossy(&reply).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .expect("a Content-Length");
                if body.len() >= length {
                    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                    return;
                }
            }
            let mut buf = [0; 4096];
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early");
            reply.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    tcp
}

pub(crate) fn connector() -> wsx::Connector {
    wsx::Connector::new().no_proxy()
}

pub(crate) async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer in 20 s"))
}

/// The next data message, skipping pings and pongs.
pub(crate) async fn next_data<S>(ws: &mut wsx::WebSocket<S>) -> Message
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match within("message", ws.recv()).await.expect("open").expect("no error") {
            Message::Ping(_) | Message::Pong(_) => {}
            m => return m,
        }
    }
}
