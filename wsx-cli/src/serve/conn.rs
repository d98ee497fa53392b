//! One connection of `wsx serve`. Its first request head is read by the library's handshake
//! driver ([`wsx::Acceptor::read_request`]): a WebSocket upgrade to `/echo` or `/chat/ROOM` (what
//! almost every connection is) is answered by the same driver and its session runs on this same
//! task, with no HTTP machinery left behind it. Anything else (the page, `/healthz`,
//! `/metrics`, a request that does not parse) goes to hyper, which first reads again the bytes
//! read here.

use std::net::SocketAddr;
use std::sync::Arc;

use http::Request;
use tokio::sync::mpsc;
use tracing::debug;
use wsx::Incoming;

use super::http::serve_http;
use super::proxy;
use super::reply::{with_node, X_WSX_NODE};
use super::route::{target, Target};
use super::session::{Session, Stream};
use super::state::State;
use super::upgrade::{admitted, authorized, backend, decide, joining, places, refused};

/// Serves one connection until it ends, or the server stops.
pub(super) async fn serve<S: Stream>(
    io: S,
    peer: SocketAddr,
    state: Arc<State>,
    alive: mpsc::Sender<()>,
) {
    // The opening is boxed: its future (read, answer, join, write the 101) is freed once the
    // session starts, instead of setting the size of the future the task keeps all along.
    // Borrowed, not moved out: a moved session would be stored twice in this future.
    let mut opened = Box::pin(open(io, peer, &state, &alive)).await;
    if let Some(session) = &mut opened {
        session.run(&state).await;
    }
}

/// Reads the first request and answers it; `Some` when it opened a WebSocket.
async fn open<S: Stream>(
    io: S,
    peer: SocketAddr,
    state: &Arc<State>,
    alive: &mpsc::Sender<()>,
) -> Option<Session<S>> {
    let incoming = first_request(io, peer, state).await?;
    // An upgrade to one of our WebSocket endpoints over HTTP/1.1 is answered here (HTTP/1.0
    // goes to hyper, which answers a refusal in kind); anything else by hyper.
    let upgrade = incoming.request().ok().filter(|_| incoming.is_upgrade());
    let Some(target) = endpoint(upgrade, state) else {
        // Boxed: the future of a WebSocket connection is not made as large as hyper's.
        Box::pin(serve_http(incoming.into_http(), peer, state.clone(), alive.clone())).await;
        return None;
    };
    let room = match &target {
        Target::Chat(room) => Some(room.clone()),
        Target::Echo | Target::Exec | Target::Forward(_) => None,
    };
    let (client, path, admission) = {
        let request = incoming.request().ok()?;
        let client = proxy::client_ip(peer.ip(), request.headers(), &state.args.trust_proxy);
        let admission = places(state, client).and_then(|places| {
            let (uri, headers) = (request.uri(), request.headers());
            let grant = authorized(state, client, uri, headers, room.as_deref())?;
            let join = joining(state, room.clone(), uri, grant.as_deref())?;
            Ok((places, grant, join))
        });
        (client, request.uri().path().to_string(), admission)
    };
    let (places, grant, join) = match admission {
        Ok(admitted) => admitted,
        Err(refusal) => {
            incoming.refuse_with(with_node(*refusal, &state.node)).await;
            return None;
        }
    };
    let chat = room.is_some();
    let answer =
        incoming.decide(|request, upgrade| decide(state, peer.ip(), chat, request, upgrade));
    let mut answer = match answer {
        Ok(answer) => answer,
        Err(error) => {
            incoming.refuse_with(with_node(refused(state, client, &error), &state.node)).await;
            return None;
        }
    };
    let backend = {
        let request = incoming.request().ok()?;
        let head = (request.method(), request.uri(), request.headers());
        let remote = SocketAddr::new(client, peer.port());
        backend(state, target, remote, head, grant.as_deref()).await
    };
    let backend = match backend {
        Ok(backend) => backend,
        Err(refusal) => {
            incoming.refuse_with(with_node(*refusal, &state.node)).await;
            return None;
        }
    };
    answer.headers_mut().insert(X_WSX_NODE, state.node.clone());
    let member = match admitted(state, join, answer.negotiated().subprotocol()).await {
        Ok(member) => member,
        Err(refusal) => {
            incoming.refuse_with(with_node(*refusal, &state.node)).await;
            return None;
        }
    };
    match incoming.accept(answer).await {
        Ok(ws) => Some(Session { ws, client, path, member, grant, backend, _places: places }),
        Err(e) => {
            debug!(%client, "could not send the 101 response: {e}");
            if let Some(mut backend) = backend {
                backend.abandon().await;
            }
            None
        }
    }
}

/// Reads the first request head; `None` when none comes, or the server stops first.
async fn first_request<S: Stream>(
    io: S,
    peer: SocketAddr,
    state: &State,
) -> Option<Incoming<'_, S>> {
    tokio::select! {
        incoming = state.acceptor.read_request(io) => match incoming {
            Ok(incoming) => Some(incoming),
            Err(e) => {
                debug!(%peer, "no first request: {e}");
                None
            }
        },
        () = state.shutdown.stopped() => None,
    }
}

/// The WebSocket endpoint an upgrade `request` asks for; `None` when it is not one of ours.
fn endpoint(request: Option<&Request<()>>, state: &State) -> Option<Target> {
    let path = request?.uri().path();
    target(path, state.runs_programs(), state.forward(path))
}
