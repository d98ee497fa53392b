//! An echo server: every text and binary message goes back unchanged.
//!
//! `cargo run -p wsx --example echo_server -- 127.0.0.1:9001 [deflate]`
//! (`deflate`: accept permessage-deflate when a client offers it).

use wsx::{Acceptor, Config, DeflateConfig, Limits, Message};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9001".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("echo server on ws://{}", listener.local_addr()?);
    let deflate = std::env::args().nth(2).is_some_and(|a| a == "deflate");
    let config = Config::default()
        .limits(Limits::default().max_message_size(64 << 20))
        .deflate(deflate.then(DeflateConfig::default));
    loop {
        let (tcp, peer) = listener.accept().await?;
        let acceptor = Acceptor::new().config(config.clone());
        tokio::spawn(async move {
            let mut ws = match acceptor.accept(tcp).await {
                Ok(ws) => ws,
                Err(e) => return eprintln!("{peer}: {e}"),
            };
            while let Some(message) = ws.recv().await {
                match message {
                    // `feed` queues; the next `recv` writes the whole burst in one go.
                    Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                        if let Err(e) = ws.feed(m).await {
                            return eprintln!("{peer}: {e}");
                        }
                    }
                    Ok(_) => {} // pings are answered by the library
                    Err(e) => return eprintln!("{peer}: {e}"),
                }
            }
        });
    }
}
