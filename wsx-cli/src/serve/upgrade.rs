//! The upgrade policy of `wsx serve`, shared by both upgrade paths (`conn.rs`, `http.rs`):
//! whether there is room for one more WebSocket ([`places`]: also --handshake-rate), whose
//! token allows what ([`authorized`], with --auth-*), what to answer a valid upgrade
//! ([`decide`]: Origin, subprotocol, permessage-deflate), the program of an upgrade with
//! --exec/--exec-dir ([`launch`]: 404, 503 over --max-forks, 500), a client of --exec-shared
//! ([`join`]: 503 while the program is down) or the TCP connection of a
//! --tcp-forward path ([`forward`]: 502), both through [`backend`], and the bookkeeping of a
//! refused ([`refused`]) or accepted ([`admitted`]) handshake.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use tokio::net::TcpStream;
use tracing::{debug, warn};
use wsx::{Accept, HandshakeError, Upgrade};

use super::auth::{Denied, Grant};
use super::bus::Start;
use super::exec::{self, Refused};
use super::metrics::Refusal;
use super::proxy;
use super::reply::{refusal, text};
use super::route::Target;
use super::session::{Backend, Seat};
use super::shared::{self, Joining, Shared};
use super::state::{Places, State};
use super::superchat::Join;

/// The places for one more WebSocket from `client`, or the refusal to send (429 over
/// --handshake-rate unless `client` is a loopback address, 503 while stopping or full, 429 over --max-per-client).
pub(super) fn places(state: &Arc<State>, client: IpAddr) -> Result<Places, Box<Response<Bytes>>> {
    // Loopback clients (local tools, benchmarks) are not limited; behind a proxy on this host,
    // --trust-proxy makes the client the forwarded address.
    let local = client.to_canonical().is_loopback();
    let rate = if local { Ok(()) } else { state.handshakes.check(client, Instant::now()) };
    if let Err(wait) = rate {
        state.metrics.refused(Refusal::HandshakeRate);
        let reason = format!("too many handshakes from {client}: try again later\n");
        let mut response = text(StatusCode::TOO_MANY_REQUESTS, "text/plain; charset=utf-8", reason);
        // Whole seconds, rounded up: at least 1.
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        return Err(Box::new(response));
    }
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
    let Ok(slot) = state.client_slot(client) else {
        state.metrics.refused(Refusal::ClientLimit);
        let limit = state.args.max_per_client;
        let reason = format!("too many connections from {client}: at most {limit} at once\n");
        let mut response = text(StatusCode::TOO_MANY_REQUESTS, "text/plain; charset=utf-8", reason);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return Err(Box::new(response));
    };
    Ok((permit, slot))
}

/// With --auth-*, what the token of an upgrade (`uri`, `headers`) to `room` (`None`: echo)
/// allows, or the refusal to send: 401 without a valid token, 403 when it does not allow the
/// room. `Ok(None)` when authentication is off.
pub(super) fn authorized(
    state: &State,
    client: IpAddr,
    uri: &Uri,
    headers: &HeaderMap,
    room: Option<&str>,
) -> Result<Option<Box<Grant>>, Box<Response<Bytes>>> {
    let Some(auth) = &state.auth else { return Ok(None) };
    let denied = match auth.check(uri, headers, room) {
        Ok(grant) => return Ok(Some(Box::new(grant))),
        Err(denied) => denied,
    };
    debug!(%client, "token refused: {denied:?}");
    let (why, status, challenge, reason) = match denied {
        Denied::Missing => (
            Refusal::AuthMissing,
            StatusCode::UNAUTHORIZED,
            r#"Bearer realm="wsx""#,
            "a token is required: see docs/auth.md".to_string(),
        ),
        Denied::Invalid(why) => (
            Refusal::AuthInvalid,
            StatusCode::UNAUTHORIZED,
            r#"Bearer realm="wsx", error="invalid_token""#,
            format!("invalid token: {why}"),
        ),
        Denied::Expired => (
            Refusal::AuthExpired,
            StatusCode::UNAUTHORIZED,
            r#"Bearer realm="wsx", error="invalid_token", error_description="expired""#,
            "the token has expired".to_string(),
        ),
        Denied::Forbidden(why) => {
            (Refusal::AuthForbidden, StatusCode::FORBIDDEN, "", format!("forbidden: {why}"))
        }
    };
    state.metrics.refused(why);
    let mut response = text(status, "text/plain; charset=utf-8", format!("{reason}\n"));
    if !challenge.is_empty() {
        let challenge = HeaderValue::from_static(challenge);
        response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
    }
    Err(Box::new(response))
}

/// Answers a valid upgrade from `peer`: the Origin check, the subprotocol (`chat` or
/// `superchat` in rooms), permessage-deflate as configured.
pub(super) fn decide(
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

/// Whether `upgrade`'s Origin may connect: none, the same as the host the client asked for
/// (Host, or X-Forwarded-Host from a trusted proxy), or an allowed one (protection against
/// cross-site WebSocket hijacking).
fn origin_allowed(upgrade: &Upgrade, host: &str, allowed: &[String]) -> bool {
    let Some(origin) = upgrade.origin() else { return true };
    if allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    match origin.parse::<Uri>() {
        Ok(uri) => uri.authority().is_some_and(|a| a.as_str().eq_ignore_ascii_case(host)),
        Err(_) => false,
    }
}

/// The head of an upgrade request: its method, URI and headers.
pub(super) type Head<'a> = (&'a Method, &'a Uri, &'a HeaderMap);

/// What an accepted upgrade from `remote` to `target` runs beside its socket, set up before the
/// 101 so that a refusal can still be answered: a program of --exec/--exec-dir ([`launch`]), a
/// TCP connection to the server of a --tcp-forward path ([`forward`]); nothing for echo and
/// rooms.
pub(super) async fn backend(
    state: &State,
    target: Target,
    remote: SocketAddr,
    head: Head<'_>,
    grant: Option<&Grant>,
) -> Result<Option<Box<Backend>>, Box<Response<Bytes>>> {
    match target {
        Target::Echo | Target::Chat(_) => Ok(None),
        Target::Exec => match &state.shared {
            Some(shared) => join(state, shared, remote, head.1, grant).map(Some),
            None => launch(state, remote, head, grant).map(Some),
        },
        Target::Forward(to) => {
            let tcp = forward(state, remote, &to).await?;
            Ok(Some(Box::new(Backend::Tcp(Some(tcp)))))
        }
    }
}

/// Joins a client at `remote`, upgrading to `uri`, to the program of --exec-shared; 503 while
/// the program is down (restarting) or does not read its stdin.
fn join(
    state: &State,
    shared: &Shared,
    remote: SocketAddr,
    uri: &Uri,
    grant: Option<&Grant>,
) -> Result<Box<Backend>, Box<Response<Bytes>>> {
    let user = grant.map(|g| g.user.as_str());
    let joining = Joining { path: uri.path(), query: uri.query(), remote, user };
    match shared.join(&joining) {
        Ok(client) => Ok(Box::new(Backend::Shared(client))),
        Err(shared::Refused::Down) => {
            state.metrics.refused(Refusal::ProgramDown);
            let reason = "the program is not running: try again later\n";
            let mut response =
                text(StatusCode::SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", reason);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Err(Box::new(response))
        }
    }
}

/// The TCP connection to `to` (a --tcp-forward target) for a client at `remote`; 502 when it
/// cannot be made within --handshake-timeout.
async fn forward(
    state: &State,
    remote: SocketAddr,
    to: &str,
) -> Result<TcpStream, Box<Response<Bytes>>> {
    let connecting = tokio::time::timeout(state.args.handshake_timeout, TcpStream::connect(to));
    let why = match connecting.await {
        Ok(Ok(tcp)) => {
            // Small writes (a command, a keystroke) should not wait for Nagle's algorithm.
            let _ = tcp.set_nodelay(true);
            return Ok(tcp);
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => "timed out".to_string(),
    };
    state.metrics.refused(Refusal::ForwardFailed);
    warn!(client = %remote, "cannot connect to {to} (--tcp-forward): {why}");
    let reason = "cannot reach the server behind this path\n";
    Err(Box::new(text(StatusCode::BAD_GATEWAY, "text/plain; charset=utf-8", reason)))
}

/// With --exec/--exec-dir, starts the program of an accepted upgrade (`method`, `uri`,
/// `headers`) from `remote`, before the 101; the refusal to send instead: 404 when --exec-dir
/// has no program for the path, 503 over --max-forks, 500 when it cannot be started.
fn launch(
    state: &State,
    remote: SocketAddr,
    (method, uri, headers): Head<'_>,
    grant: Option<&Grant>,
) -> Result<Box<Backend>, Box<Response<Bytes>>> {
    let plain =
        |status, reason: String| Box::new(text(status, "text/plain; charset=utf-8", reason));
    let Some(programs) = &state.exec else {
        state.metrics.refused(Refusal::NotFound);
        return Err(plain(
            StatusCode::NOT_FOUND,
            format!("no WebSocket endpoint at {}\n", uri.path()),
        ));
    };
    let request =
        exec::Request { method, uri, headers, remote, user: grant.map(|g| g.user.as_str()) };
    match programs.start(&request) {
        Ok(process) => Ok(Box::new(Backend::Program(process))),
        Err(Refused::NotFound) => {
            state.metrics.refused(Refusal::NotFound);
            let reason = format!("no program at {}\n", uri.path());
            Err(plain(StatusCode::NOT_FOUND, reason))
        }
        Err(Refused::Full) => {
            state.metrics.refused(Refusal::MaxForks);
            let reason = format!("too many programs running: at most {}\n", state.args.max_forks);
            Err(plain(StatusCode::SERVICE_UNAVAILABLE, reason))
        }
        Err(Refused::Failed(e)) => {
            state.metrics.refused(Refusal::ExecFailed);
            warn!(client = %remote, "cannot start the program: {e}");
            let reason = "cannot start the program\n".to_string();
            Err(plain(StatusCode::INTERNAL_SERVER_ERROR, reason))
        }
    }
}

/// Counts a refused handshake; its response.
pub(super) fn refused(state: &State, client: IpAddr, error: &HandshakeError) -> Response<Bytes> {
    state.metrics.refused(match error {
        HandshakeError::OriginRejected(_) => Refusal::Origin,
        HandshakeError::UnsupportedVersion(_) => Refusal::Version,
        _ => Refusal::BadRequest,
    });
    debug!(%client, "handshake refused: {error}");
    refusal(error)
}

/// What an upgrade to `room` asks for in `uri`'s query (docs/rooms.md: name, history,
/// resume), its name the token's user with --auth-*; the 400 to send when the query is wrong.
pub(super) fn joining(
    state: &State,
    room: Option<String>,
    uri: &Uri,
    grant: Option<&Grant>,
) -> Result<Option<(String, Join)>, Box<Response<Bytes>>> {
    let Some(room) = room else { return Ok(None) };
    match Join::from_query(uri.query(), state.args.history as u64) {
        Ok(mut join) => {
            if let Some(grant) = grant {
                join.name.clone_from(&grant.user);
            }
            Ok(Some((room, join)))
        }
        Err(why) => {
            state.metrics.refused(Refusal::BadRequest);
            let reason = format!("bad query for a chat room: {why} (see docs/rooms.md)\n");
            Err(Box::new(text(StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", reason)))
        }
    }
}

/// Counts an accepted handshake and joins its room (speaking `subprotocol`), before the 101
/// goes out: once its handshake is complete, a member receives every message sent to the room
/// from where it starts. A 503 instead when the room's broker (Redis) cannot be reached.
pub(super) async fn admitted(
    state: &State,
    room: Option<(String, Join)>,
    subprotocol: Option<&str>,
) -> Result<Option<Box<Seat>>, Box<Response<Bytes>>> {
    let Some((room, join)) = room else {
        state.metrics.accepted();
        return Ok(None);
    };
    let superchat = subprotocol == Some("superchat");
    let start = if superchat { join.start } else { Start::Live };
    let mut membership = state.rooms.join(&room, &join.name);
    match membership.enter(&start).await {
        Ok(replay) => {
            state.metrics.accepted();
            let entry = Some((start, replay));
            Ok(Some(Box::new(Seat { membership, superchat, entry })))
        }
        // (The bus has one way to fail: it is down.)
        Err(_) => {
            state.metrics.refused(Refusal::Broker);
            let reason = format!(
                "cannot join {room}: the message broker (Redis) is unreachable; try again in a \
                 moment\n"
            );
            let mut response =
                text(StatusCode::SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", reason);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            Err(Box::new(response))
        }
    }
}
