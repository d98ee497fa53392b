//! The server's handshake hooks and limits, over TCP.

use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsx::{Accept, Acceptor, Config, Error, HandshakeError, Message, Timeout};

use crate::util::*;

/// A server whose policy allows only one Origin and speaks `chat` and `superchat`.
async fn policy_server() -> String {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let result = Acceptor::new()
                    .accept_with(tcp, |request, upgrade| {
                        if request.uri().path() != "/chat" {
                            return Err(HandshakeError::Rejected {
                                status: StatusCode::NOT_FOUND,
                                reason: format!("no endpoint at {}", request.uri().path()),
                            });
                        }
                        if upgrade.origin().is_some_and(|o| o != "http://good.example") {
                            return Err(upgrade.reject_origin());
                        }
                        let accept = Accept::new()
                            .subprotocol(upgrade.choose_subprotocol(["chat", "superchat"]))
                            .header(
                                http::header::SERVER,
                                http::HeaderValue::from_static("wsx-test"),
                            );
                        Ok(accept)
                    })
                    .await;
                if let Ok(ws) = result {
                    echo_ws(ws).await;
                }
            });
        }
    });
    format!("ws://{addr}")
}

#[tokio::test]
async fn origin_rejected_with_403() {
    let url = policy_server().await;
    let err = connector()
        .origin("http://evil.example")
        .connect(&format!("{url}/chat"))
        .await
        .unwrap_err();
    match err {
        Error::Handshake(HandshakeError::Status { status, body, .. }) => {
            assert_eq!(status, StatusCode::FORBIDDEN);
            assert!(String::from_utf8_lossy(&body).contains("evil.example"));
        }
        other => panic!("expected a 403, got {other}"),
    }
    let ok = connector().origin("http://good.example").connect(&format!("{url}/chat")).await;
    assert!(ok.is_ok());
}

#[tokio::test]
async fn subprotocol_selection_and_extra_headers() {
    let url = format!("{}/chat", policy_server().await);
    let (ws, response) =
        connector().subprotocols(["superchat", "chat"]).connect(&url).await.unwrap();
    assert_eq!(ws.subprotocol(), Some("superchat"), "the client's first supported choice");
    assert_eq!(response.headers()["server"], "wsx-test");
    let (ws, _) = connector().subprotocols(["mqtt"]).connect(&url).await.unwrap();
    assert_eq!(ws.subprotocol(), None, "nothing in common: no subprotocol");
    let (ws, _) = connector().connect(&url).await.unwrap();
    assert_eq!(ws.subprotocol(), None);
}

#[tokio::test]
async fn rejected_path_gets_its_status() {
    let url = policy_server().await;
    let err = connector().connect(&format!("{url}/nope")).await.unwrap_err();
    assert!(err.to_string().contains("404 Not Found"), "{err}");
    assert!(err.to_string().contains("no endpoint at /nope"), "{err}");
}

/// A client that sends half a request and stalls is dropped at the handshake timeout.
#[tokio::test]
async fn stalled_client_is_dropped() {
    let (listener, addr) = listener().await;
    let config = Config::default().handshake_timeout(Duration::from_millis(300));
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        Acceptor::new().config(config).accept(tcp).await.map(|_| ())
    });
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgr").await.unwrap();
    let result = within("handshake timeout", server).await.unwrap();
    assert!(matches!(result, Err(Error::Timeout(Timeout::Handshake))), "{result:?}");
    let mut rest = Vec::new();
    let n = within("dropped", tcp.read_to_end(&mut rest)).await.unwrap_or(0);
    assert_eq!(n, 0, "the server closed the connection without answering");
}

/// The first frame in the same packet as the request is not lost.
#[tokio::test]
async fn first_frame_in_the_same_packet() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = wsx::accept(tcp).await.unwrap();
        ws.recv().await.unwrap().unwrap()
    });
    let _tcp = raw_client(addr, &masked(0x81, b"early")).await;
    assert_eq!(within("first frame", server).await.unwrap(), Message::text("early"));
}

/// Malformed requests get their status and a one-line reason; plain HTTP gets 426.
#[tokio::test]
async fn refusals_over_tcp() {
    let cases: [(&str, &str); 4] = [
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 426 Upgrade Required"),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
            "HTTP/1.1 426 Upgrade Required",
        ),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n",
            "HTTP/1.1 400 Bad Request",
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n",
            "HTTP/1.1 405 Method Not Allowed",
        ),
    ];
    for (request, status) in cases {
        let (listener, addr) = listener().await;
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = wsx::accept(tcp).await;
        });
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut reply = String::new();
        within("refusal", tcp.read_to_string(&mut reply)).await.unwrap();
        assert!(reply.starts_with(status), "{request:?} got {reply:?}");
        let body = reply.split("\r\n\r\n").nth(1).unwrap();
        assert_eq!(body.lines().count(), 1, "one line of reason: {body:?}");
    }
    // over the head limit: 431
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = wsx::accept(tcp).await;
    });
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let huge = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(10_000));
    let _ = tcp.write_all(huge.as_bytes()).await;
    let mut reply = Vec::new();
    let _ = within("431", tcp.read_to_end(&mut reply)).await;
    assert!(reply.starts_with(b"HTTP/1.1 431"), "{}", String::from_utf8_lossy(&reply));
}

/// The driver `wsx serve` uses: read the request, answer an upgrade here (with a header of the
/// server's), hand anything else to an HTTP server with the bytes already read.
#[tokio::test]
async fn read_request_answers_upgrades_and_hands_the_rest_on_whole() {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        let acceptor = Acceptor::new();
        while let Ok((tcp, _)) = listener.accept().await {
            let incoming = acceptor.read_request(tcp).await.unwrap();
            if !incoming.is_upgrade() {
                // What an HTTP server would read: the request again, then the rest.
                let mut http = incoming.into_http();
                let mut head = vec![0; 64];
                let n = http.read(&mut head).await.unwrap();
                let line = String::from_utf8_lossy(&head[..n]).lines().next().unwrap().to_string();
                let body =
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{line}", line.len());
                http.write_all(body.as_bytes()).await.unwrap();
                continue;
            }
            let mut answer = incoming.decide(|_, _| Ok(Accept::new())).unwrap();
            answer.headers_mut().insert("x-served-by", http::HeaderValue::from_static("driver"));
            let ws = incoming.accept(answer).await.unwrap();
            tokio::spawn(echo_ws(ws));
        }
    });
    // A plain request is handed on whole.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    assert!(response.ends_with("GET /page HTTP/1.1"), "{response}");
    // An upgrade is answered with the server's header, and its first frame (sent with the
    // head, in one write) is not lost.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(&masked(0x81, b"early"));
    tcp.write_all(&request).await.unwrap();
    let mut buf = vec![0; 512];
    let mut got = Vec::new();
    while !got.windows(7).any(|w| w == b"\x81\x05early") {
        let n = within("the 101 and the echo", tcp.read(&mut buf)).await.unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 101") && text.contains("x-served-by: driver"), "{text}");
}

/// A request that is not an upgrade is refused by `accept` with 426, and a malformed one with
/// 400, through the same driver.
#[tokio::test]
async fn the_driver_refuses_what_is_not_an_upgrade() {
    for (request, status) in [
        (&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], "426"),
        (&b"GET / HTTP/1.1\r\nHost x\r\n\r\n"[..], "400"),
    ] {
        let (listener, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            Acceptor::new().accept(tcp).await.map(|_| ())
        });
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request).await.unwrap();
        let mut response = String::new();
        tcp.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with(&format!("HTTP/1.1 {status}")), "{response}");
        assert!(response.to_ascii_lowercase().contains("connection: close"), "{response}");
        assert!(matches!(server.await.unwrap(), Err(Error::Handshake(_))));
    }
}
