//! `wsx serve`: the ready server. One port: the chat page at `/`, WebSocket echo at `/echo`,
//! chat rooms at `/chat/{room}`, `/healthz` and `/metrics`. Upgrades are answered directly on
//! the connection (`conn.rs`), everything else by hyper; sessions are in `session.rs`.

mod broker;
mod conn;
mod metrics;
mod proxy;
mod rooms;
mod session;
mod stop;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info, warn};
use wsx::{Accept, Acceptor, Config, HandshakeError, Limits, Upgrade};

use self::broker::Broker;
use self::metrics::{BrokerStats, Metrics, Refusal};
use self::rooms::{Membership, Rooms};
use self::session::Session;
use self::stop::Stop;
use crate::args::ServeArgs;

/// The chat page: HTML, CSS and JS in one file, embedded in the binary.
const PAGE: &str = include_str!("page.html");

type Body = Full<Bytes>;

/// Which node answered (a constant: a header name made from a string is allocated each time).
const X_WSX_NODE: HeaderName = HeaderName::from_static("x-wsx-node");

/// What every connection shares.
struct State {
    args: ServeArgs,
    /// The library's handshake driver, with the connections' configuration.
    acceptor: Acceptor,
    metrics: Metrics,
    rooms: Arc<Rooms>,
    connections: Arc<Semaphore>,
    /// WebSocket connections open per client address (only with --max-per-client).
    per_client: Mutex<HashMap<IpAddr, usize>>,
    /// This node's name (X-Wsx-Node, /healthz).
    node: HeaderValue,
    shutdown: Stop,
}

/// One client's place under --max-per-client; given back when dropped.
struct ClientSlot {
    state: Arc<State>,
    client: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.state.per_client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// Where a request goes.
enum Route {
    Page,
    Favicon,
    Health,
    Metrics,
    Echo,
    Chat(String),
    NotFound,
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let listener =
        bind(args.listen).with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(wsx::tls::tokio_rustls::TlsAcceptor::from(
            wsx::tls::server_config(cert, key)
                .context("cannot load the TLS certificate and key")?,
        )),
        _ => None,
    };
    let (http, ws) = if tls.is_some() { ("https", "wss") } else { ("http", "ws") };
    let node = args.node.clone().unwrap_or_else(|| format!("{}:{}", hostname(), addr.port()));
    let node = HeaderValue::from_str(&node)
        .with_context(|| format!("--node {node:?}: use letters, digits and punctuation"))?;
    let rooms = match &args.redis {
        None => Rooms::in_memory(args.room_backlog),
        Some(url) => Rooms::with_broker(args.room_backlog, Broker::new(url, &args.redis_prefix)?),
    };
    let shared = match &args.redis {
        None => "in this process".to_string(),
        Some(url) => format!("shared through Redis at {}", broker::redacted(url)),
    };
    // A closed stdout (a supervisor that stopped reading) must not stop the server.
    let banner = format!(
        "wsx serve: listening on {http}://{addr}/ (open it in a browser)\n  \
         WebSocket echo: {ws}://{addr}/echo   chat rooms: {ws}://{addr}/chat/ROOM\n  \
         health: {http}://{addr}/healthz   metrics: {http}://{addr}/metrics\n  \
         node: {node}   rooms: {shared}\n",
        node = node.to_str().unwrap_or_default(),
    );
    {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(banner.as_bytes()).and_then(|()| stdout.flush());
    }

    let limits = Limits::default().max_message_size(args.max_message_size);
    let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
    let config = Config::default()
        .limits(limits)
        .handshake_timeout(args.handshake_timeout)
        .keepalive(nonzero(args.keepalive))
        .idle_timeout(nonzero(args.idle_timeout))
        // No context takeover by default: compression state is freed after each message, so an
        // idle connection costs a few KB, not ~350 KB (see scripts/measure.sh).
        .deflate(
            (!args.no_deflate)
                .then(|| wsx::DeflateConfig::default().no_context_takeover(!args.deflate_takeover)),
        );
    let state = Arc::new(State {
        acceptor: Acceptor::new().config(config),
        metrics: Metrics::default(),
        rooms,
        connections: Arc::new(Semaphore::new(args.max_connections)),
        per_client: Mutex::default(),
        node,
        shutdown: Stop::default(),
        args,
    });
    // Every task holds a clone of `alive`; when all are dropped, `all_done` yields None.
    let (alive, mut all_done) = mpsc::channel::<()>(1);
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors, for example: wait instead of spinning.
                        warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let (state, alive) = (state.clone(), alive.clone());
                // Two spawns, not one future for both: the task of a plain connection is not
                // made as large as a TLS one (every connection's task holds its future).
                let Some(tls) = tls.clone() else {
                    tokio::spawn(conn::serve(tcp, peer, state, alive));
                    continue;
                };
                tokio::spawn(async move {
                    let timeout = state.args.handshake_timeout;
                    match tokio::time::timeout(timeout, tls.accept(tcp)).await {
                        Ok(Ok(stream)) => conn::serve(stream, peer, state, alive).await,
                        Ok(Err(e)) => debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
            () = &mut signal => break,
        }
    }
    drop(listener);
    info!("shutting down: closing every connection with 1001 (going away)");
    state.shutdown.stop();
    drop(alive);
    let grace = state.args.shutdown_timeout + Duration::from_secs(1);
    if tokio::time::timeout(grace, all_done.recv()).await.is_err() {
        warn!("some connections did not close within {grace:?}; exiting anyway");
    }
    info!("stopped");
    Ok(())
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

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Serves HTTP/1.1 on one connection until it ends, is upgraded, or the server stops (what is
/// not a WebSocket upgrade coming first on its connection).
async fn serve_http<S>(io: S, peer: SocketAddr, state: Arc<State>, alive: mpsc::Sender<()>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let (state, alive) = (state.clone(), alive.clone());
        service_fn(move |request| handle(request, peer, state.clone(), alive.clone()))
    };
    let limits = state.acceptor.config_ref().limits_ref();
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(state.args.handshake_timeout)
        // The same head limits as wsx-proto's parser (431 beyond them); hyper's minimum is 8 KiB.
        .max_buf_size(limits.head_size().max(8192))
        .max_headers(limits.headers())
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                debug!(%peer, "HTTP connection ended: {e}");
            }
        }
        () = state.shutdown.stopped() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), connection).await;
        }
    }
    drop(alive);
}

fn route(path: &str) -> Route {
    match path {
        "/" | "/index.html" => Route::Page,
        "/favicon.ico" => Route::Favicon,
        "/healthz" => Route::Health,
        "/metrics" => Route::Metrics,
        "/echo" => Route::Echo,
        _ => match path.strip_prefix("/chat/") {
            Some(room) if valid_room(room) => Route::Chat(room.to_string()),
            _ => Route::NotFound,
        },
    }
}

/// Room names: 1 to 64 letters, digits, `-`, `_` or `.`.
fn valid_room(room: &str) -> bool {
    (1..=64).contains(&room.len())
        && room.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Bytes> {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn refusal(error: &HandshakeError) -> Response<Bytes> {
    let response = error.to_response().unwrap_or_else(|| Response::new(error.to_string()));
    response.map(Bytes::from)
}

async fn handle(
    mut request: Request<Incoming>,
    peer: SocketAddr,
    state: Arc<State>,
    alive: mpsc::Sender<()>,
) -> Result<Response<Body>, Infallible> {
    let upgrade = wsx::hyper::is_upgrade_request(&request);
    let path = request.uri().path().to_string();
    let client = proxy::client_ip(peer.ip(), request.headers(), &state.args.trust_proxy);
    let mut response = match (route(&path), upgrade) {
        (Route::Echo, true) => upgrade_to(&mut request, peer, client, None, &state, alive).await,
        (Route::Chat(room), true) => {
            upgrade_to(&mut request, peer, client, Some(room), &state, alive).await
        }
        (Route::Echo | Route::Chat(_), false) => refusal(&HandshakeError::NotUpgrade),
        (Route::Page, false) => {
            let mut page = text(StatusCode::OK, "text/html; charset=utf-8", PAGE);
            page.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            page
        }
        (Route::Favicon, _) => {
            let mut none = Response::new(Bytes::new());
            *none.status_mut() = StatusCode::NO_CONTENT;
            none
        }
        (Route::Health, _) => health(&state),
        (Route::Metrics, _) => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            state.metrics.render(state.rooms.count(), broker_stats(&state)),
        ),
        (_, upgrade) => {
            if upgrade {
                state.metrics.refused(Refusal::NotFound);
            }
            let reason = format!("no WebSocket endpoint at {path}: use /echo or /chat/ROOM\n");
            text(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", reason)
        }
    };
    // Which node answered: behind a load balancer, the one thing a client cannot otherwise tell.
    response.headers_mut().insert(X_WSX_NODE, state.node.clone());
    Ok(response.map(Full::new))
}

fn broker_stats(state: &State) -> Option<BrokerStats> {
    state.rooms.broker().map(|b| BrokerStats {
        up: b.is_up(),
        outages: b.outages(),
        undelivered: b.undelivered(),
    })
}

/// `/healthz`: 200 when serving (`degraded` while Redis is unreachable: echo and open
/// connections still work), 503 while shutting down; a JSON object naming the node.
fn health(state: &State) -> Response<Bytes> {
    let stopping = state.shutdown.is_stopping();
    let (broker, broker_up) = match state.rooms.broker() {
        None => ("memory", true),
        Some(b) => ("redis", b.is_up()),
    };
    let (status, code) = match (stopping, broker_up) {
        (true, _) => ("shutting_down", StatusCode::SERVICE_UNAVAILABLE),
        (false, false) => ("degraded", StatusCode::OK),
        (false, true) => ("ok", StatusCode::OK),
    };
    let node = state.node.to_str().unwrap_or_default().replace(['"', '\\'], "_");
    let body = format!(
        "{{\"status\":\"{status}\",\"node\":\"{node}\",\"broker\":\"{broker}\",\
         \"broker_up\":{broker_up},\"connections\":{open},\"rooms\":{rooms}}}\n",
        open = state.metrics.open(),
        rooms = state.rooms.count(),
    );
    let mut response = text(code, "application/json", body);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Whether `upgrade`'s Origin may connect: none, the same as the host the client asked for
/// (Host, or X-Forwarded-Host from a trusted proxy), or an allowed one (protection against
/// cross-site WebSocket hijacking).
fn origin_allowed(upgrade: &Upgrade, host: &str, allowed: &[String]) -> bool {
    let Some(origin) = upgrade.origin() else { return true };
    if allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    match origin.parse::<http::Uri>() {
        Ok(uri) => uri.authority().is_some_and(|a| a.as_str().eq_ignore_ascii_case(host)),
        Err(_) => false,
    }
}

/// Takes a place for `client` under --max-per-client (`None`: no limit); `Err` when it has
/// all its places.
fn client_slot(state: &Arc<State>, client: IpAddr) -> Result<Option<ClientSlot>, ()> {
    let limit = state.args.max_per_client;
    if limit == 0 {
        return Ok(None);
    }
    let mut open = state.per_client.lock().unwrap_or_else(|e| e.into_inner());
    let n = open.entry(client).or_default();
    if *n >= limit {
        return Err(());
    }
    *n += 1;
    Ok(Some(ClientSlot { state: state.clone(), client }))
}

/// What an open WebSocket holds until it ends: a place under --max-connections and one under
/// --max-per-client.
type Places = (OwnedSemaphorePermit, Option<ClientSlot>);

/// The places for one more WebSocket from `client`, or the refusal to send (503 while stopping
/// or full, 429 over --max-per-client).
fn places(state: &Arc<State>, client: IpAddr) -> Result<Places, Box<Response<Bytes>>> {
    if state.shutdown.is_stopping() {
        state.metrics.refused(Refusal::ShuttingDown);
        let reason = "shutting down\n";
        return Err(Box::new(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            reason,
        )));
    }
    let Ok(permit) = state.connections.clone().try_acquire_owned() else {
        state.metrics.refused(Refusal::Capacity);
        let reason = format!("server full: {} connections open\n", state.args.max_connections);
        return Err(Box::new(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            reason,
        )));
    };
    let Ok(slot) = client_slot(state, client) else {
        state.metrics.refused(Refusal::ClientLimit);
        let limit = state.args.max_per_client;
        let reason = format!("too many connections from {client}: at most {limit} at once\n");
        let mut response = text(StatusCode::TOO_MANY_REQUESTS, "text/plain; charset=utf-8", reason);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return Err(Box::new(response));
    };
    Ok((permit, slot))
}

/// Answers a valid upgrade from `peer`: the Origin check, the subprotocol (`chat` or
/// `superchat` in rooms), permessage-deflate as configured.
fn decide(
    state: &State,
    peer: IpAddr,
    chat: bool,
    request: &Request<()>,
    upgrade: &Upgrade,
) -> Result<Accept, HandshakeError> {
    let forwarded = proxy::forwarded_host(peer, request.headers(), &state.args.trust_proxy);
    let host = forwarded.unwrap_or(upgrade.host());
    if !origin_allowed(upgrade, host, &state.args.allow_origin) {
        return Err(upgrade.reject_origin());
    }
    let supported: &[&str] = if chat { &["chat", "superchat"] } else { &[] };
    Ok(Accept::new()
        .subprotocol(upgrade.choose_subprotocol(supported.iter().copied()))
        .deflate(state.acceptor.config_ref().deflate_config()))
}

/// Counts a refused handshake; its response.
fn refused(state: &State, client: IpAddr, error: &HandshakeError) -> Response<Bytes> {
    state.metrics.refused(match error {
        HandshakeError::OriginRejected(_) => Refusal::Origin,
        HandshakeError::UnsupportedVersion(_) => Refusal::Version,
        _ => Refusal::BadRequest,
    });
    debug!(%client, "handshake refused: {error}");
    refusal(error)
}

/// Counts an accepted handshake and joins its room, before the 101 goes out: once its
/// handshake is complete, a member receives every message sent to the room (with Redis: once
/// this node is subscribed).
async fn admitted(state: &State, room: Option<String>) -> Option<Membership> {
    state.metrics.accepted();
    let mut member = state.rooms.join(&room?);
    member.ready().await;
    Some(member)
}

/// An upgrade that hyper read (one that did not come first on its connection).
async fn upgrade_to(
    request: &mut Request<Incoming>,
    peer: SocketAddr,
    client: IpAddr,
    room: Option<String>,
    state: &Arc<State>,
    alive: mpsc::Sender<()>,
) -> Response<Bytes> {
    let places = match places(state, client) {
        Ok(places) => places,
        Err(refusal) => return *refusal,
    };
    let chat = room.is_some();
    let config = state.acceptor.config_ref().clone();
    let upgraded = wsx::hyper::upgrade(request, config, |head, upgrade| {
        decide(state, peer.ip(), chat, head, upgrade)
    });
    match upgraded {
        Ok((response, websocket)) => {
            let path = request.uri().path().to_string();
            let member = admitted(state, room).await;
            let state = state.clone();
            tokio::spawn(async move {
                match websocket.await {
                    Ok(ws) => {
                        Session { ws, client, path, member, _places: places }.run(&state).await
                    }
                    Err(e) => debug!(%client, "upgrade failed: {e}"),
                }
                drop(alive);
            });
            response
        }
        Err(error) => refused(state, client, &error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert!(matches!(route("/"), Route::Page));
        assert!(matches!(route("/echo"), Route::Echo));
        assert!(matches!(route("/chat/lobby-1"), Route::Chat(r) if r == "lobby-1"));
        assert!(matches!(route("/chat/"), Route::NotFound));
        assert!(matches!(route("/chat/a/b"), Route::NotFound));
        assert!(matches!(route("/nope"), Route::NotFound));
    }
}
