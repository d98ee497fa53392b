//! Keepalive pings and the idle timeout.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use wsx::{CloseCode, Config, Error, Message, Timeout};

use crate::util::*;

/// With keepalive on, an idle connection pings, and a live peer's pong keeps it open.
#[tokio::test]
async fn keepalive_pings_a_live_peer() {
    let url = echo_server(Config::default()).await;
    let config = Config::default()
        .keepalive(Some(Duration::from_millis(100)))
        .keepalive_timeout(Duration::from_millis(2000));
    let (mut ws, _) = connector().config(config).connect(&url).await.unwrap();
    // Reading for a while: the pongs to our keepalive pings arrive as messages.
    let mut pongs = 0;
    while pongs < 3 {
        match within("pongs", ws.recv()).await.unwrap().unwrap() {
            Message::Pong(_) => pongs += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    ws.send(Message::text("still open")).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("still open"));
}

/// A peer that stops answering is closed with 1011 after the keepalive timeout.
#[tokio::test]
async fn silent_peer_is_closed_with_1011() {
    let (listener, addr) = listener().await;
    let config = Config::default()
        .keepalive(Some(Duration::from_millis(100)))
        .keepalive_timeout(Duration::from_millis(200));
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = wsx::Acceptor::new().config(config).accept(tcp).await.unwrap();
        ws.recv().await
    });
    let mut silent = raw_client(addr, &[]).await; // never answers
    let err = within("keepalive timeout", server).await.unwrap().unwrap().unwrap_err();
    assert!(matches!(err, Error::Timeout(Timeout::Keepalive)), "{err}");
    assert_eq!(err.close_code(), Some(CloseCode::INTERNAL_ERROR));
    // what the silent peer received: a ping, then Close 1011
    let mut got = Vec::new();
    within("closed", silent.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got[0], 0x89, "a ping first");
    let close = got.iter().position(|&b| b == 0x88).expect("a Close frame");
    assert_eq!(&got[close + 2..close + 4], &1011u16.to_be_bytes());
}

/// Without keepalive, the idle timeout closes with 1001.
#[tokio::test]
async fn idle_timeout_closes_with_1001() {
    let (listener, addr) = listener().await;
    let config = Config::default().idle_timeout(Some(Duration::from_millis(200)));
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = wsx::Acceptor::new().config(config).accept(tcp).await.unwrap();
        ws.recv().await
    });
    let mut idle = raw_client(addr, &[]).await;
    let err = within("idle timeout", server).await.unwrap().unwrap().unwrap_err();
    assert!(matches!(err, Error::Timeout(Timeout::Idle)), "{err}");
    let mut got = Vec::new();
    within("closed", idle.read_to_end(&mut got)).await.unwrap();
    assert_eq!(&got[..4], &[0x88, got[1], 0x03, 0xe9], "Close 1001");
}
