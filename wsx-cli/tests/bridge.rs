//! `wsx bridge` and `wsx serve --tcp-forward`, on the real binaries: an HTTP/1.1 request and a
//! Redis PING carried over WebSockets (client TCP -> `wsx bridge` -> ws:// -> `wsx serve` -> TCP
//! server), the close mapping both ways (TCP EOF -> 1000 -> the other TCP connection shut down),
//! the bytes as binary messages, 502 for a target that does not answer. Needs `redis-server`
//! (Debian's package, installed by .ci/run).
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsx::Message;

use self::common::{connector, kept_alive, next_data, within, Server, WSX};

/// A child process (redis-server, wsx bridge), killed and reaped when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port (bound, read, released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A redis-server on a free loopback port, without persistence; its port once it answers.
async fn redis() -> (Killed, u16) {
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly"])
        .arg("no")
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed (.ci/run installs it)");
    let redis = Killed(child);
    within("redis-server starts", async {
        // Bounded by `within`; each try is a connect on loopback.
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    (redis, port)
}

/// A tiny HTTP/1.1 server on a free loopback port: answers each request with 200 and a body
/// naming its request line, then closes the connection (as `Connection: close` asks).
async fn http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && tcp.read(&mut byte).await.unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head);
                let body = format!("you asked for {}\n", text.lines().next().unwrap_or_default());
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}

/// `wsx bridge --tcp-listen 127.0.0.1:0 URL`; its address, read from its first line.
fn bridge(url: &str) -> (Killed, String) {
    let mut child = Command::new(WSX)
        .args(["bridge", "--tcp-listen", "127.0.0.1:0", url])
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os("WSX_TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("the wsx binary starts");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    // "wsx bridge: listening on tcp://127.0.0.1:PORT/, each connection carried to URL"
    let addr = first
        .split("tcp://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    (Killed(child), addr)
}

/// Everything `tcp` receives until its EOF.
async fn read_to_eof(tcp: &mut TcpStream) -> String {
    let mut all = Vec::new();
    within("EOF", tcp.read_to_end(&mut all)).await.unwrap();
    String::from_utf8(all).unwrap()
}

#[tokio::test]
async fn http_and_redis_through_bridge_and_forward() {
    let (_redis, redis_port) = redis().await;
    let http_port = http_server().await;
    let server = Server::start(&[
        "--tcp-forward",
        &format!("/redis=127.0.0.1:{redis_port}"),
        "--tcp-forward",
        &format!("/web=127.0.0.1:{http_port}"),
    ]);
    let (_redis_bridge, redis_addr) = bridge(&server.url("/redis"));
    let (_web_bridge, web_addr) = bridge(&server.url("/web"));

    // Redis: a PING, a SET and a GET through one connection; then EOF from the client side
    // closes the WebSocket (1000), and the bridge shuts the client's connection down.
    let mut tcp = TcpStream::connect(&redis_addr).await.unwrap();
    tcp.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
    let mut reply = [0u8; 7];
    within("PONG", tcp.read_exact(&mut reply)).await.unwrap();
    assert_eq!(&reply, b"+PONG\r\n");
    tcp.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
        .await
        .unwrap();
    let mut reply = [0u8; 16];
    within("OK and the value", tcp.read_exact(&mut reply)).await.unwrap();
    assert_eq!(&reply, b"+OK\r\n$5\r\nhello\r\n");
    tcp.shutdown().await.unwrap();
    assert_eq!(read_to_eof(&mut tcp).await, "", "EOF, nothing more");

    // HTTP/1.1: the server answers and closes; its EOF closes the WebSocket (1000) and the
    // bridge shuts the client's connection down after the response.
    let mut tcp = TcpStream::connect(&web_addr).await.unwrap();
    let request = "GET /hello?x=1 HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n";
    tcp.write_all(request.as_bytes()).await.unwrap();
    let response = read_to_eof(&mut tcp).await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\nyou asked for GET /hello?x=1 HTTP/1.1\n"), "{response}");

    // Several at once, each on a WebSocket of its own.
    let mut clients = Vec::new();
    for i in 0..5 {
        let web_addr = web_addr.clone();
        clients.push(tokio::spawn(async move {
            let mut tcp = TcpStream::connect(&web_addr).await.unwrap();
            let request = format!("GET /{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            tcp.write_all(request.as_bytes()).await.unwrap();
            read_to_eof(&mut tcp).await
        }));
    }
    for (i, client) in clients.into_iter().enumerate() {
        let response = client.await.unwrap();
        assert!(response.ends_with(&format!("you asked for GET /{i} HTTP/1.1\n")), "{response}");
    }
}

#[tokio::test]
async fn forwarded_bytes_are_binary_messages_and_closes_map() {
    let (_redis, redis_port) = redis().await;
    let server = Server::start(&["--tcp-forward", &format!("/redis=127.0.0.1:{redis_port}")]);
    let (mut ws, _) = within("connect", connector().connect(&server.url("/redis"))).await.unwrap();
    // A text message is carried as its bytes too; what comes back is binary.
    ws.send(Message::text("PING\r\n")).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::binary(&b"+PONG\r\n"[..]));
    ws.send(Message::binary(&b"*1\r\n$4\r\nPING\r\n"[..])).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::binary(&b"+PONG\r\n"[..]));
    // The TCP server closing its side (QUIT) closes the WebSocket with 1000.
    ws.send(Message::binary(&b"QUIT\r\n"[..])).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::binary(&b"+OK\r\n"[..]));
    match next_data(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("expected the close, got {other:?}"),
    }
    assert_eq!(server.metric("wsx_messages_received_total").await, 3);

    // An upgrade that comes later on a kept-alive connection (hyper's path) is carried too.
    let tcp = kept_alive(&server.addr).await;
    let (mut ws, _) =
        within("upgrade", connector().connect_on(tcp, &server.url("/redis"))).await.unwrap();
    ws.send(Message::binary(&b"PING\r\n"[..])).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::binary(&b"+PONG\r\n"[..]));
}

#[tokio::test]
async fn unreachable_targets_are_502_and_taken_paths_refused() {
    let closed = free_port();
    let server = Server::start(&["--tcp-forward", &format!("/gone=127.0.0.1:{closed}")]);
    let refused = within("connect", connector().connect(&server.url("/gone"))).await;
    let error = refused.expect_err("refused").to_string();
    assert!(error.contains("502"), "{error}");
    assert_eq!(server.metric("wsx_handshakes_rejected_total{reason=\"forward_failed\"}").await, 1);
    // Other endpoints are unchanged.
    assert!(server.http_get("/healthz").await.starts_with("HTTP/1.1 200"));

    let taken = Command::new(WSX)
        .args(["serve", "--listen", "127.0.0.1:0", "--tcp-forward", "/echo=127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!taken.status.success());
    assert!(String::from_utf8_lossy(&taken.stderr).contains("served already"));
    let malformed = Command::new(WSX)
        .args(["serve", "--tcp-forward", "redis=127.0.0.1:6379"])
        .output()
        .unwrap();
    assert!(!malformed.status.success());
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("PATH=HOST:PORT"));
}
