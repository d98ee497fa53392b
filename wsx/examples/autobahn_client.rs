//! The Autobahn Testsuite's testee client: runs every case of a fuzzing server, echoing each
//! message, then asks it to write its reports. It offers permessage-deflate.
//!
//! `AUTOBAHN_URL=ws://127.0.0.1:9001 cargo run --release -p wsx --example autobahn_client`
//! (or the URL as the first argument). With `--http2` (feature `http2`), every case runs as a
//! WebSocket over HTTP/2 (RFC 8441), all of them on one HTTP/2 connection (for a fuzzing server
//! behind a proxy that speaks RFC 8441). See `scripts/autobahn.sh`.

use tokio::io::{AsyncRead, AsyncWrite};
use wsx::{Config, Connector, DeflateConfig, Limits, Message, WebSocket};

const AGENT: &str = "wsx";

type Failure = Box<dyn std::error::Error>;

/// Opens the WebSocket of one URL: over HTTP/1.1, or over HTTP/2.
trait Open {
    type Stream: AsyncRead + AsyncWrite + Unpin;
    async fn open(&self, url: &str) -> Result<WebSocket<Self::Stream>, wsx::Error>;
}

impl Open for Connector {
    type Stream = wsx::ClientStream;
    async fn open(&self, url: &str) -> Result<WebSocket<Self::Stream>, wsx::Error> {
        Ok(self.connect(url).await?.0)
    }
}

#[cfg(feature = "http2")]
impl Open for wsx::Http2Connection {
    type Stream = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;
    async fn open(&self, url: &str) -> Result<WebSocket<Self::Stream>, wsx::Error> {
        Ok(Self::open(self, url).await?.0)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Failure> {
    let http2 = std::env::args().any(|a| a == "--http2");
    let base = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .or_else(|| std::env::var("AUTOBAHN_URL").ok())
        .ok_or("give the fuzzing server's URL as AUTOBAHN_URL or the first argument")?;
    let base = base.trim_end_matches('/');
    // Case 9.* sends messages of up to 16 MiB.
    let config = Config::default()
        .limits(Limits::default().max_message_size(64 << 20))
        .deflate(Some(DeflateConfig::default()));
    let connector = Connector::new().no_proxy().config(config);
    if !http2 {
        return run(&connector, base).await;
    }
    #[cfg(feature = "http2")]
    return run(&connector.connect_http2(base).await?, base).await;
    #[cfg(not(feature = "http2"))]
    Err("--http2 needs the http2 feature".into())
}

/// Runs every case, then asks for the reports.
async fn run<O: Open>(open: &O, base: &str) -> Result<(), Failure> {
    let mut ws = open.open(&format!("{base}/getCaseCount")).await?;
    let count: usize = match ws.recv().await {
        Some(Ok(Message::Text(text))) => text.parse()?,
        other => return Err(format!("no case count: {other:?}").into()),
    };
    while ws.recv().await.is_some() {}

    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={AGENT}");
        match open.open(&url).await {
            Ok(ws) => echo(ws).await,
            Err(e) => eprintln!("case {case}: {e}"),
        }
    }

    let mut ws = open.open(&format!("{base}/updateReports?agent={AGENT}")).await?;
    while ws.recv().await.is_some() {}
    eprintln!("ran {count} cases");
    Ok(())
}

/// Echoes every data message until the connection ends.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocket<S>) {
    while let Some(message) = ws.recv().await {
        match message {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                // `feed`: the next `recv` writes a burst of echoes at once.
                if ws.feed(m).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(_) => {
                // The library already sent the right Close; a client then waits for the server
                // to end the connection (RFC 6455 §7.1.1; bounded by the close timer). Over
                // HTTP/2 that also ends the stream cleanly instead of resetting it.
                while ws.recv().await.is_some() {}
                break;
            }
        }
    }
}
