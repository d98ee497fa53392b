//! RFC 6455 §4.1: at most one connection per host and port in the CONNECTING state.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsx_proto::{parse_request, Accept, Limits, Upgrade};

use crate::util::*;

/// Completes the handshake on an accepted TCP connection by hand.
async fn answer(tcp: &mut tokio::net::TcpStream) {
    let mut buf = Vec::new();
    let request = loop {
        let mut chunk = [0; 1024];
        let n = tcp.read(&mut chunk).await.unwrap();
        buf.extend_from_slice(&chunk[..n]);
        if let Some(parsed) = parse_request(&buf, &Limits::default()).unwrap() {
            break parsed.value;
        }
    };
    let (response, _) = Upgrade::from_request(&request).unwrap().respond(Accept::new()).unwrap();
    let mut out = bytes::BytesMut::new();
    wsx_proto::write_response(&response, &mut out);
    tcp.write_all(&out).await.unwrap();
}

#[tokio::test]
async fn second_connect_waits_for_the_first_to_open() {
    let (listener, addr) = listener().await;
    let connector = connector();
    let url = format!("ws://{addr}/");
    let first = tokio::spawn({
        let (c, u) = (connector.clone(), url.clone());
        async move { c.connect(&u).await.map(|(ws, _)| ws) }
    });
    let (mut tcp1, _) = within("first TCP", listener.accept()).await.unwrap();
    let second = tokio::spawn({
        let (c, u) = (connector.clone(), url.clone());
        async move { c.connect(&u).await.map(|(ws, _)| ws) }
    });
    // While the first is CONNECTING, the second must not even open TCP.
    let early = tokio::time::timeout(Duration::from_millis(500), listener.accept()).await;
    assert!(early.is_err(), "a second connection opened while the first was CONNECTING");
    answer(&mut tcp1).await;
    let (mut tcp2, _) =
        within("second TCP after the first opened", listener.accept()).await.unwrap();
    answer(&mut tcp2).await;
    assert!(within("first", first).await.unwrap().is_ok());
    assert!(within("second", second).await.unwrap().is_ok());
}

#[tokio::test]
async fn second_connect_proceeds_when_the_first_fails() {
    let (listener, addr) = listener().await;
    let connector = connector();
    let url = format!("ws://{addr}/");
    let first = tokio::spawn({
        let (c, u) = (connector.clone(), url.clone());
        async move { c.connect(&u).await.map(|_| ()) }
    });
    let (tcp1, _) = within("first TCP", listener.accept()).await.unwrap();
    let second = tokio::spawn({
        let (c, u) = (connector.clone(), url.clone());
        async move { c.connect(&u).await.map(|_| ()) }
    });
    drop(tcp1); // the first fails
    assert!(within("first", first).await.unwrap().is_err());
    let (mut tcp2, _) = within("second TCP", listener.accept()).await.unwrap();
    answer(&mut tcp2).await;
    assert!(within("second", second).await.unwrap().is_ok());
}

/// Different ports are different places: no waiting between them.
#[tokio::test]
async fn different_ports_connect_in_parallel() {
    let (l1, a1) = listener().await;
    let (l2, a2) = listener().await;
    let connector = connector();
    let c1 = tokio::spawn({
        let c = connector.clone();
        async move { c.connect(&format!("ws://{a1}/")).await.map(|_| ()) }
    });
    let (mut t1, _) = within("first TCP", l1.accept()).await.unwrap();
    let c2 = tokio::spawn({
        let c = connector.clone();
        async move { c.connect(&format!("ws://{a2}/")).await.map(|_| ()) }
    });
    let (mut t2, _) =
        within("second TCP while the first is CONNECTING", l2.accept()).await.unwrap();
    answer(&mut t2).await;
    answer(&mut t1).await;
    assert!(c1.await.unwrap().is_ok() && c2.await.unwrap().is_ok());
}
