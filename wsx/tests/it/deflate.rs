//! permessage-deflate over TCP: negotiated when both sides want it, large compressible and
//! incompressible messages both ways, and a server without it.

use wsx::{CloseCode, Config, DeflateConfig, Limits, Message};

use crate::util::*;

fn with_deflate(config: DeflateConfig) -> Config {
    Config::default().limits(Limits::default().max_message_size(16 << 20)).deflate(Some(config))
}

#[tokio::test]
async fn echo_with_deflate_in_every_configuration() {
    let text = "permessage-deflate makes repetitive text small. ".repeat(20_000); // ~1 MiB
    let noise: Vec<u8> =
        (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    for config in [
        DeflateConfig::default(),
        DeflateConfig::default().no_context_takeover(true),
        DeflateConfig::default().max_window_bits(9).level(1),
    ] {
        let url = echo_server(with_deflate(config)).await;
        let (mut ws, response) =
            connector().config(with_deflate(config)).connect(&url).await.unwrap();
        let agreed = response.headers()["sec-websocket-extensions"].to_str().unwrap().to_string();
        assert!(agreed.starts_with("permessage-deflate"), "{agreed}");
        assert!(ws.negotiated().deflate().is_some());
        for _ in 0..3 {
            ws.send(Message::text(text.clone())).await.unwrap();
            assert_eq!(
                within("text", ws.recv()).await.unwrap().unwrap(),
                Message::text(text.clone())
            );
            ws.send(Message::binary(noise.clone())).await.unwrap();
            assert_eq!(
                within("noise", ws.recv()).await.unwrap().unwrap(),
                Message::binary(noise.clone())
            );
            ws.send(Message::text("tiny")).await.unwrap();
            assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("tiny"));
        }
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    }
}

#[tokio::test]
async fn server_without_deflate_declines() {
    let url = echo_server(Config::default()).await;
    let (mut ws, response) =
        connector().config(with_deflate(DeflateConfig::default())).connect(&url).await.unwrap();
    assert!(!response.headers().contains_key("sec-websocket-extensions"));
    assert!(ws.negotiated().deflate().is_none());
    ws.send(Message::text("plain")).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("plain"));
}
