//! Messages of every size and kind, both ways, over TCP.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use wsx::{CloseCode, Config, Limits, Message, OpCode};

use crate::util::*;

#[tokio::test]
async fn text_and_binary_from_0_bytes_to_16_mib() {
    let big = Config::default().limits(Limits::default().max_message_size(16 << 20));
    let url = echo_server(big.clone()).await;
    let (mut ws, _) = connector().config(big).connect(&url).await.unwrap();
    for size in [0usize, 1, 125, 126, 127, 65535, 65536, 1 << 20, 16 << 20] {
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        ws.send(Message::binary(data.clone())).await.unwrap();
        assert_eq!(within("binary echo", ws.recv()).await.unwrap().unwrap(), Message::binary(data));
        let text = "é".repeat(size / 2);
        ws.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(within("text echo", ws.recv()).await.unwrap().unwrap(), Message::text(text));
    }
    ws.close(CloseCode::NORMAL, "done").await.unwrap();
}

#[tokio::test]
async fn fragmented_messages() {
    let url = echo_server(Config::default()).await;
    let mut ws = client(&url).await;
    ws.send_fragment(OpCode::Text, Bytes::from_static(b"Hel"), false).await.unwrap();
    ws.send(Message::Ping(Bytes::from_static(b"between"))).await.unwrap();
    ws.send_fragment(OpCode::Continuation, Bytes::from_static(b"lo"), true).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::Pong(Bytes::from_static(b"between")));
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("Hello"));
    // a large streamed message in 64 KiB pieces
    let chunk = Bytes::from(vec![7u8; 64 * 1024]);
    for i in 0..16 {
        let op = if i == 0 { OpCode::Binary } else { OpCode::Continuation };
        ws.send_fragment(op, chunk.clone(), i == 15).await.unwrap();
    }
    let echoed = within("1 MiB echo", ws.recv()).await.unwrap().unwrap();
    assert_eq!(echoed.len(), 1 << 20);
}

#[tokio::test]
async fn ping_is_answered_automatically() {
    let url = echo_server(Config::default()).await;
    let mut ws = client(&url).await;
    ws.send(Message::Ping(Bytes::from_static(b"p1"))).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::Pong(Bytes::from_static(b"p1")));
}

/// Many small messages fed, then flushed once: they arrive in order.
#[tokio::test]
async fn feed_and_flush_batches() {
    let url = echo_server(Config::default()).await;
    let mut ws = client(&url).await;
    for i in 0..1000 {
        ws.feed(Message::text(format!("m{i}"))).await.unwrap();
    }
    ws.flush().await.unwrap();
    for i in 0..1000 {
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text(format!("m{i}")));
    }
}

/// The halves of a split connection work from different tasks, and the read half answers pings
/// on its own.
#[tokio::test]
async fn split_halves_in_two_tasks() {
    let url = echo_server(Config::default()).await;
    let ws = client(&url).await;
    let (mut rx, mut tx) = ws.split();
    let writer = tokio::spawn(async move {
        for i in 0..200 {
            tx.send(Message::text(format!("{i}"))).await.unwrap();
        }
        tx
    });
    for i in 0..200 {
        let m = within("split echo", rx.next()).await.unwrap().unwrap();
        assert_eq!(m, Message::text(format!("{i}")));
    }
    let tx = writer.await.unwrap();
    let mut ws = rx.reunite(tx).unwrap();
    ws.close(CloseCode::NORMAL, "").await.unwrap();
}

/// A send waits when the peer does not read, instead of buffering without bound.
#[tokio::test]
async fn full_write_buffer_makes_send_wait() {
    let (listener, addr) = listener().await;
    // a server that accepts and then never reads
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = wsx::accept(tcp).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        drop(ws);
    });
    let config = Config::default().write_buffer(64 * 1024);
    let (mut ws, _) = connector().config(config).connect(&format!("ws://{addr}")).await.unwrap();
    let payload = Bytes::from(vec![0u8; 64 * 1024]);
    let mut sent = 0usize;
    let blocked = tokio::time::timeout(std::time::Duration::from_secs(3), async {
        loop {
            ws.send(Message::Binary(payload.clone())).await.unwrap();
            sent += payload.len();
        }
    })
    .await;
    assert!(blocked.is_err(), "send must eventually wait");
    // the kernel buffers some megabytes; we never buffer more than the configured bound
    assert!(sent < 256 << 20, "sent {sent} bytes into a peer that never reads");
    server.abort();
}
