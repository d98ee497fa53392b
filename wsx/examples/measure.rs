//! Load for the measurements in `scripts/measure.sh`. With `WSX_DEFLATE=1` in the environment the
//! client offers permessage-deflate; with `WSX_DEFLATE=fresh` it asks for no context takeover.
//!
//! - `measure hold N URL`: opens N connections, prints `ready`, and holds them until stdin closes
//!   (the server's memory per idle connection is read from its RSS meanwhile). With
//!   `WSX_WARM=1` each connection first exchanges one 4 KiB text message, so that compression
//!   state that outlives a message (context takeover) is counted too.
//! - `measure burst N URL`: one connection; N 16-byte messages queued with `feed`, written with
//!   one `flush` per batch of 100, and all N echoes read back.
//! - `measure throughput N SIZE URL`: one connection; N text messages of SIZE bytes of JSON-like
//!   text, 16 in flight; prints MB/s of payload echoed.

use std::time::Instant;

use tokio::io::AsyncReadExt;
use wsx::{Config, DeflateConfig, Limits, Message};

fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

fn deflate() -> Option<DeflateConfig> {
    match std::env::var("WSX_DEFLATE").as_deref() {
        Ok("1") => Some(DeflateConfig::default()),
        Ok("fresh") => Some(DeflateConfig::default().no_context_takeover(true)),
        _ => None,
    }
}

/// JSON-like text: compresses about as well as real chat or API traffic.
fn sample(size: usize) -> String {
    let mut out = String::with_capacity(size + 100);
    let mut i = 0u64;
    while out.len() < size {
        i += 1;
        out.push_str(&format!(
            r#"{{"id":{i},"user":"user{}","room":"lobby","text":"message number {} of the load","ts":{}}},"#,
            i % 97,
            i * 7919 % 10007,
            1_700_000_000 + i * 13
        ));
    }
    out.truncate(size);
    out
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let config =
        Config::default().limits(Limits::default().max_message_size(64 << 20)).deflate(deflate());
    let connector = wsx::Connector::new().no_proxy().config(config);
    match &args[1..] {
        [mode, n, url] if mode == "hold" => {
            let n: usize = n.parse()?;
            let warm = flag("WSX_WARM").then(|| Message::text(sample(4096)));
            let mut held = Vec::with_capacity(n);
            for i in 0..n {
                let (mut ws, _) = connector.connect(url).await?;
                if let Some(message) = &warm {
                    ws.send(message.clone()).await?;
                    ws.recv().await.ok_or("closed")??;
                }
                held.push(ws);
                if (i + 1) % 1000 == 0 {
                    eprintln!("{} connections open", i + 1);
                }
            }
            println!("ready");
            let mut sink = Vec::new();
            tokio::io::stdin().read_to_end(&mut sink).await?;
            drop(held);
        }
        [mode, n, url] if mode == "burst" => {
            let n: usize = n.parse()?;
            let (mut ws, _) = connector.connect(url).await?;
            let payload = Message::binary(vec![b'x'; 16]);
            let start = Instant::now();
            let mut received = 0;
            for batch in 0..n.div_ceil(100) {
                let count = (n - batch * 100).min(100);
                for _ in 0..count {
                    ws.feed(payload.clone()).await?;
                }
                ws.flush().await?;
                for _ in 0..count {
                    match ws.recv().await {
                        Some(Ok(Message::Binary(_))) => received += 1,
                        other => return Err(format!("unexpected {other:?}").into()),
                    }
                }
            }
            eprintln!("{received} echoes in {:?}", start.elapsed());
            ws.close(wsx::CloseCode::NORMAL, "").await?;
        }
        [mode, n, size, url] if mode == "throughput" => {
            let (n, size): (usize, usize) = (n.parse()?, size.parse()?);
            let (mut ws, response) = connector.connect(url).await?;
            let deflate = response.headers().contains_key("sec-websocket-extensions");
            let message = Message::text(sample(size));
            let in_flight = 16.min(n);
            let start = Instant::now();
            for _ in 0..in_flight {
                ws.send(message.clone()).await?;
            }
            let (mut sent, mut received) = (in_flight, 0);
            while received < n {
                match ws.recv().await {
                    Some(Ok(Message::Text(t))) if t.len() == size => received += 1,
                    other => return Err(format!("unexpected {other:?}").into()),
                }
                if sent < n {
                    ws.send(message.clone()).await?;
                    sent += 1;
                }
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "throughput: {n} x {size} B echoed in {secs:.2} s: {:.1} MB/s of payload (deflate: {})",
                (n * size) as f64 / secs / 1e6,
                match (deflate, std::env::var("WSX_DEFLATE").as_deref()) {
                    (false, _) => "off",
                    (true, Ok("fresh")) => "no context takeover",
                    (true, _) => "context takeover",
                }
            );
            ws.close(wsx::CloseCode::NORMAL, "").await?;
        }
        _ => return Err("usage: measure hold N URL | burst N URL | throughput N SIZE URL".into()),
    }
    Ok(())
}
