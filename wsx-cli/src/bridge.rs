//! `wsx bridge --tcp-listen ADDR URL`: TCP connections carried over WebSockets. Each connection
//! accepted on ADDR opens a WebSocket of its own to URL (typically a `wsx serve --tcp-forward`
//! path, which carries it on to a TCP server); its bytes go as binary messages both ways. The
//! TCP client closing its side (EOF) closes the WebSocket with 1000; the WebSocket closing (or
//! dropping) shuts the TCP connection down once what arrived before is written. A half-closed
//! TCP connection cannot be carried: WebSocket has no half-close.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn};
use wsx::CloseCode;

use crate::args::BridgeArgs;
use crate::dial::{self, Dial};
use crate::pipe::{close, pump, Ended, Ends, Framing};

/// How long the bytes already received from one side may take to be written to the other
/// once a side has ended.
const GRACE: Duration = Duration::from_secs(5);

/// Accepts TCP connections until Ctrl-C (or SIGTERM), carrying each one to `args.url`.
pub(crate) async fn run(args: BridgeArgs) -> anyhow::Result<ExitCode> {
    let connector = dial::connector(&args.client, false)?;
    if let Some(h2) = dial::http2(&args.client, connector.clone()) {
        return serve(args, h2).await;
    }
    #[cfg(unix)]
    if let Some(unix) = dial::unix(&args.client, connector.clone(), &args.url)? {
        return serve(args, unix).await;
    }
    serve(args, connector).await
}

async fn serve<D: Dial>(args: BridgeArgs, dialer: D) -> anyhow::Result<ExitCode> {
    let listener = TcpListener::bind(args.tcp_listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.tcp_listen))?;
    let addr = listener.local_addr()?;
    // The first line on stdout, for scripts (and tests) that listen on port 0.
    println!("wsx bridge: listening on tcp://{addr}/, each connection carried to {}", args.url);
    let (dialer, url): (Arc<D>, Arc<str>) = (Arc::new(dialer), args.url.into());
    let stop = crate::signal::sigint_or_sigterm();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    tokio::spawn(carry(tcp, peer, dialer.clone(), url.clone()));
                }
                Err(e) => {
                    // Out of file descriptors, for example: wait instead of spinning.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = &mut stop => return Ok(ExitCode::SUCCESS),
        }
    }
}

/// Carries one TCP connection over a WebSocket of its own, until either ends.
async fn carry<D: Dial>(tcp: TcpStream, peer: SocketAddr, dialer: Arc<D>, url: Arc<str>) {
    let mut ws = match dialer.dial(&url).await {
        Ok((ws, _)) => ws,
        Err(e) => {
            // Dropping the TCP connection tells its client: nothing is carried.
            warn!(%peer, "cannot open the WebSocket to {url}: {e}");
            return;
        }
    };
    info!(%peer, "carrying a TCP connection to {url}");
    let _ = tcp.set_nodelay(true);
    let (read, write) = tcp.into_split();
    let mut ends = Ends::spawn(read, write, Framing::Chunks);
    let ended = pump(&mut ws, &mut ends, std::future::pending(), |_, _| {}).await;
    let code = match ended {
        Ended::Output | Ended::Stopped => close(&mut ws, CloseCode::NORMAL, "").await,
        Ended::Peer(code) => code,
    };
    // What the WebSocket delivered is written before the TCP connection is shut down.
    ends.finish(GRACE).await;
    let code = code.map_or_else(|| "none".to_string(), |c| c.to_string());
    info!(%peer, close_code = %code, "TCP connection carried to its end");
}
