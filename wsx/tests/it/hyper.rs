//! One port for HTTP and WebSocket: a hyper server serves `/` and upgrades `/ws`.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsx::{Accept, Config, Message};

use crate::util::*;

async fn handle(
    mut request: http::Request<Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    if request.uri().path() == "/ws" && wsx::hyper::is_upgrade_request(&request) {
        let upgraded = wsx::hyper::upgrade(&mut request, Config::default(), |_, upgrade| {
            Ok(Accept::new().subprotocol(upgrade.choose_subprotocol(["chat"])))
        });
        return Ok(match upgraded {
            Ok((response, websocket)) => {
                tokio::spawn(async move {
                    if let Ok(ws) = websocket.await {
                        echo_ws(ws).await;
                    }
                });
                response
            }
            Err(refusal) => refusal.to_response().unwrap().map(Full::from),
        });
    }
    Ok(http::Response::new(Full::from("plain HTTP on the same port\n")))
}

async fn hyper_server() -> std::net::SocketAddr {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service_fn(handle))
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn http_and_websocket_on_one_port() {
    let addr = hyper_server().await;
    // plain HTTP
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut reply = String::new();
    within("http", tcp.read_to_string(&mut reply)).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.ends_with("plain HTTP on the same port\n"));
    // WebSocket
    let (mut ws, response) =
        connector().subprotocols(["chat"]).connect(&format!("ws://{addr}/ws")).await.unwrap();
    assert_eq!(response.status(), 101);
    assert_eq!(ws.subprotocol(), Some("chat"));
    ws.send(Message::text("through hyper")).await.unwrap();
    assert_eq!(within("echo", ws.recv()).await.unwrap().unwrap(), Message::text("through hyper"));
    // a bad upgrade gets the core's refusal through hyper
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0; 1024];
    let n = within("426", tcp.read(&mut buf)).await.unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(reply.starts_with("HTTP/1.1 426"), "{reply}");
    assert!(reply.to_ascii_lowercase().contains("sec-websocket-version: 13"), "{reply}");
}
