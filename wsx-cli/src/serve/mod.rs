//! `wsx serve`: the ready server. One port: the chat page at `/`, WebSocket echo at `/echo`,
//! chat rooms at `/chat/{room}`, `/healthz` and `/metrics`; with --exec, a program per
//! WebSocket on any other path (`exec.rs`), or with --exec-shared one program for all of them
//! (`shared.rs`); with --tcp-forward, WebSockets carried to TCP servers (`session.rs`); with
//! --static, a directory's files on any other path (`static_files.rs`). This module binds (the
//! TCP port, and --unix's socket), accepts and shuts down; upgrades are answered directly on the connection (`conn.rs`), everything else by hyper
//! (`http.rs`); sessions are in `session.rs`.

mod auth;
mod broker;
mod bus;
mod conn;
mod exec;
mod http;
mod limit;
mod link;
mod metrics;
mod proxy;
mod reply;
mod rooms;
mod route;
mod safepath;
mod session;
mod shared;
mod state;
mod static_files;
mod stop;
mod superchat;
mod upgrade;

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ::http::HeaderValue;
use anyhow::Context as _;
use tokio::net::TcpListener;
#[cfg(unix)]
use tokio::net::UnixListener;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use wsx::tls::tokio_rustls::TlsAcceptor;

use self::broker::Broker;
use self::rooms::{History, Rooms};
use self::state::State;
use crate::args::ServeArgs;

/// No Unix sockets here: `--unix` is refused at startup.
#[cfg(not(unix))]
type UnixListener = TcpListener;

/// Runs the server until SIGINT or SIGTERM, then closes every connection with 1001.
pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let listener =
        bind(args.listen).with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let unix = args.unix.as_deref().map(bind_unix).transpose()?;
    let tls = tls_acceptor(&args)?;
    let node = node_name(&args, addr)?;
    let rooms = rooms(&args, &node)?;
    let auth = auth::Auth::from_args(&args).context("cannot set up token authentication")?;
    for forward in &args.tcp_forward {
        if !route::free_for_forward(&forward.path) {
            anyhow::bail!("--tcp-forward {}: that path is served already", forward.path);
        }
    }
    let exec = exec::Exec::from_args(&args, addr)?;
    let shared = shared::Shared::from_args(&args, addr.port())?;
    let files = args.static_dir.as_deref().map(static_files::StaticFiles::new).transpose()?;
    let state = State::new(args, node, rooms).with_auth(auth).with_exec(exec);
    let state = Arc::new(state.with_shared(shared).with_files(files));
    // Every task holds a clone of `alive`; when all are dropped, `all_done` yields None.
    let (alive, all_done) = mpsc::channel::<()>(1);
    if let Some(shared) = state.shared.clone() {
        let watched = state.clone();
        shared.spawn(async move { watched.shutdown.stopped().await }, alive.clone())?;
    }
    print_banner(&state, addr, tls.is_some());
    accept_until_signal(&listener, unix.as_ref(), tls.as_ref(), &state, &alive).await;
    drop(listener);
    if let Some(path) = &state.args.unix {
        // The file goes with the listener: a socket file nobody listens on is only in the way.
        drop(unix);
        let _ = std::fs::remove_file(path);
    }
    shut_down(&state, alive, all_done).await;
    Ok(())
}

/// What a client on --unix counts as: a local client (the rate limits leave loopback clients
/// alone; REMOTE_ADDR for programs), from no port.
const UNIX_PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// A listener on the Unix domain socket `path`. A socket file already there is replaced only
/// when it is stale (connecting to it is refused: its server is gone); a live one, or any other
/// kind of file, is an error, never removed.
#[cfg(unix)]
fn bind_unix(path: &std::path::Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::FileTypeExt as _;
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            anyhow::bail!("--unix {shown}: the file exists and is not a socket")
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => anyhow::bail!("--unix {shown}: a server is listening on it already"),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                info!("--unix {shown}: replacing a stale socket file");
                std::fs::remove_file(path).with_context(|| format!("--unix {shown}"))?;
            }
            Err(e) => return Err(e).with_context(|| format!("--unix {shown}")),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("--unix {shown}")),
    }
    UnixListener::bind(path).with_context(|| format!("cannot listen on {shown}"))
}

/// No Unix sockets here.
#[cfg(not(unix))]
fn bind_unix(path: &std::path::Path) -> anyhow::Result<UnixListener> {
    anyhow::bail!("--unix {}: no Unix domain sockets on this system", path.display())
}

/// A listener with a backlog larger than tokio's default of 128, so bursts of connects do not
/// wait for SYN retransmits.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// The TLS acceptor of --tls-cert and --tls-key, if given. Its certificate is read again on
/// SIGHUP (certificates renew every few weeks): new handshakes get the new one, open
/// connections keep theirs, and a reload that fails keeps the old one.
fn tls_acceptor(args: &ServeArgs) -> anyhow::Result<Option<TlsAcceptor>> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        tokio::spawn(reload_on_sighup(None));
        return Ok(None);
    };
    let reloadable = wsx::tls::ReloadableCert::load(cert, key)
        .context("cannot load the TLS certificate and key")?;
    let mut config = reloadable.server_config().context("cannot set up TLS")?;
    if args.http2 {
        // ALPN: HTTP/2 for clients that want it (browsers, proxies), HTTP/1.1 for the others.
        let mut h2 = (*config).clone();
        h2.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config = Arc::new(h2);
    }
    tokio::spawn(reload_on_sighup(Some(reloadable)));
    Ok(Some(TlsAcceptor::from(config)))
}

/// Reloads the TLS certificate on every SIGHUP (and keeps SIGHUP from ending the process).
async fn reload_on_sighup(cert: Option<Arc<wsx::tls::ReloadableCert>>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else { return };
        while hangups.recv().await.is_some() {
            match &cert {
                None => info!("SIGHUP: no certificate to reload (no --tls-cert)"),
                Some(cert) => match cert.reload() {
                    Ok(()) => info!("SIGHUP: TLS certificate reloaded"),
                    Err(e) => warn!("SIGHUP: {e}; still serving the previous certificate"),
                },
            }
        }
    }
    #[cfg(not(unix))]
    let _ = cert;
}

/// This node's name: --node, or the machine's name and the port.
fn node_name(args: &ServeArgs, addr: SocketAddr) -> anyhow::Result<HeaderValue> {
    let node = args.node.clone().unwrap_or_else(|| format!("{}:{}", hostname(), addr.port()));
    HeaderValue::from_str(&node)
        .with_context(|| format!("--node {node:?}: use letters, digits and punctuation"))
}

/// The machine's name, for the default node name.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "wsx".to_string())
}

/// The chat rooms: in this process, or shared through the Redis of --redis (the one place
/// where the Redis broker meets the rooms).
fn rooms(args: &ServeArgs, node: &HeaderValue) -> anyhow::Result<Arc<Rooms>> {
    let node = String::from_utf8_lossy(node.as_bytes());
    let history =
        History { messages: args.history, ttl: args.history_ttl, rooms: args.history_rooms };
    Ok(match &args.redis {
        None => Rooms::in_memory(args.room_backlog, history, &node),
        Some(url) => {
            let broker = Broker::new(url, &args.redis_prefix, &node, history)?;
            Rooms::shared(args.room_backlog, history, &node, Box::new(broker))
        }
    })
}

/// Says where to find everything, on stdout.
fn print_banner(state: &State, addr: SocketAddr, tls: bool) {
    let (args, node) = (&state.args, &state.node);
    let program = match (&state.exec, &state.shared) {
        (Some(exec), _) => Some(exec.describe()),
        (None, Some(shared)) => Some(shared.describe()),
        (None, None) => None,
    };
    let (http, ws) = if tls { ("https", "wss") } else { ("http", "ws") };
    let shared = match &args.redis {
        None => "in this process".to_string(),
        Some(urls) if urls.contains(',') => {
            let seeds: Vec<String> = urls.split(',').map(link::redacted).collect();
            format!("shared through the Redis Cluster at {}", seeds.join(","))
        }
        Some(url) => format!("shared through Redis at {}", link::redacted(url)),
    };
    let banner = format!(
        "wsx serve: listening on {http}://{addr}/ (open it in a browser)\n  \
         WebSocket echo: {ws}://{addr}/echo   chat rooms: {ws}://{addr}/chat/ROOM\n  \
         health: {http}://{addr}/healthz   metrics: {http}://{addr}/metrics\n  \
         node: {node}   rooms: {shared}\n{unix}{auth}{exec}{files}{console}{forwards}",
        node = String::from_utf8_lossy(node.as_bytes()),
        auth = if state.auth.is_some() {
            "  WebSocket upgrades need a token (docs/auth.md)\n"
        } else {
            ""
        },
        exec = program.map_or_else(String::new, |program| {
            format!("  any other WebSocket path: {program} (docs/exec.md)\n")
        }),
        files = state.files.as_ref().map_or_else(String::new, |f| {
            format!("  files: {} on any other path (docs/static.md)\n", f.root().display())
        }),
        unix = args.unix.as_ref().map_or_else(String::new, |path| {
            format!("  also on the Unix socket {} (--unix)\n", path.display())
        }),
        forwards = args
            .tcp_forward
            .iter()
            .map(|f| format!("  {ws}://{addr}{} carried to tcp://{}\n", f.path, f.target))
            .collect::<String>(),
        console = if args.devconsole {
            format!("  developer console: {http}://{addr}/devconsole\n")
        } else {
            String::new()
        },
    );
    // A closed stdout (a supervisor that stopped reading) must not stop the server.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(banner.as_bytes()).and_then(|()| stdout.flush());
}

/// Accepts connections (TCP, and --unix's), each on a task of its own, until SIGINT or SIGTERM.
async fn accept_until_signal(
    listener: &TcpListener,
    unix: Option<&UnixListener>,
    tls: Option<&TlsAcceptor>,
    state: &Arc<State>,
    alive: &mpsc::Sender<()>,
) {
    let signal = crate::signal::sigint_or_sigterm();
    tokio::pin!(signal);
    loop {
        let failed = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    if state.args.http2 && tls.is_none() {
                        spawn_h2c_or_http1(tcp, peer, state, alive);
                    } else {
                        spawn_connection(tcp, peer, tls, state, alive);
                    }
                    continue;
                }
                Err(e) => e,
            },
            accepted = accept_unix(unix) => match accepted {
                Ok(stream) => {
                    spawn_connection(stream, UNIX_PEER, tls, state, alive);
                    continue;
                }
                Err(e) => e,
            },
            () = &mut signal => return,
        };
        // Out of file descriptors, for example: wait instead of spinning.
        warn!("accept failed: {failed}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The next connection on --unix's socket; never without one.
#[cfg(unix)]
async fn accept_unix(unix: Option<&UnixListener>) -> std::io::Result<tokio::net::UnixStream> {
    match unix {
        Some(listener) => listener.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn accept_unix(_: Option<&UnixListener>) -> std::io::Result<tokio::net::TcpStream> {
    std::future::pending().await
}

/// Serves one accepted connection on a task of its own (after the TLS handshake with --tls-*).
fn spawn_connection<S: session::Stream>(
    tcp: S,
    peer: SocketAddr,
    tls: Option<&TlsAcceptor>,
    state: &Arc<State>,
    alive: &mpsc::Sender<()>,
) {
    let (state, alive) = (state.clone(), alive.clone());
    // Two spawns, not one future for both: the task of a plain connection is not made as large
    // as a TLS one (every connection's task holds its future).
    let Some(tls) = tls.cloned() else {
        tokio::spawn(conn::serve(tcp, peer, state, alive));
        return;
    };
    tokio::spawn(async move {
        let timeout = state.args.handshake_timeout;
        match tokio::time::timeout(timeout, tls.accept(tcp)).await {
            // --http2: what the client chose by ALPN.
            Ok(Ok(stream)) if stream.get_ref().1.alpn_protocol() == Some(b"h2") => {
                http::serve_h2(stream, peer, state, alive).await;
            }
            Ok(Ok(stream)) => conn::serve(stream, peer, state, alive).await,
            Ok(Err(e)) => debug!(%peer, "TLS handshake failed: {e}"),
            Err(_) => debug!(%peer, "TLS handshake timed out"),
        }
    });
}

/// --http2 on plain TCP: serves a connection that starts with HTTP/2's preface (h2c with prior
/// knowledge) as HTTP/2, any other as usual.
fn spawn_h2c_or_http1(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    state: &Arc<State>,
    alive: &mpsc::Sender<()>,
) {
    let (state, alive) = (state.clone(), alive.clone());
    tokio::spawn(async move {
        let timeout = state.args.handshake_timeout;
        if tokio::time::timeout(timeout, http2_preface(&tcp)).await == Ok(true) {
            http::serve_h2(tcp, peer, state, alive).await;
        } else {
            conn::serve(tcp, peer, state, alive).await;
        }
    });
}

/// Whether the first bytes on `tcp` are HTTP/2's connection preface (RFC 9113 §3.4), looked at
/// without reading them: `false` as soon as they differ.
async fn http2_preface(tcp: &tokio::net::TcpStream) -> bool {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut buf = [0u8; PREFACE.len()];
    loop {
        match tcp.peek(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if buf[..n] != PREFACE[..n] => return false,
            Ok(n) if n == PREFACE.len() => return true,
            // The start of the preface: wait for the rest.
            Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}

/// Closes every connection with 1001 and waits (up to --shutdown-timeout and a second) until
/// every connection's task has dropped its `alive`.
async fn shut_down(state: &State, alive: mpsc::Sender<()>, mut all_done: mpsc::Receiver<()>) {
    info!("shutting down: closing every connection with 1001 (going away)");
    state.shutdown.stop();
    drop(alive);
    let grace = state.args.shutdown_timeout + Duration::from_secs(1);
    if tokio::time::timeout(grace, all_done.recv()).await.is_err() {
        warn!("some connections did not close within {grace:?}; exiting anyway");
    }
    // What members sent before they were closed, and their leaves, reach the room.
    if let Some(bus) = state.rooms.bus() {
        if tokio::time::timeout(Duration::from_secs(2), bus.flush()).await.is_err() {
            warn!("the room broker did not take the last messages within 2 s");
        }
    }
    info!("stopped");
}
