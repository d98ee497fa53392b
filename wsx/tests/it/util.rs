//! Servers and clients for the tests, on free loopback ports.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use wsx::{Acceptor, Config, Message, WebSocket};

/// A listener on a free loopback port.
pub(crate) async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Echoes every text and binary message, with this configuration.
pub(crate) async fn echo_ws<S>(mut ws: WebSocket<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(Ok(message)) = ws.recv().await {
        if matches!(message, Message::Text(_) | Message::Binary(_))
            && ws.send(message).await.is_err()
        {
            break;
        }
    }
}

/// An echo server; returns its `ws://` base URL.
pub(crate) async fn echo_server(config: Config) -> String {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = Acceptor::new().config(config.clone());
            tokio::spawn(async move {
                if let Ok(ws) = acceptor.accept(tcp).await {
                    echo_ws(ws).await;
                }
            });
        }
    });
    format!("ws://{addr}")
}

/// A connector that never uses a proxy from the environment.
pub(crate) fn connector() -> wsx::Connector {
    wsx::Connector::new().no_proxy()
}

/// Connects a client with the default configuration.
pub(crate) async fn client(url: &str) -> WebSocket<wsx::ClientStream> {
    connector().connect(url).await.unwrap().0
}

/// Fails the test rather than hanging.
pub(crate) async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish in 20 s"))
}

/// A raw TCP connection that has completed a WebSocket handshake as a client, and the bytes
/// the server sent after its response.
pub(crate) async fn raw_client(addr: SocketAddr, extra: &[u8]) -> TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(extra);
    tcp.write_all(&request).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    tcp
}

/// A masked client frame.
pub(crate) fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let key = [1, 2, 3, 4];
    let mut out = vec![first, 0x80 | payload.len() as u8];
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}
