//! The Autobahn Testsuite's testee client: runs every case of a fuzzing server, echoing each
//! message, then asks it to write its reports. It offers permessage-deflate.
//!
//! `AUTOBAHN_URL=ws://127.0.0.1:9001 cargo run --release -p wsx --example autobahn_client`
//! (or the URL as the first argument). See `scripts/autobahn.sh`.

use wsx::{Config, Connector, DeflateConfig, Limits, Message};

const AGENT: &str = "wsx";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("AUTOBAHN_URL").ok())
        .ok_or("give the fuzzing server's URL as AUTOBAHN_URL or the first argument")?;
    let base = base.trim_end_matches('/');
    // Case 9.* sends messages of up to 16 MiB.
    let config = Config::default()
        .limits(Limits::default().max_message_size(64 << 20))
        .deflate(Some(DeflateConfig::default()));
    let connector = Connector::new().no_proxy().config(config);

    let (mut ws, _) = connector.connect(&format!("{base}/getCaseCount")).await?;
    let count: usize = match ws.recv().await {
        Some(Ok(Message::Text(text))) => text.parse()?,
        other => return Err(format!("no case count: {other:?}").into()),
    };
    while ws.recv().await.is_some() {}

    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={AGENT}");
        let mut ws = match connector.connect(&url).await {
            Ok((ws, _)) => ws,
            Err(e) => {
                eprintln!("case {case}: {e}");
                continue;
            }
        };
        while let Some(message) = ws.recv().await {
            match message {
                Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                    // `feed`: the next `recv` writes a burst of echoes at once.
                    if ws.feed(m).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break, // the library already sent the right Close
            }
        }
    }

    let (mut ws, _) = connector.connect(&format!("{base}/updateReports?agent={AGENT}")).await?;
    while ws.recv().await.is_some() {}
    eprintln!("ran {count} cases");
    Ok(())
}
