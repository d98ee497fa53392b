//! `wsx serve`: the ready server. One port, through hyper: the chat page at `/`, WebSocket echo
//! at `/echo`, chat rooms at `/chat/{room}`, `/healthz` and `/metrics`.

mod broker;
mod metrics;
mod proxy;
mod rooms;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info, warn};
use wsx::{Accept, CloseCode, Config, HandshakeError, Limits, Message, Upgrade};

use self::broker::Broker;
use self::metrics::{BrokerStats, Metrics, Refusal};
pub(crate) use self::proxy::Network;
use self::rooms::{Membership, Rooms};
use crate::args::ServeArgs;

/// The chat page: HTML, CSS and JS in one file, embedded in the binary.
const PAGE: &str = include_str!("page.html");

type Body = Full<Bytes>;
type Ws = wsx::hyper::HyperWebSocket;

/// What every connection shares.
struct State {
    args: ServeArgs,
    config: Config,
    metrics: Metrics,
    rooms: Arc<Rooms>,
    connections: Arc<Semaphore>,
    /// WebSocket connections open per client address (only with --max-per-client).
    per_client: Mutex<HashMap<IpAddr, usize>>,
    /// This node's name (X-Wsx-Node, /healthz).
    node: HeaderValue,
    shutdown: watch::Receiver<bool>,
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
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(banner.as_bytes()).and_then(|()| stdout.flush());
    drop(stdout);

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
    let (stop, shutdown) = watch::channel(false);
    let state = Arc::new(State {
        config,
        metrics: Metrics::default(),
        rooms,
        connections: Arc::new(Semaphore::new(args.max_connections)),
        per_client: Mutex::default(),
        node,
        shutdown,
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
                let (state, tls, alive) = (state.clone(), tls.clone(), alive.clone());
                tokio::spawn(async move {
                    match tls {
                        None => serve_http(tcp, peer, state, alive).await,
                        Some(tls) => {
                            let timeout = state.args.handshake_timeout;
                            match tokio::time::timeout(timeout, tls.accept(tcp)).await {
                                Ok(Ok(stream)) => serve_http(stream, peer, state, alive).await,
                                Ok(Err(e)) => debug!(%peer, "TLS handshake failed: {e}"),
                                Err(_) => debug!(%peer, "TLS handshake timed out"),
                            }
                        }
                    }
                });
            }
            () = &mut signal => break,
        }
    }
    drop(listener);
    info!("shutting down: closing every connection with 1001 (going away)");
    let _ = stop.send(true);
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

/// Resolves once the server is stopping (the watch guard is not held across awaits).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Serves HTTP/1.1 on one connection until it ends, is upgraded, or the server stops.
async fn serve_http<S>(io: S, peer: SocketAddr, state: Arc<State>, alive: mpsc::Sender<()>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut shutdown = state.shutdown.clone();
    let service = {
        let (state, alive) = (state.clone(), alive.clone());
        service_fn(move |request| handle(request, peer, state.clone(), alive.clone()))
    };
    let limits = state.config.limits_ref();
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
        () = stopped(&mut shutdown) => {
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

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn refusal(error: &HandshakeError) -> Response<Body> {
    let response = error.to_response().unwrap_or_else(|| Response::new(error.to_string()));
    response.map(|b| Full::new(Bytes::from(b)))
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
            let mut none = Response::new(Full::new(Bytes::new()));
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
    response.headers_mut().insert("x-wsx-node", state.node.clone());
    Ok(response)
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
fn health(state: &State) -> Response<Body> {
    let stopping = *state.shutdown.borrow();
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
        open = state.metrics.open.load(std::sync::atomic::Ordering::Relaxed).max(0),
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

async fn upgrade_to(
    request: &mut Request<Incoming>,
    peer: SocketAddr,
    client: IpAddr,
    room: Option<String>,
    state: &Arc<State>,
    alive: mpsc::Sender<()>,
) -> Response<Body> {
    if *state.shutdown.borrow() {
        state.metrics.refused(Refusal::ShuttingDown);
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "shutting down\n",
        );
    }
    let Ok(permit) = state.connections.clone().try_acquire_owned() else {
        state.metrics.refused(Refusal::Capacity);
        let reason = format!("server full: {} connections open\n", state.args.max_connections);
        return text(StatusCode::SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", reason);
    };
    let Ok(slot) = client_slot(state, client) else {
        state.metrics.refused(Refusal::ClientLimit);
        let limit = state.args.max_per_client;
        let reason = format!("too many connections from {client}: at most {limit} at once\n");
        let mut response = text(StatusCode::TOO_MANY_REQUESTS, "text/plain; charset=utf-8", reason);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return response;
    };
    let trusted = &state.args.trust_proxy;
    let forwarded =
        proxy::forwarded_host(peer.ip(), request.headers(), trusted).map(str::to_string);
    let supported: &[&str] = if room.is_some() { &["chat", "superchat"] } else { &[] };
    let upgraded =
        wsx::hyper::upgrade::<_, Body, _>(request, state.config.clone(), |_, upgrade| {
            let host = forwarded.as_deref().unwrap_or(upgrade.host());
            if !origin_allowed(upgrade, host, &state.args.allow_origin) {
                return Err(upgrade.reject_origin());
            }
            Ok(Accept::new().subprotocol(upgrade.choose_subprotocol(supported.iter().copied())))
        });
    match upgraded {
        Ok((response, websocket)) => {
            state.metrics.accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = request.uri().path().to_string();
            // Join before the 101 goes out: once its handshake is complete, a member receives
            // every message sent to the room (with Redis: once this node is subscribed).
            let member = match room {
                Some(room) => {
                    let mut member = state.rooms.join(&room);
                    member.ready().await;
                    Some(member)
                }
                None => None,
            };
            let state = state.clone();
            tokio::spawn(async move {
                match websocket.await {
                    Ok(ws) => session(ws, client, path, member, state, (permit, slot)).await,
                    Err(e) => debug!(%client, "upgrade failed: {e}"),
                }
                drop(alive);
            });
            response
        }
        Err(error) => {
            state.metrics.refused(match error {
                HandshakeError::OriginRejected(_) => Refusal::Origin,
                HandshakeError::UnsupportedVersion(_) => Refusal::Version,
                _ => Refusal::BadRequest,
            });
            debug!(%client, "handshake refused: {error}");
            refusal(&error)
        }
    }
}

/// One WebSocket connection, from open to close, logged as one line at the end.
async fn session(
    mut ws: Ws,
    client: IpAddr,
    path: String,
    member: Option<Membership>,
    state: Arc<State>,
    places: (OwnedSemaphorePermit, Option<ClientSlot>),
) {
    let started = Instant::now();
    let subprotocol = ws.subprotocol().map(str::to_string);
    state.metrics.open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let code = match member {
        None => echo(&mut ws, &state).await,
        Some(member) => chat(&mut ws, member, &state).await,
    };
    state.metrics.open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    drop(places);
    let code = code.map_or_else(|| "none".to_string(), |c| c.to_string());
    info!(
        %client,
        path,
        subprotocol = subprotocol.as_deref().unwrap_or("-"),
        duration_ms = started.elapsed().as_millis() as u64,
        close_code = code,
        "connection closed"
    );
}

/// How the connection ended, as a close code: the peer's, the error's, or ours.
fn peer_code(ws: &Ws) -> Option<CloseCode> {
    ws.peer_close().map(|frame| frame.as_ref().map_or(CloseCode::NO_STATUS, |f| f.code))
}

/// What the session loop does with one received item; `Some(code)` ends it.
fn on_received(
    item: Option<Result<Message, wsx::Error>>,
    ws: &Ws,
    state: &State,
) -> Result<Option<Message>, Option<CloseCode>> {
    match item {
        Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
            state.metrics.received(m.len());
            Ok(Some(m))
        }
        Some(Ok(_)) => Ok(None),
        Some(Err(e)) => Err(e.close_code().or_else(|| peer_code(ws))),
        None => Err(peer_code(ws).or(Some(CloseCode::ABNORMAL))),
    }
}

/// Closes with `code` (bounded: a peer that does not answer is dropped).
async fn close(ws: &mut Ws, code: CloseCode, reason: &str) -> Option<CloseCode> {
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(code, reason)).await;
    Some(code)
}

async fn echo(ws: &mut Ws, state: &State) -> Option<CloseCode> {
    let mut shutdown = state.shutdown.clone();
    // One future for the whole session: made anew per message, it would register with the
    // watch channel (a lock) and unregister for every message.
    let stop = stopped(&mut shutdown);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            item = ws.recv() => match on_received(item, ws, state) {
                Ok(Some(message)) => {
                    let len = message.len();
                    // `feed` queues; the next `recv` writes a burst of echoes in one write.
                    if let Err(e) = ws.feed(message).await {
                        return e.close_code().or_else(|| peer_code(ws));
                    }
                    state.metrics.sent(len);
                }
                Ok(None) => {}
                Err(code) => return code,
            },
            () = &mut stop => {
                return close(ws, CloseCode::GOING_AWAY, "server shutting down").await;
            }
        }
    }
}

async fn chat(ws: &mut Ws, mut member: Membership, state: &State) -> Option<CloseCode> {
    let mut shutdown = state.shutdown.clone();
    let stop = stopped(&mut shutdown);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            // Stop first; then deliver before reading more: a member falls behind only when its
            // own connection does not take data, never because it talks faster than it listens.
            biased;
            () = &mut stop => {
                return close(ws, CloseCode::GOING_AWAY, "server shutting down").await;
            }
            item = member.receiver.recv() => match item {
                Ok(message) => {
                    if let Err(code) = deliver(ws, message, state).await {
                        return code;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return slow(ws, state, "too slow: fell behind the room").await;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            },
            item = ws.recv() => match on_received(item, ws, state) {
                Ok(Some(message)) => {
                    if let Err(code) = publish(ws, &member, message, state).await {
                        return code;
                    }
                }
                Ok(None) => {}
                Err(code) => return code,
            },
        }
    }
}

/// Queues a room message for this member; `Err` ends the session.
async fn deliver(ws: &mut Ws, message: Message, state: &State) -> Result<(), Option<CloseCode>> {
    let len = message.len();
    match tokio::time::timeout(state.args.slow_timeout, ws.feed(message)).await {
        Ok(Ok(())) => {
            state.metrics.sent(len);
            Ok(())
        }
        Ok(Err(e)) => Err(e.close_code().or_else(|| peer_code(ws))),
        Err(_) => Err(slow(ws, state, "too slow: the connection did not take data").await),
    }
}

/// Sends a member's message to its room. When it reaches nobody (Redis down), the sender gets a
/// notice instead, a JSON object `{"system": why, "undelivered": true}`, and stays connected.
async fn publish(
    ws: &mut Ws,
    member: &Membership,
    message: Message,
    state: &State,
) -> Result<(), Option<CloseCode>> {
    let Err(why) = member.publish(message).await else { return Ok(()) };
    let notice = format!("{{\"system\":\"{why}\",\"undelivered\":true}}");
    deliver(ws, Message::text(notice), state).await
}

/// A member that cannot keep up leaves, so that the room does not wait for it.
async fn slow(ws: &mut Ws, state: &State, reason: &str) -> Option<CloseCode> {
    state.metrics.slow_disconnects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    close(ws, CloseCode::TRY_AGAIN_LATER, reason).await
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
