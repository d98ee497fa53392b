//! wsx as a client of another implementation's echo server (the interop suite's peers:
//! `interop/python/peer.py server`, `interop/node/peer.mjs server`).
//!
//! `cargo run -p wsx --example interop_client -- ws://127.0.0.1:PORT [--deflate off|default|fresh|w9]
//! [--server-deflate off] [--cafile PEM]` (`--server-deflate off`: the server will decline).
//!
//! The server must echo text and binary, select subprotocol `chat`, and close with CODE on
//! `/close/CODE`. One line per check; exit status 1 if any failed.

use bytes::Bytes;
use wsx::{CloseCode, Config, Connector, DeflateConfig, Limits, Message, OpCode};

struct Checks {
    failures: usize,
}

impl Checks {
    fn check(&mut self, name: &str, ok: bool, detail: impl std::fmt::Display) {
        self.failures += usize::from(!ok);
        println!("{} wsx client: {name} {detail}", if ok { "ok  " } else { "FAIL" });
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let base = args.first().ok_or("usage: interop_client URL [--deflate KIND] [--cafile PEM]")?;
    let option = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let kind = option("--deflate").map_or("default", String::as_str);
    let deflate = match kind {
        "off" => None,
        "default" => Some(DeflateConfig::default().threshold(0)),
        "fresh" => Some(DeflateConfig::default().threshold(0).no_context_takeover(true)),
        "w9" => Some(DeflateConfig::default().threshold(0).max_window_bits(9)),
        other => return Err(format!("unknown --deflate {other}").into()),
    };
    let config =
        Config::default().limits(Limits::default().max_message_size(32 << 20)).deflate(deflate);
    let mut connector =
        Connector::new().no_proxy().config(config).subprotocols(["superchat", "chat"]);
    if let Some(ca) = option("--cafile") {
        connector = connector.tls(wsx::tls::client_config(Some(ca.as_ref()))?);
    }
    let mut c = Checks { failures: 0 };

    let (mut ws, response) = connector.connect(&format!("{base}/echo")).await?;
    c.check("subprotocol", ws.subprotocol() == Some("chat"), format!("{:?}", ws.subprotocol()));
    let extensions = response.headers().get("sec-websocket-extensions");
    let agreed = ws.negotiated().deflate().is_some();
    let expected = deflate.is_some() && option("--server-deflate").is_none_or(|k| k != "off");
    c.check(
        if expected { "deflate negotiated" } else { "no deflate" },
        agreed == expected,
        format!("{extensions:?}"),
    );
    for size in [0usize, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20] {
        let text = "é".repeat(size / 2);
        ws.send(Message::text(text.clone())).await?;
        let t = ws.recv().await.ok_or("closed")??;
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        ws.send(Message::binary(data.clone())).await?;
        let b = ws.recv().await.ok_or("closed")??;
        c.check(
            &format!("echo {size} B text and binary"),
            t == Message::text(text) && b == Message::binary(data),
            "",
        );
    }
    for (i, part) in ["Hel", "lo, ", "fragments"].iter().enumerate() {
        let opcode = if i == 0 { OpCode::Text } else { OpCode::Continuation };
        ws.send_fragment(opcode, Bytes::from_static(part.as_bytes()), i == 2).await?;
    }
    let m = ws.recv().await.ok_or("closed")??;
    c.check("fragmented message", m == Message::text("Hello, fragments"), "");
    ws.send(Message::Ping(Bytes::from_static(b"ping-payload"))).await?;
    let m = ws.recv().await.ok_or("closed")??;
    c.check("ping answered", m == Message::Pong(Bytes::from_static(b"ping-payload")), "");
    let closed = ws.close(CloseCode::from(4000), "bye").await;
    let code = ws.peer_close().and_then(|f| f.as_ref()).map(|f| f.code);
    c.check("close code echoed", closed.is_ok() && code == Some(4000.into()), format!("{code:?}"));

    let (mut ws, _) = connector.connect(&format!("{base}/close/4001")).await?;
    let m = ws.recv().await.ok_or("closed")??;
    let ended = ws.recv().await.is_none();
    c.check(
        "server-initiated close",
        matches!(&m, Message::Close(Some(f)) if f.code == 4001.into()) && ended,
        format!("{m:?}"),
    );
    std::process::exit(i32::from(c.failures > 0));
}
