//! Every way a connection ends: normal close from either side, a close code from an error, a
//! peer that does not answer Close, a peer that vanishes.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsx::{CloseCode, CloseFrame, Config, Error, Message, ProtocolError, Timeout};

use crate::util::*;

#[tokio::test]
async fn client_closes_normally() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = wsx::accept(tcp).await.unwrap();
        let mut seen = Vec::new();
        while let Some(m) = ws.recv().await {
            seen.push(m.unwrap());
        }
        seen
    });
    let mut ws = client(&format!("ws://{addr}")).await;
    ws.send(Message::text("last")).await.unwrap();
    within("close", ws.close(CloseCode::NORMAL, "bye")).await.unwrap();
    assert_eq!(
        ws.peer_close(),
        Some(&Some(CloseFrame { code: CloseCode::NORMAL, reason: "".into() }))
    );
    let seen = within("server end", server).await.unwrap();
    assert_eq!(seen, vec![Message::text("last"), Message::close(CloseCode::NORMAL, "bye")]);
}

#[tokio::test]
async fn server_closes_with_a_code() {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = wsx::accept(tcp).await.unwrap();
        ws.close(CloseCode::GOING_AWAY, "restarting").await.unwrap();
    });
    let mut ws = client(&format!("ws://{addr}")).await;
    let got = within("recv", ws.recv()).await.unwrap().unwrap();
    assert_eq!(got, Message::close(CloseCode::GOING_AWAY, "restarting"));
    assert!(within("end", ws.recv()).await.is_none(), "the server closes TCP, the stream ends");
}

/// A protocol violation closes with its code: the server answers an unmasked frame with 1002.
#[tokio::test]
async fn protocol_error_closes_with_1002() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = wsx::accept(tcp).await.unwrap();
        ws.recv().await
    });
    let mut tcp = raw_client(addr, &[]).await;
    tcp.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap(); // unmasked
    let mut reply = Vec::new();
    within("server closes", tcp.read_to_end(&mut reply)).await.unwrap();
    assert_eq!(&reply[..4], &[0x88, reply[1], 0x03, 0xea], "a Close frame with 1002");
    let err = within("server", server).await.unwrap().unwrap().unwrap_err();
    assert!(matches!(err, Error::Protocol(ProtocolError::UnmaskedFrame)));
    assert_eq!(err.close_code(), Some(CloseCode::PROTOCOL_ERROR));
}

/// Invalid UTF-8 closes with 1007.
#[tokio::test]
async fn invalid_text_closes_with_1007() {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = wsx::accept(tcp).await.unwrap();
        while ws.recv().await.is_some() {}
    });
    let mut tcp = raw_client(addr, &[]).await;
    tcp.write_all(&masked(0x81, b"ok \xff")).await.unwrap();
    let mut reply = Vec::new();
    within("server closes", tcp.read_to_end(&mut reply)).await.unwrap();
    assert_eq!(&reply[2..4], &1007u16.to_be_bytes());
}

/// The peer never answers our Close: we give up after the close timeout.
#[tokio::test]
async fn close_times_out_when_the_peer_is_silent() {
    let config = Config::default().close_timeout(Duration::from_millis(200));
    let (listener2, addr2) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener2.accept().await.unwrap();
        let mut ws = wsx::Acceptor::new().config(config).accept(tcp).await.unwrap();
        ws.close(CloseCode::NORMAL, "").await
    });
    let _silent = raw_client(addr2, &[]).await; // reads nothing, answers nothing
    let result = within("close timeout", server).await.unwrap();
    assert!(matches!(result, Err(Error::Timeout(Timeout::Close))), "{result:?}");
}

/// A peer that vanishes without a Close frame is reported as 1006, never as a hang.
#[tokio::test]
async fn vanished_peer_is_1006() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = wsx::accept(tcp).await.unwrap();
        ws.recv().await
    });
    let tcp = raw_client(addr, &[]).await;
    drop(tcp);
    let err = within("server sees EOF", server).await.unwrap().unwrap().unwrap_err();
    assert_eq!(err.close_code(), Some(CloseCode::ABNORMAL), "{err}");
}

/// After the closing handshake, sending is refused.
#[tokio::test]
async fn nothing_is_sent_after_close() {
    let url = echo_server(Config::default()).await;
    let mut ws = client(&url).await;
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    assert!(matches!(ws.send(Message::text("late")).await, Err(Error::Closed)));
    assert!(ws.recv().await.is_none());
}
