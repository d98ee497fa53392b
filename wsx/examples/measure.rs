//! Load for the measurements in `scripts/measure.sh`:
//!
//! - `measure hold N URL`: opens N connections, prints `ready`, and holds them until stdin closes
//!   (the server's memory per idle connection is read from its RSS meanwhile).
//! - `measure burst N URL`: one connection; N 16-byte messages queued with `feed`, written with
//!   one `flush` per batch of 100, and all N echoes read back.

use std::time::Instant;

use tokio::io::AsyncReadExt;
use wsx::Message;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (mode, n, url) = match &args[1..] {
        [mode, n, url] => (mode.as_str(), n.parse::<usize>()?, url.as_str()),
        _ => return Err("usage: measure hold|burst N URL".into()),
    };
    let connector = wsx::Connector::new().no_proxy();
    match mode {
        "hold" => {
            let mut held = Vec::with_capacity(n);
            for i in 0..n {
                held.push(connector.connect(url).await?.0);
                if (i + 1) % 1000 == 0 {
                    eprintln!("{} connections open", i + 1);
                }
            }
            println!("ready");
            let mut sink = Vec::new();
            tokio::io::stdin().read_to_end(&mut sink).await?;
            drop(held);
        }
        "burst" => {
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
        _ => return Err("mode is hold or burst".into()),
    }
    Ok(())
}
