//! WebSockets over HTTP/2 (RFC 8441), our client against a hyper HTTP/2 server running
//! `wsx::hyper::upgrade`: many WebSockets on one connection, a stalled one that does not stall
//! the others (per-stream flow control), the stream limit, and a server that does not allow it.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use wsx::{Accept, Config, Message};

use crate::util::*;

/// Echo at `/echo`; at `/flood`, 4 MiB of binary messages sent at once, then echo; `/refuse`
/// is refused (403, "not here").
async fn handle(
    mut request: http::Request<Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let flood = request.uri().path() == "/flood";
    if request.uri().path() == "/refuse" {
        let refusal = wsx::HandshakeError::Rejected {
            status: http::StatusCode::FORBIDDEN,
            reason: "not here".to_string(),
        };
        return Ok(refusal.to_response().unwrap().map(Full::from));
    }
    let upgraded = wsx::hyper::upgrade(&mut request, Config::default(), |_, upgrade| {
        Ok(Accept::new().subprotocol(upgrade.choose_subprotocol(["chat"])))
    });
    Ok(match upgraded {
        Ok((response, websocket)) => {
            tokio::spawn(async move {
                let Ok(mut ws) = websocket.await else { return };
                if flood {
                    for _ in 0..64 {
                        if ws.send(Message::binary(vec![7u8; 64 * 1024])).await.is_err() {
                            return;
                        }
                    }
                }
                echo_ws(ws).await;
            });
            response
        }
        Err(refusal) => refusal.to_response().unwrap().map(Full::from),
    })
}

/// A hyper HTTP/2 server (h2c with prior knowledge); `connect_protocol`: whether it allows
/// extended CONNECT; at most `streams` concurrent streams per connection.
async fn h2_server(connect_protocol: bool, streams: u32) -> String {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                builder.max_concurrent_streams(streams);
                if connect_protocol {
                    builder.enable_connect_protocol();
                }
                let _ = builder.serve_connection(TokioIo::new(tcp), service_fn(handle)).await;
            });
        }
    });
    format!("ws://{addr}")
}

#[tokio::test]
async fn a_hundred_websockets_on_one_http2_connection() {
    let base = h2_server(true, 200).await;
    let h2 = connector().subprotocols(["chat"]).connect_http2(&base).await.unwrap();
    let mut sockets = Vec::new();
    for _ in 0..100 {
        let (ws, response) = within("open", h2.open(&format!("{base}/echo"))).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(ws.subprotocol(), Some("chat"));
        sockets.push(ws);
    }
    for (i, ws) in sockets.iter_mut().enumerate() {
        ws.send(Message::text(format!("socket {i}"))).await.unwrap();
    }
    for (i, ws) in sockets.iter_mut().enumerate() {
        let echoed = within("echo", ws.recv()).await.unwrap().unwrap();
        assert_eq!(echoed, Message::text(format!("socket {i}")));
    }
    // Each closes on its own; the connection carries on for the others.
    let mut first = sockets.remove(0);
    within("close", first.close(wsx::CloseCode::NORMAL, "")).await.unwrap();
    let last = sockets.last_mut().unwrap();
    last.send(Message::text("still open")).await.unwrap();
    assert_eq!(within("echo", last.recv()).await.unwrap().unwrap(), Message::text("still open"));
    assert!(!h2.is_closed());
}

#[tokio::test]
async fn a_stalled_websocket_does_not_stall_its_neighbours() {
    let base = h2_server(true, 200).await;
    let h2 = connector().connect_http2(&base).await.unwrap();
    // Never read: the server's 4 MiB wait on this stream's flow-control window.
    let (stalled, _) = h2.open(&format!("{base}/flood")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // 99 neighbours on the same connection, each echoing 20 messages, all the while.
    let mut neighbours = Vec::new();
    for _ in 0..99 {
        neighbours.push(h2.open(&format!("{base}/echo")).await.unwrap().0);
    }
    for i in 0..20 {
        for ws in &mut neighbours {
            ws.send(Message::text(format!("{i}"))).await.unwrap();
        }
        for ws in &mut neighbours {
            let echoed = within("a neighbour's echo", ws.recv()).await.unwrap().unwrap();
            assert_eq!(echoed, Message::text(format!("{i}")));
        }
    }
    drop(stalled);
}

#[tokio::test]
async fn the_stream_limit_queues_the_next_websocket() {
    let base = h2_server(true, 2).await;
    let h2 = connector().connect_http2(&base).await.unwrap();
    let (mut a, _) = h2.open(&format!("{base}/echo")).await.unwrap();
    let (_b, _) = h2.open(&format!("{base}/echo")).await.unwrap();
    // A third waits for a free stream (the server allows two) ...
    let url = format!("{base}/echo");
    let third = tokio::spawn({
        let h2 = h2.clone();
        async move { h2.open(&url).await.map(|(ws, _)| ws) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!third.is_finished(), "a third stream opened beyond the server's limit of 2");
    // ... until one closes.
    within("close", a.close(wsx::CloseCode::NORMAL, "")).await.unwrap();
    while within("close", a.recv()).await.is_some() {}
    drop(a);
    let mut c = within("the third", third).await.unwrap().unwrap();
    c.send(Message::text("third")).await.unwrap();
    assert_eq!(within("echo", c.recv()).await.unwrap().unwrap(), Message::text("third"));
}

#[tokio::test]
async fn a_server_that_does_not_allow_it_is_refused_clearly() {
    let base = h2_server(false, 200).await;
    let error = connector().connect_http2(&base).await.unwrap_err().to_string();
    assert!(error.contains("does not allow WebSockets over HTTP/2"), "{error}");
    // A plain HTTP/1.1 server: it does not speak HTTP/2 at all.
    let http1 = echo_server(Config::default()).await;
    let error = connector().connect_http2(&http1).await.unwrap_err().to_string();
    assert!(error.contains("did not speak HTTP/2"), "{error}");
}

#[tokio::test]
async fn refusals_over_http2_keep_their_status_and_body() {
    let base = h2_server(true, 200).await;
    let h2 = connector().connect_http2(&base).await.unwrap();
    match h2.open(&format!("{base}/refuse")).await {
        Err(wsx::Error::Handshake(wsx::HandshakeError::Status { status, body, .. })) => {
            assert_eq!(status, 403);
            assert!(String::from_utf8_lossy(&body).contains("not here"), "{body:?}");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert!(!h2.is_closed(), "a refused stream leaves the connection up");
    let (_ws, _) = h2.open(&format!("{base}/echo")).await.unwrap();
    let error = h2.open("ws://example.com/echo").await.unwrap_err().to_string();
    assert!(error.contains("not on this HTTP/2 connection's server"), "{error}");
}
