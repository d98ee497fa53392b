//! What every connection of `wsx serve` shares ([`State`]), and the places an open WebSocket
//! holds under `--max-connections` and `--max-per-client` ([`Places`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderValue;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wsx::{Acceptor, Config, Limits};

use super::auth::Auth;
use super::exec::Exec;
use super::limit::Handshakes;
use super::metrics::Metrics;
use super::rooms::Rooms;
use super::shared::Shared;
use super::static_files::StaticFiles;
use super::stop::Stop;
use crate::args::ServeArgs;

/// What every connection shares.
pub(super) struct State {
    pub(super) args: ServeArgs,
    /// The library's handshake driver, with the connections' configuration.
    pub(super) acceptor: Acceptor,
    pub(super) metrics: Metrics,
    pub(super) rooms: Arc<Rooms>,
    pub(super) connections: Arc<Semaphore>,
    /// WebSocket connections open per client address (only with --max-per-client).
    per_client: Mutex<HashMap<IpAddr, usize>>,
    /// This node's name (X-Wsx-Node, /healthz).
    pub(super) node: HeaderValue,
    pub(super) shutdown: Stop,
    /// Token authentication of upgrades (with --auth-*).
    pub(super) auth: Option<Auth>,
    /// Handshakes per client address (--handshake-rate).
    pub(super) handshakes: Handshakes,
    /// The programs of --exec or --exec-dir.
    pub(super) exec: Option<Exec>,
    /// The directory of --static.
    pub(super) files: Option<StaticFiles>,
    /// The one program of --exec-shared.
    pub(super) shared: Option<Shared>,
}

impl State {
    /// The state of a server configured by `args`, named `node`, with `rooms`.
    pub(super) fn new(args: ServeArgs, node: HeaderValue, rooms: Arc<Rooms>) -> Self {
        Self {
            acceptor: Acceptor::new().config(connection_config(&args)),
            metrics: Metrics::default(),
            rooms,
            connections: Arc::new(Semaphore::new(args.max_connections)),
            per_client: Mutex::default(),
            node,
            shutdown: Stop::default(),
            auth: None,
            handshakes: Handshakes::new(args.handshake_rate),
            exec: None,
            files: None,
            shared: None,
            args,
        }
    }

    /// This state, authenticating upgrades with `auth`.
    pub(super) fn with_auth(self, auth: Option<Auth>) -> Self {
        Self { auth, ..self }
    }

    /// This state, running `exec`'s programs for WebSocket upgrades no other endpoint takes.
    pub(super) fn with_exec(self, exec: Option<Exec>) -> Self {
        Self { exec, ..self }
    }

    /// This state, joining WebSocket upgrades no other endpoint takes to `shared`'s program.
    pub(super) fn with_shared(self, shared: Option<Shared>) -> Self {
        Self { shared, ..self }
    }

    /// Whether upgrades to the paths nothing else serves go to a program (--exec, --exec-dir,
    /// --exec-shared).
    pub(super) fn runs_programs(&self) -> bool {
        self.exec.is_some() || self.shared.is_some()
    }

    /// This state, serving `files` on the paths nothing else serves.
    pub(super) fn with_files(self, files: Option<StaticFiles>) -> Self {
        Self { files, ..self }
    }

    /// The TCP server (HOST:PORT) that upgrades to `path` are carried to (--tcp-forward).
    pub(super) fn forward(&self, path: &str) -> Option<&str> {
        self.args.tcp_forward.iter().find(|f| f.path == path).map(|f| f.target.as_str())
    }

    /// This node's name as text (it was made from a `&str`, so it is UTF-8).
    pub(super) fn node_name(&self) -> &str {
        std::str::from_utf8(self.node.as_bytes()).unwrap_or_default()
    }

    /// Takes a place for `client` under --max-per-client (`None`: no limit); `Err` when it
    /// has all its places.
    pub(super) fn client_slot(self: &Arc<Self>, client: IpAddr) -> Result<Option<ClientSlot>, ()> {
        let limit = self.args.max_per_client;
        if limit == 0 {
            return Ok(None);
        }
        let mut open = self.per_client.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(client).or_default();
        if *n >= limit {
            return Err(());
        }
        *n += 1;
        Ok(Some(ClientSlot { state: self.clone(), client }))
    }
}

/// The configuration of every WebSocket connection, from the command line.
fn connection_config(args: &ServeArgs) -> Config {
    let limits = Limits::default().max_message_size(args.max_message_size);
    let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
    Config::default()
        .limits(limits)
        .handshake_timeout(args.handshake_timeout)
        .keepalive(nonzero(args.keepalive))
        .idle_timeout(nonzero(args.idle_timeout))
        // No context takeover by default: compression state is freed after each message, so an
        // idle connection costs a few KB, not ~350 KB (see scripts/measure.sh).
        .deflate(
            (!args.no_deflate)
                .then(|| wsx::DeflateConfig::default().no_context_takeover(!args.deflate_takeover)),
        )
}

/// One client's place under --max-per-client; given back when dropped.
pub(super) struct ClientSlot {
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

/// What an open WebSocket holds until it ends: a place under --max-connections and one under
/// --max-per-client.
pub(super) type Places = (OwnedSemaphorePermit, Option<ClientSlot>);
