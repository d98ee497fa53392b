//! The hyper HTTP/1.1 service of `wsx serve`: what is not a WebSocket upgrade coming first on
//! its connection. It serves the chat page, `/healthz` and `/metrics`, the files of --static
//! and the console of --devconsole, refuses what it cannot route, and also takes upgrades that come later on a kept-alive connection ([`upgrade_to`]).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tracing::debug;
use wsx::HandshakeError;

use super::metrics::{BrokerStats, Refusal};
use super::proxy;
use super::reply::{refusal, text, with_node};
use super::route::{route, target, Route, Target};
use super::session::Session;
use super::state::State;
use super::static_files::{self, Body};
use super::upgrade::{admitted, authorized, backend, decide, joining, places, refused};

/// The chat page: HTML, CSS and JS in one file, embedded in the binary.
const PAGE: &str = include_str!("page.html");

/// The developer console of --devconsole: one page, nothing loaded from elsewhere.
const DEVCONSOLE: &str = include_str!("devconsole.html");

/// Serves HTTP/1.1 on one connection until it ends, is upgraded, or the server stops (what is
/// not a WebSocket upgrade coming first on its connection).
pub(super) async fn serve_http<S>(
    io: S,
    peer: SocketAddr,
    state: Arc<State>,
    alive: mpsc::Sender<()>,
) where
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

/// Serves HTTP/2 on one connection (--http2: TLS with ALPN h2, or h2c with prior knowledge):
/// the same routes as HTTP/1.1, and WebSockets as extended CONNECT streams (RFC 8441), each on
/// a task of its own while the connection goes on.
pub(super) async fn serve_h2<S>(io: S, peer: SocketAddr, state: Arc<State>, alive: mpsc::Sender<()>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    state.metrics.http2_connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let service = {
        let (state, alive) = (state.clone(), alive.clone());
        service_fn(move |request| handle(request, peer, state.clone(), alive.clone()))
    };
    let limits = state.acceptor.config_ref().limits_ref();
    let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .enable_connect_protocol()
        .max_concurrent_streams(state.args.http2_max_streams)
        .max_header_list_size(limits.head_size().max(8192) as u32)
        // A peer that stops answering PINGs is dropped (and with it its streams).
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                debug!(%peer, "HTTP/2 connection ended: {e}");
            }
        }
        () = state.shutdown.stopped() => {
            // GOAWAY: no new streams; the WebSockets close themselves (1001) meanwhile.
            connection.as_mut().graceful_shutdown();
            let grace = state.args.shutdown_timeout + Duration::from_secs(1);
            let _ = tokio::time::timeout(grace, connection).await;
        }
    }
    drop(alive);
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
    let to = upgrade.then(|| target(&path, state.runs_programs(), state.forward(&path))).flatten();
    let response = match (route(&path), to) {
        (_, Some(to)) => upgrade_to(&mut request, peer, client, to, &state, alive).await,
        (Route::Echo | Route::Chat(_), None) if !upgrade => refusal(&HandshakeError::NotUpgrade),
        // With --static, DIR/index.html if there is one (other methods get the page as before).
        (Route::Page, None) if !upgrade => match from_files(&state, &request, true).await {
            Some(file) => return Ok(with_node(file, &state.node)),
            None => page(),
        },
        (Route::DevConsole, None) if !upgrade && state.args.devconsole => devconsole(),
        (Route::Favicon, None) if !upgrade => match from_files(&state, &request, true).await {
            Some(file) => return Ok(with_node(file, &state.node)),
            None => no_content(),
        },
        (Route::Favicon, _) => no_content(),
        (Route::Health, _) => health(&state),
        (Route::Metrics, _) => metrics(&state),
        (_, None) if !upgrade && state.files.is_some() => {
            let file = from_files(&state, &request, false).await;
            return Ok(with_node(file.unwrap_or_else(static_files::not_found), &state.node));
        }
        (_, None) => not_found(&state, &path, upgrade),
    };
    // Which node answered: behind a load balancer, the one thing a client cannot otherwise tell.
    Ok(with_node(response, &state.node).map(|body| Either::Left(Full::new(body))))
}

/// The answer of --static's directory to `request`, if there is a directory and it has one
/// (`None`: no such file). With `found_only`, only a file found: no 404, and no 405 either.
async fn from_files(
    state: &State,
    request: &Request<Incoming>,
    found_only: bool,
) -> Option<Response<Body>> {
    let files = state.files.as_ref()?;
    let (method, uri, headers) = (request.method(), request.uri(), request.headers());
    if found_only && method != http::Method::GET && method != http::Method::HEAD {
        return None;
    }
    files.serve(method, uri, headers).await
}

/// `/devconsole` (with --devconsole): the developer console.
fn devconsole() -> Response<Bytes> {
    let mut page = text(StatusCode::OK, "text/html; charset=utf-8", DEVCONSOLE);
    page.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    page
}

/// `/`: the chat page.
fn page() -> Response<Bytes> {
    let mut page = text(StatusCode::OK, "text/html; charset=utf-8", PAGE);
    page.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    page
}

/// `/favicon.ico`: none.
fn no_content() -> Response<Bytes> {
    let mut none = Response::new(Bytes::new());
    *none.status_mut() = StatusCode::NO_CONTENT;
    none
}

/// `/metrics`: the Prometheus exposition.
fn metrics(state: &State) -> Response<Bytes> {
    text(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        state.metrics.render(
            state.rooms.count(),
            broker_stats(state),
            state.exec.as_ref().map(|e| e.stats()),
        ),
    )
}

/// Any other path (counted as a refused handshake when it asked for an upgrade).
fn not_found(state: &State, path: &str, upgrade: bool) -> Response<Bytes> {
    if upgrade {
        state.metrics.refused(Refusal::NotFound);
    }
    let reason = format!("no WebSocket endpoint at {path}: use /echo or /chat/ROOM\n");
    text(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", reason)
}

fn broker_stats(state: &State) -> Option<BrokerStats> {
    state.rooms.bus().map(|b| BrokerStats {
        up: b.is_up(),
        outages: b.outages(),
        undelivered: b.undelivered(),
    })
}

/// `/healthz`: 200 when serving (`degraded` while Redis is unreachable: echo and open
/// connections still work), 503 while shutting down; a JSON object naming the node.
fn health(state: &State) -> Response<Bytes> {
    let stopping = state.shutdown.is_stopping();
    let (broker, broker_up) = match state.rooms.bus() {
        None => ("memory", true),
        Some(bus) => (bus.name(), bus.is_up()),
    };
    let (status, code) = match (stopping, broker_up) {
        (true, _) => ("shutting_down", StatusCode::SERVICE_UNAVAILABLE),
        (false, false) => ("degraded", StatusCode::OK),
        (false, true) => ("ok", StatusCode::OK),
    };
    let body = json!({
        "status": status,
        "node": state.node_name(),
        "broker": broker,
        "broker_up": broker_up,
        "connections": state.metrics.open(),
        "rooms": state.rooms.count(),
    });
    let body = format!("{body}\n");
    let mut response = text(code, "application/json", body);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An upgrade that hyper read (one that did not come first on its connection).
async fn upgrade_to(
    request: &mut Request<Incoming>,
    peer: SocketAddr,
    client: IpAddr,
    to: Target,
    state: &Arc<State>,
    alive: mpsc::Sender<()>,
) -> Response<Bytes> {
    let room = match &to {
        Target::Chat(room) => Some(room.clone()),
        Target::Echo | Target::Exec | Target::Forward(_) => None,
    };
    let places = match places(state, client) {
        Ok(places) => places,
        Err(refusal) => return *refusal,
    };
    let grant = match authorized(state, client, request.uri(), request.headers(), room.as_deref()) {
        Ok(grant) => grant,
        Err(refusal) => return *refusal,
    };
    let join = match joining(state, room.clone(), request.uri(), grant.as_deref()) {
        Ok(join) => join,
        Err(refusal) => return *refusal,
    };
    let chat = room.is_some();
    let config = state.acceptor.config_ref().clone();
    let upgraded = wsx::hyper::upgrade(request, config, |head, upgrade| {
        decide(state, peer.ip(), chat, head, upgrade)
    });
    let (response, websocket) = match upgraded {
        Ok(upgraded) => upgraded,
        Err(error) => return refused(state, client, &error),
    };
    if request.version() == http::Version::HTTP_2 {
        state.metrics.http2_websockets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let head = (request.method(), request.uri(), request.headers());
    let remote = SocketAddr::new(client, peer.port());
    let backend = match backend(state, to, remote, head, grant.as_deref()).await {
        Ok(backend) => backend,
        Err(refusal) => return *refusal,
    };
    let path = request.uri().path().to_string();
    let subprotocol = response.headers().get(header::SEC_WEBSOCKET_PROTOCOL);
    let member = match admitted(state, join, subprotocol.and_then(|p| p.to_str().ok())).await {
        Ok(member) => member,
        Err(refusal) => return *refusal,
    };
    let state = state.clone();
    tokio::spawn(async move {
        match websocket.await {
            Ok(ws) => {
                let mut session =
                    Session { ws, client, path, member, grant, backend, _places: places };
                session.run(&state).await
            }
            Err(e) => {
                debug!(%client, "upgrade failed: {e}");
                if let Some(mut backend) = backend {
                    backend.abandon().await;
                }
            }
        }
        drop(alive);
    });
    response
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::args::{Cli, Command};
    use crate::serve::rooms::Rooms;

    fn state(node: &str) -> State {
        let cli = Cli::try_parse_from(["wsx", "serve", "--node", node]).unwrap();
        let Command::Serve(args) = cli.command else { unreachable!("a serve command") };
        State::new(
            args,
            HeaderValue::from_str(node).unwrap(),
            Rooms::in_memory(1, crate::serve::rooms::tests::HISTORY, node),
        )
    }

    #[test]
    fn health_is_the_documented_json_object() {
        let response = health(&state("alpha"));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            response.body(),
            "{\"status\":\"ok\",\"node\":\"alpha\",\"broker\":\"memory\",\"broker_up\":true,\
             \"connections\":0,\"rooms\":0}\n"
        );
    }

    #[test]
    fn any_node_name_survives_in_health() {
        for node in [r#"a "quoted" node"#, r"back\slash", r#"\""#, "n\u{153}ud"] {
            let response = health(&state(node));
            let body: serde_json::Value = serde_json::from_slice(response.body())
                .unwrap_or_else(|e| panic!("{node:?}: {e}: {:?}", response.body()));
            assert_eq!(body["node"], node);
            assert_eq!(body["status"], "ok");
        }
    }
}
